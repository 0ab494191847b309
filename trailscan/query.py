"""Ad-hoc SQL over the lake's views."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa

from .errors import LakeError, UsageError
from .lake import Lake

DIALECTS = ("duckdb", "athena")


def run_query(sql: str, lake_path: str | os.PathLike[str] | None = None,
              dialect: str = "duckdb") -> pa.Table:
    """Run SQL against the lake's views (`cloudtrail`, `cloudtrail_logs`, `quarantine`,
    `manifest`, `findings`, ...); rows as Arrow. `dialect="athena"` reads Athena (Trino) SQL."""
    if dialect not in DIALECTS:
        raise UsageError(f"unknown SQL dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    if dialect == "athena":
        from .athena import translate

        sql = translate(sql)
    lake = Lake.open(lake_path)
    return lake.reading(lambda: _run_once(lake, sql, dialect))


def _run_once(lake: Lake, sql: str, dialect: str) -> pa.Table:
    try:
        con = lake.connect()
    except duckdb.Error as exc:
        if lake.vanished(exc):
            raise
        first = str(exc).strip().splitlines()[0]
        raise LakeError(f"cannot read lake {lake.location}: {first}") from None
    try:
        relation = con.sql(sql)
        if relation is None:  # a statement without rows
            return pa.table({})
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
        if dialect == "athena":
            from .athena import athena_names

            return athena_names(fetch())
        return fetch()
    except duckdb.Error as exc:
        if lake.vanished(exc):  # a concurrent writer changed the lake: read it again
            raise
        message = str(exc).strip().splitlines()[0]
        raise UsageError(f"SQL error: {message}") from None
    finally:
        con.close()
