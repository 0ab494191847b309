"""`trailscan athena-ddl`: the CREATE TABLE statements describe the lake's real Parquet files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from conftest import ct_path, ingest_lib, make_record, run_cli, write_records
from sqlglot import exp

from trailscan.ddl import DIALECTS, events_location, table_ddl

READ = {"athena": "athena", "trino": "trino", "spark": "spark"}


def _arrow_shape(arrow: pa.DataType) -> Any:
    """A type as a comparable value, independent of any engine's spelling."""
    if pa.types.is_struct(arrow):
        return ("struct", tuple((arrow.field(i).name, _arrow_shape(arrow.field(i).type))
                                for i in range(arrow.num_fields)))
    if pa.types.is_list(arrow):
        return ("array", _arrow_shape(arrow.value_type))
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    if pa.types.is_date(arrow):
        return "date"
    return {pa.string(): "string", pa.bool_(): "boolean", pa.int64(): "bigint",
            pa.float64(): "double"}[arrow]


def _sql_shape(kind: exp.DataType) -> Any:
    """The same value for a type sqlglot parsed out of the DDL."""
    this = kind.this
    if this == exp.DataType.Type.STRUCT:
        fields = []
        for item in kind.expressions:  # ColumnDef (Hive/Spark) or DataType with a name (ROW)
            if isinstance(item, exp.ColumnDef):
                fields.append((item.name, _sql_shape(item.args["kind"])))
            else:
                fields.append((item.this.name, _sql_shape(item.args["kind"])))
        return ("struct", tuple(fields))
    if this == exp.DataType.Type.ARRAY:
        return ("array", _sql_shape(kind.expressions[0]))
    if this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ):
        return "timestamp"
    simple = {exp.DataType.Type.TEXT: "string", exp.DataType.Type.VARCHAR: "string",
              exp.DataType.Type.BOOLEAN: "boolean", exp.DataType.Type.BIGINT: "bigint",
              exp.DataType.Type.DOUBLE: "double", exp.DataType.Type.DATE: "date"}
    return simple[this]


@pytest.fixture(scope="module")
def lake_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddl")
    write_records(ct_path(root / "src", "a.json.gz"), [make_record(), make_record()])
    ingest_lib([root / "src"], root / "lake")
    (first, *_) = sorted((root / "lake" / "events").rglob("*.parquet"))
    return first


@pytest.mark.parametrize("dialect", DIALECTS)
def test_ddl_columns_are_the_parquet_files_columns(dialect: str, lake_file: Path) -> None:
    sql = table_ddl("s3://bucket/prefix", dialect, "sec")
    create = sqlglot.parse(sql, read=READ[dialect])[0]
    assert isinstance(create, exp.Create)
    defs = [c for c in create.this.expressions if isinstance(c, exp.ColumnDef)]
    parsed = [(c.name, _sql_shape(c.args["kind"])) for c in defs]
    partition = "event_date"
    if dialect == "athena":  # Hive DDL: the partition column is declared in PARTITIONED BY
        assert f"PARTITIONED BY (`{partition}` string)" in sql
    else:
        assert parsed[-1] == (partition, "date")
        parsed = parsed[:-1]
    actual = pq.read_schema(lake_file)
    expected = [(f.name, _arrow_shape(f.type)) for f in actual]
    assert parsed == expected
    # nested structs are spelled out, not flattened to strings
    shapes = dict(parsed)
    issuer = dict(dict(shapes["userIdentity"][1])["sessionContext"][1])["sessionIssuer"]
    assert ("arn", "string") in issuer[1]
    assert shapes["resources"][0] == "array"


def test_athena_partition_projection() -> None:
    sql = table_ddl("s3://bucket/prefix/", "athena", "sec", "trail")
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `sec`.`trail`" in sql
    assert "LOCATION 's3://bucket/prefix/events/'" in sql
    for prop in ("'projection.enabled' = 'true'", "'projection.event_date.type' = 'date'",
                 "'projection.event_date.format' = 'yyyy-MM-dd'",
                 "'projection.event_date.range' = '2013-11-01,NOW'",
                 "'storage.location.template' = "
                 "'s3://bucket/prefix/events/event_date=${event_date}/'"):
        assert prop in sql


def test_trino_and_spark_statements() -> None:
    trino = table_ddl("s3://b/p", "trino", "sec")
    assert "external_location = 's3://b/p/events/'" in trino
    assert "partitioned_by = ARRAY['event_date']" in trino
    assert "format = 'PARQUET'" in trino
    spark = table_ddl("s3://b/p", "spark")
    assert "USING parquet\nPARTITIONED BY (`event_date`)\nLOCATION 's3://b/p/events/'" in spark


def test_local_lake_is_a_file_uri(tmp_path: Path) -> None:
    assert events_location(str(tmp_path)) == tmp_path.resolve().as_uri() + "/events/"


def test_cli_prints_all_dialects_and_rejects_bad_names() -> None:
    result = run_cli("athena-ddl", "--lake", "s3://b/p", "--database", "sec")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("CREATE ") == 3
    result = run_cli("athena-ddl", "--lake", "s3://b/p", "--dialect", "spark")
    assert result.stdout.startswith("CREATE TABLE IF NOT EXISTS `cloudtrail`")
    result = run_cli("athena-ddl", "--lake", "s3://b/p", "--table", "x; DROP TABLE y")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --table")
