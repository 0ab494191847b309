"""Athena-dialect SQL: queries written for AWS's Athena CloudTrail table run on the lake.

Two halves. The view `cloudtrail_logs` has the columns of AWS's Athena table (lower-case names,
`eventtime`/`readonly` as strings, JSON columns as text, plus the partition columns Athena tables
use), derived once from the lake schema. sqlglot then only has to turn Trino functions into DuckDB
ones (`json_extract_scalar`, `from_iso8601_timestamp`, `date_parse`, `CROSS JOIN UNNEST`, ...).
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from . import schema
from .errors import UsageError

VIEW = "cloudtrail_logs"
#: Views a query may name as they are; other table names that mention CloudTrail (the console
#: creates `cloudtrail_logs_<bucket>`) are read as `cloudtrail_logs`.
_KNOWN = frozenset({VIEW, "cloudtrail", "findings", "quarantine", "manifest", "integrity",
                    "integrity_problems"})
#: CloudTrail writes eventTime as ISO-8601 UTC with second precision; Athena keeps that text.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _column(field: pa.Field) -> str:
    """One lake column as Athena's table types it (timestamps and booleans are strings there)."""
    name = '"' + field.name.replace('"', '""') + '"'
    alias = '"' + field.name.lower().replace('"', '""') + '"'
    if pa.types.is_timestamp(field.type):
        return f"strftime({name}, '{_TIME_FORMAT}') AS {alias}"
    if pa.types.is_boolean(field.type):
        return f"CASE WHEN {name} THEN 'true' WHEN NOT {name} THEN 'false' END AS {alias}"
    return f"{name} AS {alias}"


def view_sql() -> str:
    """`CREATE VIEW cloudtrail_logs`: Athena's CloudTrail table over the `cloudtrail` view."""
    columns = [_column(field) for field in schema.arrow_schema()]
    # Partition columns of the Athena DDLs (manual: region/year/month/day; projection: timestamp).
    columns += [
        "awsRegion AS region",
        "strftime(eventTime, '%Y') AS year",
        "strftime(eventTime, '%m') AS month",
        "strftime(eventTime, '%d') AS day",
        "strftime(eventTime, '%Y/%m/%d') AS \"timestamp\"",
        "recipientAccountId AS account",
        "event_date",
    ]
    return f"CREATE OR REPLACE VIEW {VIEW} AS SELECT " + ", ".join(columns) + " FROM cloudtrail"


def create_view(con: Any) -> None:
    """Create `cloudtrail_logs` on a connection that already has the `cloudtrail` view."""
    con.execute(view_sql())


def _one_line(text: Any) -> str:
    """One line, with sqlglot's `<class 'sqlglot.expressions.GT'>` shortened to `GT`."""
    return re.sub(r"<class 'sqlglot\.[\w.]*\.(\w+)'>", r"\1", " ".join(str(text).split()))


def translate(sql: str) -> str:
    """Athena (Trino) SQL -> DuckDB SQL for the lake; a UsageError names what cannot be read."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    try:
        trees = [t for t in sqlglot.parse(sql, read="athena") if t is not None]
    except ParseError as exc:
        raise UsageError(_parse_message(exc)) from None
    if not trees:
        raise UsageError("Athena SQL is empty")
    out = []
    for tree in trees:
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            if not name or name in ctes:
                continue
            # Athena names tables as catalog.database.table; the lake has one namespace.
            table.set("db", None)
            table.set("catalog", None)
            if name not in _KNOWN and "cloudtrail" in name:
                table.set("this", exp.to_identifier(VIEW))
        try:
            out.append(tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE))
        except UnsupportedError as exc:
            raise UsageError(f"cannot translate Athena SQL: {_one_line(exc)}") from None
    return ";\n".join(out)


def _parse_message(exc: Any) -> str:
    """sqlglot's parse error as one line: what, where, and the fragment it stopped at."""
    errors = getattr(exc, "errors", None) or []
    if not errors:
        return f"cannot parse Athena SQL: {_one_line(exc)}"
    first = errors[0]
    fragment = _one_line(f"{first.get('start_context', '')}{first.get('highlight', '')}")
    where = f"line {first.get('line')}, column {first.get('col')}"
    return (f"cannot parse Athena SQL at {where}: {_one_line(first.get('description', ''))} "
            f"near {fragment[-60:]!r}")
