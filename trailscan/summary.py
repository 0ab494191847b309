"""A short overview of what a lake holds (the end of `trailscan scan`)."""

from __future__ import annotations

import os
from typing import Any

from .lake import Lake

_QUERIES = {
    "events": "SELECT count(*) FROM cloudtrail",
    "first_event": "SELECT min(eventTime) FROM cloudtrail",
    "last_event": "SELECT max(eventTime) FROM cloudtrail",
    "accounts": "SELECT count(DISTINCT recipientAccountId) FROM cloudtrail",
    "regions": "SELECT count(DISTINCT awsRegion) FROM cloudtrail",
    "principals": "SELECT count(DISTINCT coalesce(userIdentity.sessionContext.sessionIssuer.arn, "
                  "userIdentity.arn, userIdentity.invokedBy)) FROM cloudtrail",
    "errors": "SELECT count(*) FROM cloudtrail WHERE errorCode IS NOT NULL",
    "quarantined": "SELECT count(*) FROM quarantine",
}
_TOP = {
    "top_event_names": "SELECT eventSource || ':' || eventName AS k, count(*) AS n FROM cloudtrail "
                       "GROUP BY k ORDER BY n DESC, k LIMIT 10",
    "top_principals": "SELECT coalesce(userIdentity.sessionContext.sessionIssuer.arn, "
                      "userIdentity.arn, userIdentity.invokedBy, userIdentity.type) AS k, "
                      "count(*) AS n FROM cloudtrail GROUP BY k ORDER BY n DESC, k LIMIT 10",
    "top_errors": "SELECT errorCode AS k, count(*) AS n FROM cloudtrail WHERE errorCode IS NOT "
                  "NULL GROUP BY k ORDER BY n DESC, k LIMIT 10",
}


def summarize(lake_path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Counts, time range and top-10 lists over the whole lake (one committed state of it)."""
    lake = Lake.open(lake_path)
    return lake.reading(lambda: _summarize_once(lake))


def _summarize_once(lake: Lake) -> dict[str, Any]:
    con = lake.connect()
    try:
        out: dict[str, Any] = {k: con.execute(q).fetchone()[0] for k, q in _QUERIES.items()}
        for key, query in _TOP.items():
            out[key] = [{"name": k, "events": n} for k, n in con.execute(query).fetchall()]
    finally:
        con.close()
    for key in ("first_event", "last_event"):
        if out[key] is not None:
            out[key] = out[key].isoformat()
    return out
