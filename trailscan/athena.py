"""Athena-dialect SQL: queries written for AWS's Athena CloudTrail table run on the lake.

Two halves. The view `cloudtrail_logs` has the columns of AWS's Athena table (lower-case names,
`eventtime`/`readonly` as strings, JSON columns as text, plus the partition columns Athena tables
use), derived once from the lake schema. sqlglot then only has to turn Trino functions into DuckDB
ones (`json_extract_scalar`, `from_iso8601_timestamp`, `date_parse`, `CROSS JOIN UNNEST`, ...).
"""

from __future__ import annotations

import logging
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
        "strftime(eventTime, '%Y/%m/%d') AS \"date\"",  # organization-trail projections
        "recipientAccountId AS account",
        "recipientAccountId AS account_id",
        "event_date",
        # eventTime itself, for comparisons the translation rewrites (see _eventtime_comparisons)
        "eventTime AS eventtime_ts",
    ]
    return f"CREATE OR REPLACE VIEW {VIEW} AS SELECT " + ", ".join(columns) + " FROM cloudtrail"


def create_view(con: Any) -> None:
    """Create `cloudtrail_logs` on a connection that already has the `cloudtrail` view."""
    con.execute(view_sql())


def athena_names(table: pa.Table) -> pa.Table:
    """Result columns named as Athena (Trino) names them: in lower case."""
    return table.rename_columns([name.lower() for name in table.column_names])


def _one_line(text: Any) -> str:
    """One line, with sqlglot's `<class 'sqlglot.expressions.GT'>` shortened to `GT`."""
    return re.sub(r"<class 'sqlglot\.[\w.]*\.(\w+)'>", r"\1", " ".join(str(text).split()))


def translate(sql: str) -> str:
    """Athena (Trino) SQL -> DuckDB SQL for the lake; a UsageError names what cannot be read."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    log = logging.getLogger("sqlglot")  # its warnings would reach stderr; errors say it all
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        trees = [t for t in sqlglot.parse(_backticks(sql), read="athena") if t is not None]
    except ParseError as exc:
        raise UsageError(_parse_message(exc)) from None
    finally:
        log.setLevel(level)
    for tree in trees:
        external = isinstance(tree, exp.Create) and "EXTERNAL" in tree.sql(
            dialect="athena").upper().split("TABLE", 1)[0]
        if isinstance(tree, exp.Command | exp.Alter) or external:  # MSCK, ADD PARTITION, DDL
            raise UsageError("not a query the lake can run (Athena table management has "
                             f"nothing to do here): {_one_line(tree.sql())[:80]!r}")
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
        _eventtime_comparisons(tree)
        for node in reversed(list(tree.walk())):  # innermost first: calls nest
            new = _joda_functions(node)
            if new is not node:
                node.replace(new)
        try:
            out.append(tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE))
        except UnsupportedError as exc:
            raise UsageError(f"cannot translate Athena SQL: {_one_line(exc)}") from None
    return ";\n".join(out)


_JODA = {"yyyy": "%Y", "YYYY": "%Y", "uuuu": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b",
         "MM": "%m", "M": "%-m", "dd": "%d", "d": "%-d", "HH": "%H", "H": "%-H", "hh": "%I",
         "h": "%-I", "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S", "SSSSSS": "%f",
         "SSS": "%g", "a": "%p", "EEEE": "%A", "EEE": "%a", "E": "%a", "D": "%j", "Z": "%z",
         "ZZ": "%z", "XXX": "%z", "z": "%Z"}


def joda_to_strftime(fmt: str) -> str:
    """A Joda/Java date pattern (Trino's parse_datetime/format_datetime) as a strftime one."""
    out, i = [], 0
    while i < len(fmt):
        char = fmt[i]
        if char == "'":  # quoted literal text; '' is a quote
            end = fmt.find("'", i + 1)
            while end != -1 and fmt[end + 1:end + 2] == "'":
                end = fmt.find("'", end + 2)
            text = fmt[i + 1:] if end == -1 else fmt[i + 1:end]
            out.append(text.replace("''", "'").replace("%", "%%") if text else "'")
            i = len(fmt) if end == -1 else end + 1
            continue
        run = len(fmt[i:]) - len(fmt[i:].lstrip(char)) if char.isalpha() else 1
        token = fmt[i:i + run]
        out.append(_JODA.get(token, token.replace("%", "%%")))
        i += run
    return "".join(out)


def _joda_functions(node: Any) -> Any:
    """parse_datetime/format_datetime take Joda patterns; DuckDB takes strftime ones."""
    from sqlglot import exp

    if isinstance(node, exp.ParseDatetime) and isinstance(node.args.get("format"), exp.Literal):
        return exp.StrToTime(this=node.this, format=exp.Literal.string(
            joda_to_strftime(node.args["format"].this)))
    if (isinstance(node, exp.Anonymous) and str(node.this).lower() == "format_datetime"
            and len(node.expressions) == 2 and isinstance(node.expressions[1], exp.Literal)):
        return exp.TimeToStr(this=node.expressions[0], format=exp.Literal.string(
            joda_to_strftime(node.expressions[1].this)))
    return node


_ISO_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _eventtime_comparisons(tree: Any) -> None:
    """`eventtime >= '2024-01-01T00:00:00Z'`: compare timestamps, not formatted strings.

    Same result (both sides have CloudTrail's second-precision ISO form, whose string order is
    time order), but the lake's eventTime column is compared directly instead of formatting
    every row first (~10x less work). Only columns that certainly are cloudtrail_logs.eventtime
    and only literals of exactly that form are rewritten; anything else keeps string semantics.
    """
    from sqlglot import exp
    from sqlglot.optimizer.scope import Scope, traverse_scope

    def iso(node: Any) -> bool:
        return isinstance(node, exp.Literal) and node.is_string and bool(
            _ISO_SECOND.match(node.this))

    def timestamp(node: Any) -> Any:
        return exp.cast(node.copy(), exp.DataType.build("TIMESTAMPTZ"))

    for scope in traverse_scope(tree):
        ours = {alias for alias, source in scope.sources.items()
                if isinstance(source, exp.Table) and source.name.lower() == VIEW}
        others = [source for alias, source in scope.sources.items() if alias not in ours]
        unqualified_ok = len(ours) == 1 and all(
            isinstance(o, Scope) and isinstance(o.expression, exp.Unnest)
            and "eventtime" not in {c.name.lower() for c in o.expression.args.get(
                "alias", exp.TableAlias()).columns} for o in others)
        for column in scope.columns:
            if column.name.lower() != "eventtime":
                continue
            if not (column.table in ours if column.table else unqualified_ok):
                continue
            parent = column.parent
            if isinstance(parent, exp.Between) and parent.this is column and iso(
                    parent.args.get("low")) and iso(parent.args.get("high")):
                parent.set("low", timestamp(parent.args["low"]))
                parent.set("high", timestamp(parent.args["high"]))
            elif isinstance(parent, exp.GT | exp.GTE | exp.LT | exp.LTE | exp.EQ | exp.NEQ) \
                    and iso(parent.expression if parent.this is column else parent.this):
                other = parent.expression if parent.this is column else parent.this
                other.replace(timestamp(other))
            else:
                continue
            # date_trunc: the string has whole seconds, so must the compared time.
            column.replace(exp.func("date_trunc", exp.Literal.string("second"), exp.column(
                "eventtime_ts", table=column.table or None)))


def _backticks(sql: str) -> str:
    """Athena accepts Hive's `quoted` identifiers in queries too; Trino's parser wants "quoted"."""
    out, quote = [], ""
    for char in sql:
        if quote:
            quote = "" if char == quote else quote  # '' inside a string closes and reopens
        elif char in "'\"":
            quote = char
        elif char == "`":
            char = '"'
        out.append(char)
    return "".join(out)


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
