"""Ingest end to end: real files in tmp_path -> the lake -> read back with SQL and other engines."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import (
    ct_path,
    drop_fields,
    encode,
    ingest_cli,
    ingest_lib,
    make_insight,
    make_record,
    quarantine_list,
    query,
    scalar,
    write_bytes,
    write_records,
)

import trailscan
import trailscan.lake
from trailscan import schema
from trailscan.errors import UsageError
from trailscan.lake import COMPACT_AFTER, Lake

CT = schema.cloudtrail_columns()


def rows(lake: Path, sql: str = "SELECT * FROM cloudtrail ORDER BY eventID") -> list[dict]:
    con = trailscan.open_lake(str(lake))
    try:
        return con.sql(sql).to_arrow_table().to_pylist()
    finally:
        con.close()


def event_ids(lake: Path) -> list[str]:
    return [r[0] for r in query(lake, "SELECT eventID FROM cloudtrail ORDER BY eventID")]


def partition_files(lake: Path) -> dict[str, list[Path]]:
    return {d.name: sorted(d.glob("*.parquet")) for d in sorted((lake / "events").glob("*=*"))}


# --- containers and file detection -----------------------------------------------------------


def test_every_container_format_lands_with_its_values(src, lake):
    files = {}
    for fmt, name in [("records", "records.json.gz"), ("array", "array.json"),
                      ("ndjson", "export.ndjson"), ("lookup", "lookup.json"),
                      ("lookup-lines", "lookup-lines.jsonl")]:
        recs = [make_record(eventName=f"{fmt}-{i}", awsRegion="eu-west-1") for i in range(3)]
        files[fmt] = (write_records(src / name, recs, fmt), recs)
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_seen"] == 5
    assert stats["files_ingested"] == 5
    assert stats["events_read"] == stats["events_written"] == 15
    assert stats["events_quarantined"] == stats["events_duplicate"] == 0
    got = {r["eventID"]: r for r in rows(lake)}
    for path, recs in files.values():
        for rec in recs:
            row = got[rec["eventID"]]
            assert row["eventName"] == rec["eventName"]
            assert row["source_object"] == str(path)
            assert row["eventTime"] == datetime(2024, 3, 1, 12, tzinfo=UTC)
            assert row["userIdentity"]["arn"] == rec["userIdentity"]["arn"]
            assert row["resources"][0]["ARN"] == rec["resources"][0]["ARN"]
            assert json.loads(row["requestParameters"]) == rec["requestParameters"]
            assert json.loads(row["additionalEventData"]) == rec["additionalEventData"]
    containers = dict(query(lake, "SELECT uri, container FROM manifest"))
    assert containers == {str(files["records"][0]): "records",
                          str(files["array"][0]): "array",
                          str(files["ndjson"][0]): "ndjson",
                          str(files["lookup"][0]): "lookup-events",
                          str(files["lookup-lines"][0]): "ndjson"}


def test_gzip_is_detected_by_magic_bytes_not_by_name(src, lake):
    gz_named_json = write_records(src / "really-gzip.json", [make_record()], compress=True)
    plain_named_gz = write_records(src / "really-plain.json.gz", [make_record()], compress=False)
    no_suffix = write_records(src / "noextension", [make_record()], compress=True)
    assert no_suffix.read_bytes()[:2] == b"\x1f\x8b"
    assert gz_named_json.read_bytes()[:2] == b"\x1f\x8b"
    assert plain_named_gz.read_bytes()[:1] == b"{"
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_ingested"] == 3
    assert stats["events_written"] == 3
    assert stats["files_quarantined"] == 0
    assert scalar(lake, "SELECT count(DISTINCT source_object) FROM cloudtrail") == 3


def test_concatenated_gzip_members_are_one_file(src, lake):
    recs = [make_record() for _ in range(4)]
    text = encode(recs)
    cut = len(text) // 2  # split inside the JSON document: only the joined text parses
    write_bytes(src / "members.json.gz", gzip.compress(text[:cut]) + gzip.compress(text[cut:]))
    lines = [make_record(), make_record()]
    write_bytes(src / "cat.jsonl.gz", gzip.compress(encode(lines[:1], "ndjson"))
                + gzip.compress(encode(lines[1:], "ndjson")))
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_ingested"] == 2
    assert stats["events_written"] == 6
    assert event_ids(lake) == sorted(r["eventID"] for r in recs + lines)


def test_insight_events_ingest(src, lake):
    insights = [make_insight(), make_insight(eventTime="2024-03-01T14:00:00Z")]
    insights[1]["insightDetails"]["state"] = "End"
    path = write_records(ct_path(src, "111122223333_CloudTrail-Insight_us-east-1_x.json.gz",
                                 kind="CloudTrail-Insight"), insights)
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_quarantined"] == 0, quarantine_list(lake)
    assert stats["events_written"] == 2
    got = rows(lake, "SELECT * FROM cloudtrail ORDER BY eventTime")
    assert [r["eventType"] for r in got] == ["AwsCloudTrailInsight"] * 2
    assert [json.loads(r["insightDetails"]) for r in got] == [i["insightDetails"] for i in insights]
    assert all(r["userIdentity"] is None and r["source_object"] == str(path) for r in got)
    assert query(lake, "SELECT json_extract_string(insightDetails, '$.state') FROM cloudtrail "
                       "ORDER BY eventTime") == [("Start",), ("End",)]


def test_digests_and_sidecars_are_recognised_and_not_read_as_events(src, lake):
    good = write_records(ct_path(src, "log.json.gz"), [make_record(), make_record()])
    digest = {"awsAccountId": "111122223333", "digestStartTime": "2024-03-01T00:00:00Z",
              "digestEndTime": "2024-03-01T01:00:00Z", "digestS3Bucket": "b",
              "digestS3Object": "k", "logFiles": [{"s3Object": str(good)}]}
    # By key: even content that would parse as events is not read.
    write_records(ct_path(src, "111122223333_CloudTrail-Digest_us-east-1_t_20240301T0100Z.json.gz",
                          kind="CloudTrail-Digest"), [make_record()])
    # By key: garbage under CloudTrail-Digest/ is not quarantined either.
    write_bytes(src / "CloudTrail-Digest" / "odd.json.gz", b"not even gzip")
    # By content: a digest in a flat export.
    write_bytes(src / "flat-digest.json", json.dumps(digest).encode())
    # A signature/metadata sidecar next to a log file.
    write_records(src / "log.json.gz.metadata.json", [make_record()])
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_seen"] == 5
    assert stats["files_ingested"] == 1
    assert stats["files_quarantined"] == 0
    assert stats["files_digest"] == 4
    assert stats["events_read"] == stats["events_written"] == 2
    assert quarantine_list(lake) == []
    assert query(lake, "SELECT DISTINCT source_object FROM cloudtrail") == [(str(good),)]
    assert [u for (u,) in query(lake, "SELECT uri FROM manifest")] == [str(good)]


# --- the lake on disk ------------------------------------------------------------------------


def _spread_records() -> list[dict[str, Any]]:
    times = ["2024-02-29T23:59:59Z", "2024-03-01T00:00:00Z", "2024-03-01T12:00:00Z",
             "2024-03-02T01:30:00+03:00", "2024-03-02T23:00:00-02:00", "2024-12-31T23:59:59Z"]
    recs = []
    for i, t in enumerate(times):
        recs.append(make_record(
            eventTime=t, eventName=f"Op{i}",
            requestParameters={"i": i, "nested": {"list": [1.5, "x", None]}, "ü": "✓"},
            newTopLevelField={"i": i} if i % 2 else None,
            userIdentity={"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/u{i}",
                          "accountId": "111122223333", "extraIdentity": i},
            resources=None if i == 3 else [{"ARN": f"arn:{i}", "type": "T"}]))
    return recs


def test_partition_is_the_utc_date_of_event_time_not_the_file_path(src, lake):
    recs = _spread_records()
    # Delivered in a file for 2024/03/01 (late and early events included).
    write_records(ct_path(src, "f.json.gz", day="2024/03/01"), recs)
    ingest_cli(src, "--lake", lake)
    got = query(lake, "SELECT eventName, event_date, eventTime FROM cloudtrail ORDER BY eventName")
    expected_dates = [date(2024, 2, 29), date(2024, 3, 1), date(2024, 3, 1), date(2024, 3, 1),
                      date(2024, 3, 3), date(2024, 12, 31)]
    assert [d for _, d, _ in got] == expected_dates
    assert [t.astimezone(UTC).date() for _, _, t in got] == expected_dates
    assert sorted(partition_files(lake)) == [
        "event_date=2024-02-29", "event_date=2024-03-01", "event_date=2024-03-03",
        "event_date=2024-12-31"]


def _sorted_ct(table: pa.Table) -> list[dict[str, Any]]:
    return table.select(CT).sort_by("eventID").to_pylist()


def test_lake_reads_identically_with_pyarrow_polars_and_duckdb_without_trailscan(src, lake):
    recs = _spread_records() + [make_record(eventTime=f"2024-03-0{d}T10:00:00Z")
                                for d in range(1, 6)]
    write_records(src / "a.json.gz", recs[:6])
    ingest_cli(src, "--lake", lake)
    write_records(src / "b.json", recs[6:], "array")
    ingest_cli(src, "--lake", lake)
    events = lake / "events"

    by_pyarrow = ds.dataset(events, format="parquet", partitioning="hive").to_table()
    by_polars = pl.scan_parquet(str(events / "**" / "*.parquet"),
                                hive_partitioning=True).collect().to_arrow()
    con = duckdb.connect()
    by_duckdb = con.sql(f"SELECT * FROM read_parquet('{events}/**/*.parquet', "
                        "hive_partitioning = true)").to_arrow_table()
    con.close()
    by_trailscan = pa.Table.from_pylist(rows(lake))

    for table in (by_pyarrow, by_polars, by_duckdb, by_trailscan):
        assert table.num_rows == len(recs)
        assert set(CT) <= set(table.column_names)
        assert "event_date" in table.column_names
    reference = _sorted_ct(by_pyarrow)
    assert _sorted_ct(by_polars) == reference
    assert _sorted_ct(by_duckdb) == reference
    assert _sorted_ct(by_trailscan) == reference
    # And the values are the input values.
    by_id = {r["eventID"]: r for r in reference}
    for rec in recs:
        row = by_id[rec["eventID"]]
        assert json.loads(row["requestParameters"]) == rec["requestParameters"]
        assert row["userIdentity"]["arn"] == rec["userIdentity"]["arn"]
    for table in (by_pyarrow, by_polars, by_duckdb):
        for row in table.select(["eventTime", "event_date"]).to_pylist():
            assert str(row["event_date"]) == row["eventTime"].astimezone(UTC).date().isoformat()


@pytest.mark.parametrize("parent", ["env=prod", "awsRegion=zz"])
def test_lake_below_a_directory_named_like_a_partition_keeps_its_values(src, tmp_path, parent):
    """Only the lake's own `event_date=` directories are partitions, not the path above it."""
    lake = tmp_path / parent / "lake"
    rec = make_record(awsRegion="eu-central-1")
    write_records(src / "a.json", [rec])
    ingest_cli(src, "--lake", lake)
    [row] = rows(lake)
    assert row["awsRegion"] == "eu-central-1"
    assert set(row) == {*schema.arrow_schema().names, "event_date"}


def test_provenance_and_unknown_fields_columns(src, lake):
    rec = make_record(brandNew={"v": [1, 2]}, userIdentity={
        "type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333",
        "sessionContext": {"attributes": {"mfaAuthenticated": "false"}, "ctxExtra": "c"}})
    path = write_records(src / "one.json.gz", [rec])
    ingest_cli(src, "--lake", lake)
    [row] = rows(lake)
    assert row["source_object"] == str(path)
    assert row["integrity_status"] == "unchecked"
    assert json.loads(row["unknown_fields"]) == {
        "brandNew": {"v": [1, 2]}, "userIdentity": {"sessionContext": {"ctxExtra": "c"}}}
    assert query(lake, "SELECT json_extract(unknown_fields, '$.brandNew.v[1]')::INT, "
                       "userIdentity.type FROM cloudtrail") == [(2, "Root")]


# --- manifest: incremental and idempotent ----------------------------------------------------


def _tree(src: Path, files: int = 5, per_file: int = 3) -> list[dict[str, Any]]:
    recs = []
    for f in range(files):
        time = f"2024-03-0{1 + f % 3}T0{f}:00:00Z"
        batch = [make_record(eventTime=time) for _ in range(per_file)]
        write_records(ct_path(src, f"file{f}.json.gz", day=f"2024/03/0{1 + f % 3}"), batch)
        recs += batch
    return recs


def test_second_ingest_of_the_same_tree_reads_nothing(src, lake):
    recs = _tree(src)
    first = ingest_cli(src, "--lake", lake)
    assert first["files_ingested"] == 5 and first["events_written"] == len(recs)
    before = rows(lake)
    second = ingest_cli(src, "--lake", lake)
    assert second["files_seen"] == second["files_skipped"] == 5
    assert second["files_ingested"] == 0
    assert second["events_read"] == second["events_written"] == 0
    assert second["bytes_read"] == 0
    assert rows(lake) == before


def test_touched_file_is_reread_but_adds_no_rows(src, lake):
    recs = _tree(src)
    ingest_cli(src, "--lake", lake)
    target = ct_path(src, "file1.json.gz", day="2024/03/02")
    info = target.stat()
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_skipped"] == 4
    assert stats["files_ingested"] == 1
    assert stats["events_read"] == stats["events_duplicate"] == 3
    assert stats["events_written"] == 0
    assert stats["conflicting_event_ids"] == 0
    assert event_ids(lake) == sorted(r["eventID"] for r in recs)


def test_changed_file_adds_only_its_new_records(src, lake):
    first = [make_record(), make_record()]
    path = write_records(src / "growing.json", first)
    ingest_cli(src, "--lake", lake)
    added = make_record()
    write_records(path, [*first, added])
    os.utime(path, ns=(1, path.stat().st_mtime_ns + 1_000_000_000))
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_read"] == 3
    assert stats["events_duplicate"] == 2
    assert stats["events_written"] == 1
    assert event_ids(lake) == sorted(r["eventID"] for r in [*first, added])
    [(written, events)] = query(lake, "SELECT written, events FROM manifest")
    assert (written, events) == (1, 3)


def test_force_rereads_everything_as_duplicates(src, lake):
    recs = _tree(src, files=2)
    ingest_lib([src], lake)
    stats = ingest_lib([src], lake, force=True)
    assert stats["files_ingested"] == 2 and stats["files_skipped"] == 0
    assert stats["events_duplicate"] == len(recs)
    assert stats["events_written"] == 0
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == len(recs)


def test_quarantined_file_is_not_quarantined_again_on_the_next_run(src, lake):
    write_bytes(src / "bad.json", b"{nope")
    write_records(src / "good.json", [make_record()])
    first = ingest_cli(src, "--lake", lake)
    assert first["files_quarantined"] == 1
    second = ingest_cli(src, "--lake", lake)
    assert second["files_quarantined"] == 0
    assert second["files_skipped"] == 2
    assert len(quarantine_list(lake)) == 1


def test_a_lake_inside_the_source_tree_is_not_read_as_input(tmp_path):
    """`trailscan ingest .` with the default ./trailscan-lake: the lake's own files are not logs."""
    logs = tmp_path / "logs"
    write_records(logs / "a.json.gz", [make_record()])
    write_bytes(logs / "bad.json", b"{")
    lake = logs / "trailscan-lake"
    first = ingest_cli(logs, "--lake", lake)
    second = ingest_cli(logs, "--lake", lake)
    third = ingest_cli(logs, "--lake", lake)
    for stats in (first, second, third):
        assert stats["files_seen"] == 2, stats["problems"]
    assert first["files_quarantined"] == 1
    assert second["files_quarantined"] == third["files_quarantined"] == 0
    assert [e["source"] for e in quarantine_list(lake)] == [str(logs / "bad.json")]


# --- duplicates ------------------------------------------------------------------------------


def test_identical_redeliveries_are_stored_once_within_and_across_files_and_runs(src, lake):
    a, b, c = make_record(), make_record(), make_record()
    write_records(src / "1.json.gz", [a, b, a])  # duplicate inside one file
    write_records(src / "2.json", [b, c], "array")  # and across files, other container
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_read"] == 5
    assert stats["events_written"] == 3
    assert stats["events_duplicate"] == 2
    assert stats["conflicting_event_ids"] == 0
    write_records(src / "3.jsonl", [c, a, make_record()], "ndjson")  # next run: 2 old, 1 new
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_read"] == 3
    assert stats["events_duplicate"] == 2
    assert stats["events_written"] == 1
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 4
    assert scalar(lake, "SELECT count(DISTINCT eventID) FROM cloudtrail") == 4
    written = dict(query(lake, "SELECT uri, written FROM manifest"))
    assert sum(written.values()) == 4


def test_the_copy_kept_of_a_redelivery_is_the_first_by_source_name_whichever_worker(src, lake):
    """Two workers read a trail whose first and last files share an event: the stored copy is
    the one from the first file by name (the earliest delivery), not whichever worker's
    staging file happened to sort first."""
    shared = make_record()
    names = [f"{i:03d}.json.gz" for i in range(70)]  # more than two tasks of 32 files
    for i, name in enumerate(names):
        recs = [make_record(), shared] if i in (0, len(names) - 1) else [make_record()]
        write_records(src / name, recs)
    for run in range(2):
        stats = ingest_lib([src], lake, workers=2, force=run == 1)
        assert stats["events_duplicate"] == (1 if run == 0 else 72)
        assert query(lake, "SELECT source_object FROM cloudtrail WHERE eventID = ?",
                     shared["eventID"]) == [(str(src / names[0]),)]


def test_dedupe_keeps_the_copy_from_the_first_source_even_in_a_later_staging_file(tmp_path):
    """Worker w0's staging file holds the later delivery, w1's the earlier one (workers take
    tasks in any order): the copy from the first source object by name is the one kept."""
    import pyarrow.parquet as pq

    from trailscan import records
    from trailscan.dedupe import dedupe
    from trailscan.lake import NewFile

    lake_obj = Lake.open(tmp_path / "lake", create=True)
    _, staging = lake_obj.new_run()
    shared = make_record()
    files = []
    for worker, source in (("w0", "s3://b/AWSLogs/2_later.json.gz"),
                           ("w1", "s3://b/AWSLogs/1_earlier.json.gz")):
        table = records.parse(json.dumps({"Records": [shared]}).encode(), source).table
        path = staging / f"{worker}-00001.parquet"
        pq.write_table(table, path)
        files.append(NewFile(path, "2024-03-01", 1))
    result = dedupe(lake_obj, files)
    assert result.duplicates == 1 and result.per_source == {"s3://b/AWSLogs/2_later.json.gz": 1}
    kept = [f for f in result.files if f.rows]
    assert [pq.read_table(f.staging)["source_object"][0].as_py() for f in kept] == [
        "s3://b/AWSLogs/1_earlier.json.gz"]


def test_same_event_id_with_different_content_is_kept_and_counted(src, lake):
    a = make_record()
    a2 = dict(a, eventName="DeleteObject")  # same eventID, different record
    b = make_record()
    b2 = dict(b, requestParameters={"bucketName": "other"})
    write_records(src / "1.json", [a, b])
    write_records(src / "2.json", [a2, a])  # a2 conflicts, a is an exact re-delivery
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_written"] == 3
    assert stats["events_duplicate"] == 1
    assert stats["conflicting_event_ids"] == 1
    write_records(src / "3.json", [b2, b, a2])  # across runs: b2 conflicts; b, a2 are old
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_written"] == 1
    assert stats["events_duplicate"] == 2
    assert stats["conflicting_event_ids"] == 1
    got = query(lake, "SELECT eventID, eventName, requestParameters FROM cloudtrail "
                      "ORDER BY eventID, eventName, requestParameters")
    assert len(got) == 4
    assert sorted((e, n) for e, n, _ in got if e == a["eventID"]) == [
        (a["eventID"], "DeleteObject"), (a["eventID"], "GetObject")]
    assert sorted(json.loads(p)["bucketName"] for e, _, p in got if e == b["eventID"]) == [
        "audit-bucket", "other"]


# --- filters ---------------------------------------------------------------------------------


def _filter_records() -> list[dict[str, Any]]:
    def rec(name: str, time: str, region: str, account: str | None,
            identity_account: str = "999988887777") -> dict[str, Any]:
        return make_record(eventName=name, eventTime=time, awsRegion=region,
                           recipientAccountId=account,
                           userIdentity={"type": "IAMUser", "accountId": identity_account})

    return [
        rec("r1", "2024-03-01T00:00:00Z", "us-east-1", "111111111111"),
        rec("r2", "2024-03-02T12:00:00Z", "eu-west-1", "111111111111"),
        rec("r3", "2024-03-03T23:59:59Z", "us-east-1", "222222222222"),
        rec("r4", "2024-03-04T00:00:00Z", "us-east-1", None, identity_account="222222222222"),
        rec("r5", "2024-03-05T08:00:00Z", "eu-west-1", "222222222222"),
    ]


@pytest.mark.parametrize(("options", "expected"), [
    (["--since", "2024-03-02", "--until", "2024-03-03"], ["r2", "r3"]),
    (["--since", "2024-03-02T12:00:00Z"], ["r2", "r3", "r4", "r5"]),
    (["--until", "2024-03-01T00:00:00Z"], ["r1"]),
    (["--since", "2024-03-02T13:00:00+01:00", "--until", "2024-03-04"], ["r2", "r3", "r4"]),
    (["--account", "222222222222"], ["r3", "r4", "r5"]),
    (["--account", "111111111111", "--account", "222222222222"], ["r1", "r2", "r3", "r4", "r5"]),
    (["--region", "eu-west-1"], ["r2", "r5"]),
    (["--account", "111111111111", "--region", "us-east-1"], ["r1"]),
    (["--region", "ap-south-1"], []),
], ids=["since-until-dates", "since-inclusive", "until-exact", "offset-since-date-until",
        "account", "two-accounts", "region", "account-and-region", "no-match"])
def test_filters_keep_matching_records_and_count_the_rest(src, lake, options, expected):
    write_records(src / "export.json", _filter_records())
    stats = ingest_cli(src, "--lake", lake, *options)
    assert stats["events_read"] == 5
    assert stats["events_written"] == len(expected)
    assert stats["events_filtered"] == 5 - len(expected)
    got = [n for (n,) in query(lake, "SELECT eventName FROM cloudtrail ORDER BY eventName")]
    assert got == expected


def test_key_layout_prefilter_skips_other_accounts_regions_and_old_days(src, lake):
    keep = write_records(ct_path(src, "a.json.gz", account="111111111111"),
                         [make_record(recipientAccountId="111111111111")])
    write_records(ct_path(src, "b.json.gz", account="222222222222"),
                  [make_record(recipientAccountId="222222222222")])
    write_records(ct_path(src, "c.json.gz", account="111111111111", region="eu-west-1"),
                  [make_record(recipientAccountId="111111111111", awsRegion="eu-west-1")])
    write_records(ct_path(src, "d.json.gz", account="111111111111", day="2023/01/01"),
                  [make_record(recipientAccountId="111111111111",
                               eventTime="2023-01-01T00:00:00Z")])
    stats = ingest_cli(src, "--lake", lake, "--account", "111111111111", "--region", "us-east-1",
                       "--since", "2024-02-01")
    assert stats["files_seen"] == 4
    assert stats["files_skipped"] == 3
    assert stats["files_ingested"] == 1
    assert stats["events_read"] == stats["events_written"] == 1
    assert query(lake, "SELECT source_object FROM cloudtrail") == [(str(keep),)]


def test_records_left_out_by_a_filter_arrive_with_a_later_unfiltered_run(src, lake):
    write_records(src / "export.json", _filter_records())
    first = ingest_cli(src, "--lake", lake, "--region", "eu-west-1")
    assert (first["events_written"], first["events_filtered"]) == (2, 3)
    again = ingest_cli(src, "--lake", lake, "--region", "eu-west-1")
    assert again["events_written"] == 0
    assert again["events_duplicate"] + again["events_filtered"] == 5
    full = ingest_cli(src, "--lake", lake)
    assert full["events_written"] == 3
    assert full["events_duplicate"] == 2
    assert [n for (n,) in query(lake, "SELECT eventName FROM cloudtrail ORDER BY 1")] == [
        "r1", "r2", "r3", "r4", "r5"]
    assert ingest_cli(src, "--lake", lake)["files_skipped"] == 1


# --- compaction and crash safety -------------------------------------------------------------


def test_many_small_runs_are_compacted_and_no_row_is_lost_or_doubled(src, lake):
    all_ids = []
    other_day = make_record(eventTime="2024-04-01T00:00:00Z")
    write_records(src / "other.json", [other_day])
    all_ids.append(other_day["eventID"])
    compacted = 0
    for run in range(6):
        batch = [make_record(eventTime=f"2024-03-01T{run:02d}:{i:02d}:00Z") for i in range(4)]
        write_records(src / f"run{run}.json.gz", batch)
        all_ids += [r["eventID"] for r in batch]
        stats = ingest_cli(src, "--lake", lake)
        assert stats["events_written"] == 4 + (run == 0)
        compacted += stats["files_compacted"]
        files = partition_files(lake)
        assert len(files["event_date=2024-03-01"]) <= COMPACT_AFTER, files
        # What trailscan reads is exactly what is on disk (external readers see the same rows).
        assert sorted(Lake.open(lake).data_files()) == sorted(
            p for paths in files.values() for p in paths)
        assert event_ids(lake) == sorted(all_ids)
    assert compacted >= 1
    assert len(partition_files(lake)["event_date=2024-04-01"]) == 1
    on_disk = pq.read_table(partition_files(lake)["event_date=2024-03-01"][0].parent)
    assert on_disk.num_rows == 24


def test_leftover_staging_of_a_killed_run_is_removed_and_never_visible(src, lake):
    write_records(src / "good.json", [make_record()])
    ingest_cli(src, "--lake", lake)
    stale = lake / "_staging" / "20240101T000000Z-deadbeef"
    stale.mkdir(parents=True)
    ghost = make_record(eventID="ghost-event")
    from trailscan.records import parse

    pq.write_table(parse(encode([ghost]), "ghost").table, stale / "w0-00001.parquet")
    assert scalar(lake, "SELECT count(*) FROM cloudtrail WHERE eventID = 'ghost-event'") == 0
    write_records(src / "more.json", [make_record()])
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_written"] == 1
    assert not stale.exists()
    assert list((lake / "_staging").iterdir()) == []
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 2
    assert scalar(lake, "SELECT count(*) FROM cloudtrail WHERE eventID = 'ghost-event'") == 0


def test_run_killed_before_commit_leaves_nothing_visible_and_is_redone(src, lake, monkeypatch):
    recs = _tree(src, files=3)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Lake, "commit", killed)
        with pytest.raises(KeyboardInterrupt):
            ingest_lib([src], lake)
    assert any((lake / "_staging").iterdir())
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 0
    assert query(lake, "SELECT * FROM manifest") == []
    stats = ingest_lib([src], lake)
    assert stats["files_ingested"] == 3
    assert stats["events_written"] == len(recs)
    assert list((lake / "_staging").iterdir()) == []
    assert event_ids(lake) == sorted(r["eventID"] for r in recs)


def _kill_after_commit(src: Path, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a run killed after its SQLite commit, before its renames happened."""

    def killed(op, src_path, dst):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(trailscan.lake, "_apply", killed)
        with pytest.raises(KeyboardInterrupt):
            ingest_lib([src], lake)
    db = sqlite3.connect(lake / "_trailscan" / "state.db")
    try:
        assert db.execute("SELECT count(*) FROM pending").fetchone()[0] > 0
    finally:
        db.close()


def test_run_killed_after_commit_is_finished_by_the_next_ingest(src, lake, monkeypatch):
    recs = _tree(src, files=3)
    _kill_after_commit(src, lake, monkeypatch)
    stats = ingest_lib([src], lake)
    assert stats["files_skipped"] == 3  # the killed run's manifest entries were committed
    assert list((lake / "_staging").iterdir()) == []
    assert event_ids(lake) == sorted(r["eventID"] for r in recs)


def test_reader_after_a_run_killed_after_commit_sees_the_committed_rows(src, lake, monkeypatch):
    """lake.py: "killed after [the transaction], the renames are finished on the next open"."""
    recs = _tree(src, files=3)
    _kill_after_commit(src, lake, monkeypatch)
    assert event_ids(lake) == sorted(r["eventID"] for r in recs)


# --- parallel workers ------------------------------------------------------------------------


def test_two_workers_give_the_same_lake_as_one(tmp_path, src, monkeypatch):
    # Small tasks (24 for these 48 files) so both workers take some: with the default of 32
    # files a task, one worker can take both tasks before the other has started.
    monkeypatch.setattr(trailscan.ingest, "TASK_SIZE", 2)
    shared = [make_record(eventTime="2024-03-02T05:00:00Z") for _ in range(3)]
    for f in range(46):
        day = 1 + f % 3
        batch = [make_record(eventTime=f"2024-03-0{day}T{f % 24:02d}:00:00Z",
                             awsRegion=("us-east-1", "eu-west-1")[f % 2]) for _ in range(4)]
        if f in (0, 45):  # the same re-delivery in files far apart (different worker tasks)
            batch += shared
        if f == 30:
            batch.append(drop_fields(make_record(), "eventName"))
        write_records(ct_path(src, f"f{f:03d}.json.gz", day=f"2024/03/0{day}"), batch)
    write_bytes(ct_path(src, "broken.json.gz"), b"\x1f\x8b\x08\x00broken")
    write_records(src / "conflict.json", [dict(shared[0], eventName="Different")])

    one = ingest_cli(src, "--lake", tmp_path / "one", workers=1)
    two = ingest_cli(src, "--lake", tmp_path / "two", workers=2)
    assert one["files_seen"] == 48
    volatile = {"lake", "run_id", "seconds", "problems"}
    assert {k: v for k, v in two.items() if k not in volatile} == {
        k: v for k, v in one.items() if k not in volatile}
    assert sorted(two["problems"]) == sorted(one["problems"])
    assert one["events_duplicate"] == 3
    assert one["conflicting_event_ids"] == 1
    assert one["events_quarantined"] == 1
    assert one["files_quarantined"] == 1

    def content(lake: Path) -> list[dict[str, Any]]:
        table = pa.Table.from_pylist(rows(lake))
        cols = [*CT, "unknown_fields", "integrity_status", "event_date"]
        return sorted(table.select(cols).to_pylist(),
                      key=lambda r: (r["eventID"], r["eventName"]))

    assert content(tmp_path / "two") == content(tmp_path / "one")
    single = "SELECT eventID, source_object FROM cloudtrail WHERE eventID NOT IN ({}) ORDER BY 1"
    marks = ", ".join(f"'{r['eventID']}'" for r in shared)
    assert query(tmp_path / "two", single.format(marks)) == query(tmp_path / "one",
                                                                  single.format(marks))
    assert len(query(tmp_path / "one", "SELECT * FROM quarantine")) == 2
    # The parallel path really ran: both workers wrote data files.
    names = [p.name for p in Lake.open(tmp_path / "two").data_files()]
    assert any("-w0-" in n for n in names) and any("-w1-" in n for n in names), names


# --- quarantine ------------------------------------------------------------------------------


def _gz(recs: list[Any]) -> bytes:
    return gzip.compress(encode(recs))


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _bad_crc(data: bytes) -> bytes:
    return data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:]


FILE_CASES = {
    "corrupt-gzip": ("c.json.gz", lambda: _bad_crc(_gz([make_record()])), "corrupt gzip data"),
    "truncated-gzip": ("t.json.gz", lambda: _half(_gz([make_record() for _ in range(5)])),
                       "truncated gzip stream"),
    "trailing-garbage": ("g.json.gz", lambda: _gz([make_record()]) + b"\x00\x00junk",
                         "6 bytes of trailing data after the gzip stream"),
    "invalid-json": ("j.json", lambda: b'{"Records": [{"eventID": "x", }]}', "invalid JSON"),
    "invalid-json-gz": ("j2.json.gz", lambda: gzip.compress(b'{"Records": [oops]}'),
                        "invalid JSON"),
    "invalid-utf8": ("u.json", lambda: encode([make_record(eventName="NAME")]).replace(
        b"NAME", b"N\xc3\x28ME"), "invalid UTF-8 at byte"),
    "not-cloudtrail": ("n.json", lambda: json.dumps({"Type": "Notification",
                                                     "Message": "{}"}).encode(),
                       "JSON is not CloudTrail"),
    "not-cloudtrail-scalar": ("s.json", lambda: b'"just a string"', "JSON is not CloudTrail"),
    "empty": ("e.json.gz", lambda: b"", "empty file"),
    "empty-gzip": ("eg.json.gz", lambda: gzip.compress(b""), "empty file"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_bad_file_is_quarantined_with_a_reason_and_good_files_still_land(src, lake, case):
    name, build, expected = FILE_CASES[case]
    good = [make_record(), make_record()]
    write_records(src / "good.json.gz", good)
    bad = write_bytes(src / "sub" / name, build())
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_quarantined"] == 1
    assert stats["files_ingested"] == 1
    assert stats["events_written"] == 2
    assert stats["events_quarantined"] == 0
    assert len(stats["problems"]) == 1 and stats["problems"][0].startswith(f"{bad}: ")
    assert event_ids(lake) == sorted(r["eventID"] for r in good)
    [entry] = quarantine_list(lake)
    assert entry["source"] == str(bad)
    assert entry["record_index"] is None
    assert expected in entry["reason"]
    assert "\n" not in entry["reason"] and "Traceback" not in entry["reason"]
    # The rejected bytes are kept for inspection.
    copy = lake / "quarantine" / entry["run_id"] / entry["copy"]
    assert copy.read_bytes() == bad.read_bytes()
    [(status, reason)] = query(lake, "SELECT status, reason FROM manifest WHERE uri = ?", str(bad))
    assert status == "quarantined" and expected in reason


RECORD_CASES = {
    "missing-eventTime": ({"eventTime": None}, "'eventTime' is a required property"),
    "missing-eventID": ({"eventID": None}, "'eventID' is a required property"),
    "missing-eventName": ({"eventName": None}, "'eventName' is a required property"),
    "missing-eventSource": ({"eventSource": None}, "'eventSource' is a required property"),
    "userIdentity-string": ({"userIdentity": "arn:aws:iam::1:root"}, "userIdentity: "),
    "readOnly-string": ({"readOnly": "true"}, "readOnly: 'true' is not of type 'boolean'"),
    "eventTime-not-a-time": ({"eventTime": "last Tuesday"},
                             "eventTime: 'last Tuesday' is not an ISO-8601 UTC timestamp"),
    "eventTime-number": ({"eventTime": 1709294400}, "eventTime: 1709294400 is not of type"),
    "resources-not-a-list": ({"resources": "arn:aws:s3:::b"}, "resources: "),
}


@pytest.mark.parametrize("case", sorted(RECORD_CASES))
@pytest.mark.parametrize("fmt", ["records", "ndjson"])
def test_bad_record_is_quarantined_with_a_reason_and_its_neighbours_land(src, lake, case, fmt):
    change, expected = RECORD_CASES[case]
    bad = make_record(**{k: v for k, v in change.items() if v is not None})
    for key in [k for k, v in change.items() if v is None]:
        del bad[key]
    before, after = make_record(), make_record()
    path = write_records(src / ("mixed.json.gz" if fmt == "records" else "mixed.jsonl"),
                         [before, bad, after], fmt)
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_ingested"] == 1
    assert stats["files_quarantined"] == 0
    assert (stats["events_read"], stats["events_written"], stats["events_quarantined"]) == (3, 2, 1)
    assert event_ids(lake) == sorted([before["eventID"], after["eventID"]])
    [entry] = quarantine_list(lake)
    assert entry["source"] == str(path)
    assert entry["record_index"] == 1
    assert expected in entry["reason"], entry["reason"]
    assert "\n" not in entry["reason"]
    [(raw,)] = query(lake, "SELECT raw FROM quarantine")
    assert json.loads(raw) == bad


def test_gzip_bomb_over_the_size_limit_is_quarantined(src, lake):
    """50 MB of JSON padding compressed to ~50 kB, limit 1 MB."""
    rec = json.dumps(make_record()).encode()
    bomb = gzip.compress(b'{"Records": [' + rec + b" " * (50 * 1024 * 1024) + b"]}", 6)
    assert len(bomb) < 200_000
    bomb_path = write_bytes(src / "bomb.json.gz", bomb)
    big_plain = write_bytes(src / "big.json", b'{"Records": [' + rec + b" " * 1_100_000 + b"]}")
    good = write_records(src / "good.json.gz", [make_record()])
    stats = ingest_cli(src, "--lake", lake, "--max-file-bytes", 1024 * 1024)
    assert stats["files_quarantined"] == 2
    assert stats["events_written"] == 1
    reasons = {e["source"]: e["reason"] for e in quarantine_list(lake)}
    assert "decompressed size exceeds the limit of 1048576 bytes" in reasons[str(bomb_path)]
    assert "larger than the limit of 1048576 bytes" in reasons[str(big_plain)]
    assert query(lake, "SELECT source_object FROM cloudtrail") == [(str(good),)]


def test_entries_that_are_not_regular_files_are_quarantined(src, lake):
    write_records(src / "good.json", [make_record()])
    (src / "dangling.json.gz").symlink_to(src / "does-not-exist.json.gz")
    os.mkfifo(src / "pipe.json")
    stats = ingest_cli(src, "--lake", lake)
    assert stats["files_seen"] == 3
    assert stats["files_quarantined"] == 2
    assert stats["events_written"] == 1
    reasons = {e["source"]: e["reason"] for e in quarantine_list(lake)}
    assert "cannot stat" in reasons[str(src / "dangling.json.gz")]
    assert "not a regular file" in reasons[str(src / "pipe.json")]


def test_lone_surrogate_record_does_not_abort_the_run(src, lake):
    r"""`"\udc00"` is legal JSON syntax (an unpaired escape); it must not kill the whole run."""
    odd = make_record(requestParameters={"key": "\udc00"})
    write_bytes(src / "odd.json", json.dumps({"Records": [odd]}).encode())
    good = write_records(src / "good.json", [make_record()])
    stats = ingest_cli(src, "--lake", lake)
    assert stats["events_read"] == 2
    assert (stats["events_written"], stats["events_quarantined"]) in ((2, 0), (1, 1))
    assert (str(good),) in query(lake, "SELECT source_object FROM cloudtrail")


# --- Python API ------------------------------------------------------------------------------


def test_open_lake_gives_duckdb_views_and_polars(src, lake):
    recs = _tree(src, files=2)
    write_bytes(src / "bad.json", b"[")
    ingest_lib([src], lake)
    con = trailscan.open_lake(str(lake))
    try:
        frame = con.sql("SELECT eventID, userIdentity.arn AS arn, eventTime "
                        "FROM cloudtrail ORDER BY eventID").pl()
        assert isinstance(frame, pl.DataFrame)
        assert frame["eventID"].to_list() == sorted(r["eventID"] for r in recs)
        assert frame["arn"].to_list() == [recs[0]["userIdentity"]["arn"]] * len(recs)
        quarantine = con.sql("SELECT source, reason FROM quarantine").pl()
        assert quarantine.rows() == [(str(src / "bad.json"), quarantine["reason"][0])]
        assert "invalid JSON" in quarantine["reason"][0]
        manifest = con.sql("SELECT uri, status, events, written FROM manifest ORDER BY uri").pl()
        assert manifest.height == 3
        assert set(manifest["status"]) == {"ingested", "quarantined"}
        assert manifest["written"].sum() == len(recs)
    finally:
        con.close()


def test_open_lake_on_a_fresh_empty_lake_has_typed_empty_views(src, lake):
    write_bytes(src / "bad.json", b"nope")
    ingest_lib([src], lake)
    con = trailscan.open_lake(str(lake))
    try:
        assert con.execute("SELECT count(*) FROM cloudtrail").fetchall() == [(0,)]
        names = [d[0] for d in con.sql("SELECT * FROM cloudtrail").description]
        assert names[: len(CT)] == CT
        assert "event_date" in names
        assert con.sql("SELECT userIdentity.arn FROM cloudtrail").fetchall() == []
    finally:
        con.close()


def test_open_lake_on_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no trailscan lake"):
        trailscan.open_lake(str(tmp_path / "nowhere"))
