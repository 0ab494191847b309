"""Athena-dialect SQL: AWS's documented CloudTrail queries run unchanged on the lake."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import ct_path, ingest_lib, query, run_cli, write_records
from scenarios import HOP2_ARN, A, s3_guide_records

from trailscan.athena import translate
from trailscan.errors import UsageError
from trailscan.query import run_query

DOC_QUERIES = {q["name"]: q["sql"] for q in tomllib.loads(
    (Path(__file__).parent / "data" / "athena_doc_queries.toml").read_text())["query"]}
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def athena(lake: Path, sql: str) -> list[dict[str, Any]]:
    """`trailscan query --dialect athena --format json`, parsed."""
    result = run_cli("query", "--lake", lake, "--dialect", "athena", "--format", "json", sql)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_doc_queries_are_all_tested() -> None:
    assert set(DOC_QUERIES) == {"nested_fields", "unnest_resources", "delete_bucket",
                                "anonymous_requests", "template", "sigv2_events",
                                "sigv2_requesters", "sigv2_requesters_partitioned",
                                "put_object_requests", "get_object_requests",
                                "anonymous_requests_in_period"}


@pytest.fixture(scope="module")
def s3_guide_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("s3guide")
    write_records(ct_path(root / "src", "s3.json.gz", day="2019/07/05"), s3_guide_records())
    ingest_lib([root / "src"], root / "lake")
    return root / "lake"


LEGACY = "arn:aws:iam::111122223333:user/legacy-app"


def test_s3_guide_sigv2_queries(s3_guide_lake: Path) -> None:
    rows = athena(s3_guide_lake, DOC_QUERIES["sigv2_events"])
    assert len(rows) == 1
    row = rows[0]
    # Column names come out in lower case, as Athena (Trino) names them.
    assert (row["eventtime"], row["s3_action"], row["aws_region"], row["user_agent"]) == (
        "2019-02-19T10:00:00Z", "GetObject", "us-east-1", "aws-sdk-java/1.4.2 Linux/2.6")
    assert json.loads(row["request_parameters"])["key"] == "old/a.txt"
    expected = [{"arn": LEGACY, "requestcount": 1}]
    assert athena(s3_guide_lake, DOC_QUERIES["sigv2_requesters"]) == expected
    assert athena(s3_guide_lake, DOC_QUERIES["sigv2_requesters_partitioned"]) == expected


def test_s3_guide_object_access_queries(s3_guide_lake: Path) -> None:
    puts = athena(s3_guide_lake, DOC_QUERIES["put_object_requests"])
    assert [(r["eventtime"], r["bucketname"], r["object"]) for r in puts] == [
        ("2019-07-05T12:00:00Z", "myawsexamplebucket1", "data/report.csv")]
    gets = athena(s3_guide_lake, DOC_QUERIES["get_object_requests"])
    assert sorted((r["eventtime"], r["object"], r["userarn"]) for r in gets) == [
        ("2019-07-05T13:00:00Z", "data/report.csv",
         "arn:aws:sts::111122223333:assumed-role/Admin/alice"),
        ("2019-07-05T14:00:00Z", "site/index.html", None)]
    anonymous = athena(s3_guide_lake, DOC_QUERIES["anonymous_requests_in_period"])
    assert [(r["eventtime"], r["sourceipaddress"], r["accountid"]) for r in anonymous] == [
        ("2019-07-05T14:00:00Z", "192.0.2.200", "ANONYMOUS_PRINCIPAL")]


def test_doc_nested_fields(investigation_lake: Path) -> None:
    rows = athena(investigation_lake, DOC_QUERIES["nested_fields"])
    assert len(rows) == 10
    for row in rows:
        assert row["arn"].startswith("arn:aws:iam::")
        assert ":role/" in row["arn"]
    keys = [(r["eventsource"], r["eventname"]) for r in rows]
    assert keys == sorted(keys)


def test_doc_unnest_resources(investigation_lake: Path) -> None:
    rows = athena(investigation_lake, DOC_QUERIES["unnest_resources"])
    assert rows == [{"awsregion": "us-east-1", "s3_resource": "example/datafile.txt",
                     "eventname": "GetObject", "eventtime": "2026-03-03T14:00:00Z",
                     "useragent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64"}]


def test_doc_delete_bucket(investigation_lake: Path) -> None:
    rows = athena(investigation_lake, DOC_QUERIES["delete_bucket"])
    assert {"awsregion": "us-east-1", "deleted_bucket": "old-logs-bucket",
            "time_deleted": "2026-03-03T14:10:00Z", "username": "mallory-ops",
            "bucket_acct_id": A} in rows
    expected = query(investigation_lake, "SELECT count(*) FROM cloudtrail, unnest(resources) "
                     "WHERE eventName = 'DeleteBucket'")[0][0]
    assert len(rows) == expected


def test_doc_anonymous_requests(investigation_lake: Path) -> None:
    # Verbatim, the placeholder bucket name matches nothing; with a real bucket name, the
    # anonymous GetObject of tests/scenarios.py.
    assert athena(investigation_lake, DOC_QUERIES["anonymous_requests"]) == []
    sql = DOC_QUERIES["anonymous_requests"].replace("[your bucket name ]", "public-site-assets")
    rows = athena(investigation_lake, sql)
    assert len(rows) == 1
    assert rows[0]["useridentity"]["accountId"] == "ANONYMOUS_PRINCIPAL"
    assert rows[0]["eventtime"] == "2026-03-03T14:20:00Z"
    assert rows[0]["readonly"] == "true"
    assert json.loads(rows[0]["requestparameters"])["key"] == "index.html"


def test_doc_template(investigation_lake: Path) -> None:
    rows = athena(investigation_lake, DOC_QUERIES["template"])
    assert len(rows) == 100
    assert list(rows[0]) == ["arn", "eventname", "sourceipaddress", "eventtime"]
    assert all(ISO.match(r["eventtime"]) for r in rows)


# --- Trino functions and Athena's string-typed columns, beyond the doc samples ---------------


def test_string_eventtime_and_timestamp_functions(investigation_lake: Path) -> None:
    sql = """
        SELECT count(*) AS n,
               min(from_iso8601_timestamp(eventtime)) AS first_ts,
               max(date_parse(eventtime, '%Y-%m-%dT%H:%i:%sZ')) AS last_ts
        FROM cloudtrail_logs
        WHERE eventtime >= '2026-03-03T00:00:00Z' AND eventtime < '2026-03-04T00:00:00Z'
          AND from_iso8601_timestamp(eventtime) > from_iso8601_timestamp('2026-03-03T09:00:00Z')
    """
    (row,) = athena(investigation_lake, sql)
    expected = query(investigation_lake,
                     "SELECT count(*), min(eventTime), max(eventTime) FROM cloudtrail WHERE "
                     "eventTime > TIMESTAMPTZ '2026-03-03 09:00:00+00' AND eventTime < "
                     "TIMESTAMPTZ '2026-03-04 00:00:00+00'")[0]
    assert row["n"] == expected[0] > 20
    assert row["first_ts"].startswith(expected[1].strftime("%Y-%m-%dT%H:%M:%S"))
    assert row["last_ts"].startswith(expected[2].strftime("%Y-%m-%dT%H:%M:%S"))


def test_json_extract_scalar_and_qualified_console_table_name(investigation_lake: Path) -> None:
    sql = f"""
        SELECT json_extract_scalar(requestparameters, '$.bucketName') AS bucket,
               useridentity.sessioncontext.sessionissuer.username AS role,
               approx_distinct(eventid) AS events
        FROM "default"."cloudtrail_logs_acme_org_trail"
        WHERE eventname = 'PutBucketPolicy' AND useridentity.arn = '{HOP2_ARN}'
        GROUP BY 1, 2
    """
    assert athena(investigation_lake, sql) == [
        {"bucket": "acme-prod-secrets", "role": "DeployRole", "events": 1}]


def test_partition_columns_and_readonly_string(investigation_lake: Path) -> None:
    sql = ("SELECT year, month, day, \"timestamp\", region, count(*) AS n FROM cloudtrail_logs "
           "WHERE readonly = 'false' AND day = '03' AND region = 'eu-west-1' "
           "GROUP BY 1, 2, 3, 4, 5")
    rows = athena(investigation_lake, sql)
    assert len(rows) == 1
    assert rows[0] | {"n": 0} == {"year": "2026", "month": "03", "day": "03",
                                  "timestamp": "2026/03/03", "region": "eu-west-1", "n": 0}
    expected = query(investigation_lake, "SELECT count(*) FROM cloudtrail WHERE NOT readOnly "
                     "AND event_date = DATE '2026-03-03' AND awsRegion = 'eu-west-1'")[0][0]
    assert rows[0]["n"] == expected > 0


def test_translation_maps_trino_functions() -> None:
    out = translate("SELECT json_extract_scalar(requestparameters, '$.a'), "
                    "from_iso8601_timestamp(eventtime) FROM awsdatacatalog.db.cloudtrail_x")
    assert "cloudtrail_logs" in out and "awsdatacatalog" not in out
    assert "json_extract_scalar" not in out.lower()


@pytest.mark.parametrize("sql, fragment", [
    ("SELECT eventname FROM cloudtrail_logs WHERE eventname = = 'x'", "eventname ="),
    ("SELECT (eventname FROM cloudtrail_logs", "(eventname FROM"),
])
def test_translation_error_is_one_line_with_fragment(sql: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        translate(sql)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("cannot parse Athena SQL at line 1")
    assert fragment in message


def test_cli_translation_error_exit_2(investigation_lake: Path) -> None:
    result = run_cli("query", "--lake", investigation_lake, "--dialect", "athena",
                     "SELECT * FROM cloudtrail_logs WHERE eventtime >")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot parse Athena SQL"), lines
    assert "eventtime" in lines[0]


def test_unknown_column_is_a_clean_sql_error(investigation_lake: Path) -> None:
    with pytest.raises(UsageError, match=r"SQL error: .*nosuchcolumn"):
        run_query("SELECT nosuchcolumn FROM cloudtrail_logs", investigation_lake, "athena")


def test_ir_cookbook_idioms(investigation_lake: Path) -> None:
    """Idioms common in incident-response Athena queries: backtick-quoted partition columns,
    Joda patterns in parse_datetime/format_datetime, regexp_like, element_at(split(...))."""
    sql = """
        SELECT format_datetime(parse_datetime(eventtime, 'yyyy-MM-dd''T''HH:mm:ss''Z'),
                               'yyyy/MM/dd HH') AS hour,
               element_at(split(useridentity.arn, '/'), -1) AS session,
               count(*) AS n
        FROM cloudtrail_logs_partitioned
        WHERE `timestamp` = '2026/03/03' AND account_id = '777788889999'
          AND regexp_like(eventname, '^(Get|Put)BucketPolicy$')
          AND cardinality(resources) > 0
          AND date(from_iso8601_timestamp(eventtime)) = date '2026-03-03'
          AND to_unixtime(from_iso8601_timestamp(eventtime)) > 0
        GROUP BY 1, 2
    """
    assert athena(investigation_lake, sql) == [
        {"hour": "2026/03/03 10", "session": "chain-2", "n": 2}]


@pytest.mark.parametrize("joda, strftime", [
    ("yyyy-MM-dd'T'HH:mm:ss'Z'", "%Y-%m-%dT%H:%M:%SZ"),
    ("yyyy-MM-dd'T'HH:mm:ss'Z", "%Y-%m-%dT%H:%M:%SZ"),  # unterminated quote: literal to the end
    ("dd/MMM/yyyy:HH:mm:ss Z", "%d/%b/%Y:%H:%M:%S %z"),
    ("yyyy-MM-dd HH:mm:ss.SSS", "%Y-%m-%d %H:%M:%S.%g"),
    ("'it''s' 100%", "it's 100%%"),
])
def test_joda_patterns(joda: str, strftime: str) -> None:
    from trailscan.athena import joda_to_strftime

    assert joda_to_strftime(joda) == strftime


def test_backticks_inside_strings_are_kept() -> None:
    out = translate("SELECT `eventname` FROM cloudtrail_logs WHERE useragent = 'a`b'")
    assert '"eventname"' in out and "'a`b'" in out


@pytest.mark.parametrize("condition", [
    "eventtime >= '2026-03-03T10:00:00Z'", "eventtime > '2026-03-03T10:00:00Z'",
    "eventtime <= '2026-03-03T10:05:00Z'", "'2026-03-03T10:05:00Z' > eventtime",
    "eventtime = '2026-03-03T10:07:00Z'", "eventtime <> '2026-03-03T10:07:00Z'",
    "eventtime BETWEEN '2026-03-03T10:00:00Z' AND '2026-03-03T10:06:00Z'",
])
def test_eventtime_string_comparisons_keep_their_meaning(investigation_lake: Path,
                                                         condition: str) -> None:
    """Comparisons with an ISO literal are run on the timestamp (faster); the rows must be the
    ones a string comparison gives (`eventtime || ''` is never rewritten)."""
    assert "eventtime_ts" in translate(f"SELECT 1 FROM cloudtrail_logs WHERE {condition}")
    rows = athena(investigation_lake, "SELECT eventid FROM cloudtrail_logs WHERE "
                  f"{condition} ORDER BY eventid")
    strings = athena(investigation_lake, "SELECT eventid FROM cloudtrail_logs WHERE "
                     f"{condition.replace('eventtime', '(eventtime || ' + chr(39) * 2 + ')')} "
                     "ORDER BY eventid")
    assert rows == strings and len(rows) > 0


def test_eventtime_rewrite_leaves_other_columns_alone() -> None:
    out = translate("SELECT eventtime FROM (SELECT substr(eventtime, 1, 10) AS eventtime "
                    "FROM cloudtrail_logs) WHERE eventtime > '2026-03-03T00:00:00Z' "
                    "AND eventtime > '2026-03-03'")
    assert "eventtime_ts" not in out


@pytest.mark.parametrize("sql", [
    "MSCK REPAIR TABLE cloudtrail_logs",
    "ALTER TABLE cloudtrail_logs ADD PARTITION (region='us-east-1') LOCATION 's3://b/AWSLogs/'",
    "CREATE EXTERNAL TABLE cloudtrail_logs (eventversion STRING) LOCATION 's3://b/AWSLogs/'",
])
def test_table_management_is_refused_in_one_line(investigation_lake: Path, sql: str) -> None:
    result = run_cli("query", "--lake", investigation_lake, "--dialect", "athena", sql)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: not a query the lake can run")
    assert len(result.stderr.strip().splitlines()) == 1  # no sqlglot warning either


def test_organization_trail_partition_columns(investigation_lake: Path) -> None:
    sql = ("SELECT \"date\", account, count(*) AS n FROM cloudtrail_logs WHERE \"date\" = "
           "date_format(date '2026-03-04' - interval '1' day, '%Y/%m/%d') AND region IN "
           "('eu-west-1') AND account IN ('777788889999') GROUP BY 1, 2")
    rows = athena(investigation_lake, sql)
    expected = query(investigation_lake, "SELECT count(*) FROM cloudtrail WHERE event_date = "
                     "DATE '2026-03-03' AND awsRegion = 'eu-west-1' AND recipientAccountId = "
                     "'777788889999'")[0][0]
    assert rows == [{"date": "2026/03/03", "account": "777788889999", "n": expected}]
