"""Table DDL that makes the lake queryable in Athena, Trino (Hive connector) and Spark SQL.

The lake is plain hive-partitioned Parquet (`events/event_date=YYYY-MM-DD/*.parquet`), so other
engines only need a table definition. Every column type here is derived from the one Arrow
schema (`schema.arrow_schema()`), so the DDL cannot drift from what ingest writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from . import schema
from .errors import UsageError

DIALECTS = ("athena", "trino", "spark")
DEFAULT_TABLE = "cloudtrail"
#: The first day partition projection enumerates (CloudTrail started in November 2013).
PROJECTION_START = "2013-11-01"
_SIMPLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _hive_name(name: str) -> str:
    """Hive/Athena/Spark identifier: backticks (a backtick inside is doubled)."""
    return "`" + name.replace("`", "``") + "`"


def _trino_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _field_name(name: str, dialect: str) -> str:
    """Struct field names: bare when they are plain identifiers (AWS's own CloudTrail DDL writes
    `type:string`), quoted otherwise."""
    if dialect == "trino":
        return _trino_name(name)
    return name if _SIMPLE.match(name) else _hive_name(name)


def column_type(arrow: pa.DataType, dialect: str) -> str:
    """The engine's type for one Arrow type of the lake schema."""
    if pa.types.is_struct(arrow):
        fields = [arrow.field(i) for i in range(arrow.num_fields)]
        if dialect == "trino":
            inner = ", ".join(f"{_field_name(f.name, dialect)} {column_type(f.type, dialect)}"
                              for f in fields)
            return f"ROW({inner})"
        sep = ": " if dialect == "spark" else ":"
        inner = ",".join(f"{_field_name(f.name, dialect)}{sep}{column_type(f.type, dialect)}"
                         for f in fields)
        return f"STRUCT<{inner}>" if dialect == "spark" else f"struct<{inner}>"
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        item = column_type(arrow.value_type, dialect)
        return {"trino": f"ARRAY({item})", "spark": f"ARRAY<{item}>"}.get(dialect,
                                                                           f"array<{item}>")
    scalars = {
        "string": ("string", "varchar", "STRING"),
        "bool": ("boolean", "boolean", "BOOLEAN"),
        "int64": ("bigint", "bigint", "BIGINT"),
        "int32": ("int", "integer", "INT"),
        "double": ("double", "double", "DOUBLE"),
        "date32[day]": ("date", "date", "DATE"),
    }
    if pa.types.is_timestamp(arrow):
        # Parquet INT64 microseconds adjusted to UTC: Athena/Hive `timestamp`, Trino's Hive
        # connector `timestamp` (its precision is the catalog's), Spark TIMESTAMP (LTZ).
        return {"spark": "TIMESTAMP"}.get(dialect, "timestamp")
    key = "string" if pa.types.is_string(arrow) or pa.types.is_large_string(arrow) else str(arrow)
    if key not in scalars:
        raise UsageError(f"no {dialect} type for Arrow type {arrow}")
    return scalars[key][DIALECTS.index(dialect)]


def columns(dialect: str) -> list[tuple[str, str]]:
    """(name, type) of every data column, in lake order (the partition column excluded)."""
    return [(f.name, column_type(f.type, dialect)) for f in schema.arrow_schema()]


def events_location(lake: str) -> str:
    """Where the lake's Parquet data lives: `<lake>/events/` as a URI (S3 as given, a local
    directory as an absolute file: URI)."""
    if re.match(r"^[a-z][a-z0-9+.-]*://", lake):
        return lake.rstrip("/") + "/events/"
    return Path(lake).expanduser().resolve().as_uri().rstrip("/") + "/events/"


def _check_name(kind: str, name: str | None) -> None:
    if name is not None and not _SIMPLE.match(name):
        raise UsageError(f"--{kind} {name!r}: use letters, digits and underscores "
                         "(starting with a letter or underscore)")


def table_ddl(lake: str, dialect: str, database: str | None = None,
              table: str = DEFAULT_TABLE) -> str:
    """The CREATE TABLE statement(s) for one engine, ready to paste (statements end with `;`)."""
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    _check_name("database", database)
    _check_name("table", table)
    location = events_location(lake)
    part = schema.PARTITION_COLUMN
    literal = location.replace("'", "''")
    if dialect == "trino":
        name = ".".join(_trino_name(n) for n in (database, table) if n)
        cols = [f"  {_trino_name(n)} {t}" for n, t in columns(dialect)]
        cols.append(f"  {_trino_name(part)} date")  # Hive connector: partition columns last
        return (f"CREATE TABLE IF NOT EXISTS {name} (\n" + ",\n".join(cols) + "\n)\nWITH (\n"
                f"  format = 'PARQUET',\n  external_location = '{literal}',\n"
                f"  partitioned_by = ARRAY['{part}']\n);\n"
                "-- register the day partitions (again after new days arrive):\n"
                f"CALL system.sync_partition_metadata('{database or 'default'}', '{table}', "
                "'FULL');\n")
    name = ".".join(_hive_name(n) for n in (database, table) if n)
    if dialect == "spark":
        cols = [f"  {_hive_name(n)} {t}" for n, t in columns(dialect)]
        cols.append(f"  {_hive_name(part)} DATE")
        return (f"CREATE TABLE IF NOT EXISTS {name} (\n" + ",\n".join(cols) + "\n)\n"
                f"USING parquet\nPARTITIONED BY ({_hive_name(part)})\nLOCATION '{literal}';\n"
                "-- register the day partitions (again after new days arrive):\n"
                f"MSCK REPAIR TABLE {name};\n")
    cols = [f"  {_hive_name(n)} {t}" for n, t in columns(dialect)]
    template = f"{location}{part}=${{{part}}}/".replace("'", "''")
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n" + ",\n".join(cols) + "\n)\n"
            f"PARTITIONED BY ({_hive_name(part)} string)\nSTORED AS PARQUET\n"
            f"LOCATION '{literal}'\nTBLPROPERTIES (\n"
            "  'projection.enabled' = 'true',\n"
            f"  'projection.{part}.type' = 'date',\n"
            f"  'projection.{part}.format' = 'yyyy-MM-dd',\n"
            f"  'projection.{part}.range' = '{PROJECTION_START},NOW',\n"
            f"  'projection.{part}.interval' = '1',\n"
            f"  'projection.{part}.interval.unit' = 'DAYS',\n"
            f"  'storage.location.template' = '{template}'\n);\n")


def all_ddl(lake: str, database: str | None = None, table: str = DEFAULT_TABLE) -> str:
    """The statements for every engine, each under a comment naming it."""
    titles = {"athena": "Athena (partition projection: no partitions to load)",
              "trino": "Trino / Starburst, Hive connector",
              "spark": "Spark SQL (Databricks, EMR, Glue)"}
    return "\n".join(f"-- {titles[d]}\n{table_ddl(lake, d, database, table)}" for d in DIALECTS)
