"""CloudTrail event history (`aws-event-history://<region>`) as a source.

Accounts without a trail still have 90 days of management events behind `LookupEvents`. Each page
(up to 50 events) becomes one in-memory object in the `lookup-events` container the record reader
already knows, so history flows through the same parse, dedupe and manifest path as files; pages
are fetched lazily, one at a time, and a re-run stores re-fetched events once (duplicates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .s3 import AwsOptions, source_error
from .sources import HISTORY_SCHEME, LOG, Filters, ObjectKey, SourceObject

RETENTION = timedelta(days=90)
PAGE = 50  # the API's maximum


def pages(region: str, filters: Filters | None = None, aws: AwsOptions | None = None,
          client: Any = None) -> Iterator[tuple[SourceObject, bytes]]:
    """(object, bytes) per LookupEvents page, newest events first, within --since/--until."""
    filters = filters or Filters()
    client = client or (aws or AwsOptions()).client("cloudtrail", region)
    now = datetime.now(UTC)
    args: dict[str, Any] = {"MaxResults": PAGE,
                            "StartTime": max(filters.since or now - RETENTION, now - RETENTION),
                            "EndTime": min(filters.until or now, now)}
    where = f"{HISTORY_SCHEME}{region}"
    number = 0
    while True:
        try:
            page = client.lookup_events(**args)
        except Exception as exc:
            raise source_error(exc, where) from None
        events = [{"EventId": e.get("EventId"), "CloudTrailEvent": e["CloudTrailEvent"]}
                  for e in page.get("Events", []) if isinstance(e.get("CloudTrailEvent"), str)]
        if events:
            number += 1
            data = orjson.dumps({"Events": events})
            uri = f"{where}/{events[0]['EventId']}"
            version = hashlib.sha256(data).hexdigest()[:32]
            yield SourceObject(uri, len(data), version, ObjectKey(LOG, region=region)), data
        token = page.get("NextToken")
        if not token:
            return
        args["NextToken"] = token
