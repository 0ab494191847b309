"""The lake on S3 (`--lake s3://bucket/prefix`) against a real S3 endpoint over HTTP (moto's
server): the layout in the bucket, reads through DuckDB, parity with a local lake, incremental
runs, compaction, a failed publish, concurrent writers, one-line errors."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner
from conftest import check_invariant, ingest_cli, make_record, run_cli, write_records
from s3_helpers import Proxy, moto_server, s3_client

import trailscan
from trailscan import lake_s3
from trailscan.cli import cli
from trailscan.errors import LakeError, SourceError
from trailscan.ingest import ingest
from trailscan.lake import COMPACT_AFTER, Lake
from trailscan.lake_s3 import LOCK_KEY, STATE_KEY, S3Lake, S3LakeRef
from trailscan.s3 import AwsOptions
from trailscan.synth import TrailSpec, derive_test_key, public_keys_document, write_trail

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def creds(_no_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials through boto3's chain; a fresh working-copy cache per test."""
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRAILSCAN_CACHE", str(tmp_path / "cache"))


def new_bucket(endpoint: str) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    client = s3_client(endpoint)
    out: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def arrow_fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                             endpoint_override=endpoint.removeprefix("http://"), scheme="http")


def cli_json(*args: Any) -> Any:
    result = run_cli(*args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


class Lakes:
    """One generated trail ingested by the CLI into a local lake and into an S3 lake."""

    def __init__(self, endpoint: str, tmp: Path) -> None:
        self.endpoint = endpoint
        self.trail = tmp / "trail"
        spec = TrailSpec(seed=11, days=2, events=600, accounts=("111122223333", "444455556666"),
                         regions=("us-east-1", "eu-west-1"))
        key = derive_test_key(7)
        write_trail(spec, self.trail, signing_key=key)
        self.keys_file = tmp / "public-keys.json"
        self.keys_file.write_text(json.dumps(public_keys_document(
            key, spec.start - timedelta(days=1), spec.start + timedelta(days=30))))
        self.local = tmp / "local-lake"
        self.bucket = new_bucket(endpoint)
        self.uri = f"s3://{self.bucket}/lake"
        with pytest.MonkeyPatch.context() as env:
            for name, value in CREDS.items():
                env.setenv(name, value)
            env.setenv("TRAILSCAN_CACHE", str(tmp / "writer-cache"))
            self.local_stats = ingest_cli(self.trail, "--lake", self.local)
            self.s3_stats = ingest_cli(self.trail, "--lake", self.uri, "--endpoint-url",
                                       endpoint)

    def s3(self, *args: Any) -> list[Any]:
        return [*args, "--lake", self.uri, "--endpoint-url", self.endpoint]


@pytest.fixture(scope="module")
def lakes(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Lakes:
    return Lakes(endpoint, tmp_path_factory.mktemp("s3lake"))


# --- layout and parity with a local lake ---------------------------------------------------------


def test_ingest_writes_the_hive_layout_and_the_manifest_to_the_bucket(lakes: Lakes) -> None:
    stored = keys(lakes.endpoint, lakes.bucket)
    local = sorted(p.relative_to(lakes.local).as_posix()
                   for p in (lakes.local / "events").rglob("*.parquet"))
    data = [k for k in stored if k.startswith("lake/events/")]
    assert STATE_KEY in [k.removeprefix("lake/") for k in stored]
    assert len(data) == len(local) > 1
    assert all(k.endswith(".parquet") and k.split("/")[2].startswith("event_date=")
               for k in data)
    # Same partitions; file names differ only by run id.
    assert sorted(k.split("/")[2] for k in data) == sorted(p.split("/")[1] for p in local)
    assert not [k for k in stored if "_staging" in k or k.endswith(LOCK_KEY)]
    for key in ("lake", "run_id", "seconds", "bytes_read"):
        lakes.s3_stats.pop(key)
        lakes.local_stats.pop(key)
    assert lakes.s3_stats == lakes.local_stats
    # The manifest object is the lake's SQLite state: same source objects as the local one.
    state = Path(lakes.local.parent / "state-from-s3.db")
    s3_client(lakes.endpoint).download_file(lakes.bucket, "lake/" + STATE_KEY, str(state))
    with sqlite3.connect(state) as db:
        remote = db.execute("SELECT uri, sha256, written FROM objects ORDER BY uri").fetchall()
        files = sorted(p for (p,) in db.execute("SELECT path FROM files"))
    with sqlite3.connect(lakes.local / "_trailscan" / "state.db") as db:
        assert remote == db.execute("SELECT uri, sha256, written FROM objects ORDER BY "
                                    "uri").fetchall()
    assert ["lake/" + f for f in files] == data


def test_the_bucket_reads_back_with_pyarrow_identically_to_the_local_lake(lakes: Lakes) -> None:
    remote = ds.dataset(f"{lakes.bucket}/lake/events", filesystem=arrow_fs(lakes.endpoint),
                        format="parquet", partitioning="hive").to_table()
    local = ds.dataset(lakes.local / "events", format="parquet",
                       partitioning="hive").to_table()
    order = [("eventID", "ascending"), ("source_object", "ascending")]
    assert remote.num_rows == local.num_rows == lakes.local_stats["events_written"]
    assert remote.sort_by(order).equals(local.sort_by(order))


def test_query_counts_match_the_local_lake(lakes: Lakes, creds: None) -> None:
    sql = ("SELECT event_date, recipientAccountId, count(*) AS n, count(DISTINCT eventID) AS ids "
           "FROM cloudtrail GROUP BY ALL ORDER BY ALL")
    remote = cli_json(*lakes.s3("query", sql))
    assert remote == cli_json("query", sql, "--lake", lakes.local)
    assert sum(r["n"] for r in remote) == lakes.local_stats["events_written"]
    athena = cli_json(*lakes.s3("query", "SELECT count(*) AS n FROM cloudtrail_logs",
                                "--dialect", "athena"))
    assert athena == [{"n": lakes.local_stats["events_written"]}]
    manifest = cli_json(*lakes.s3("query", "SELECT count(*) AS n FROM manifest"))
    assert manifest == [{"n": lakes.local_stats["files_ingested"]}]


def test_detect_finds_the_same_findings_and_stores_them_in_the_bucket(lakes: Lakes,
                                                                     creds: None) -> None:
    def key(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["rule_id"], r["account_id"], r["principal"], tuple(r["event_ids"]))
                      for r in rows)

    remote = cli_json(*lakes.s3("detect"))
    local = cli_json("detect", "--lake", lakes.local)
    assert remote and key(remote) == key(local)
    assert "lake/findings/findings.parquet" in keys(lakes.endpoint, lakes.bucket)
    stored = cli_json(*lakes.s3("query", "SELECT rule_id, account_id, principal, event_ids "
                                         "FROM findings"))
    assert key(stored) == key(remote)


def test_investigate_and_quarantine_read_the_s3_lake(lakes: Lakes, creds: None) -> None:
    rows = cli_json(*lakes.s3("query", "SELECT userIdentity.arn AS arn, count(*) AS n FROM "
                                       "cloudtrail WHERE userIdentity.arn IS NOT NULL "
                                       "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"))
    arn = rows[0]["arn"]
    remote = cli_json(*lakes.s3("investigate", "--principal", arn))
    local = cli_json("investigate", "--principal", arn, "--lake", lakes.local)
    assert remote["counts"] == local["counts"] and remote["counts"]
    assert len(remote["timeline"]) == len(local["timeline"]) >= rows[0]["n"]
    result = run_cli(*lakes.s3("quarantine"))
    assert result.exit_code == 0, result.stderr


def test_scan_report_and_shell_on_an_s3_lake(endpoint: str, lakes: Lakes, creds: None,
                                             tmp_path: Path) -> None:
    bucket = new_bucket(endpoint)
    uri = f"s3://{bucket}/scanned"
    result = run_cli("scan", lakes.trail, "--lake", uri, "--endpoint-url", endpoint,
                     "--workers", 1, "--public-keys", lakes.keys_file, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ingest"]["lake"] == uri and out["findings"]
    assert out["summary"]["events"] == lakes.local_stats["events_written"]
    assert [r["valid"] for r in out["ingest"]["integrity"]] == [True]
    sql = "SELECT integrity_status AS s, count(*) AS n FROM cloudtrail GROUP BY 1 ORDER BY 1"
    statuses = cli_json("query", sql, "--lake", uri, "--endpoint-url", endpoint)
    local = tmp_path / "local"
    result = run_cli("scan", lakes.trail, "--lake", local, "--workers", 1, "--public-keys",
                     lakes.keys_file, "--json")
    assert result.exit_code == 0, result.stderr
    # The verdicts were published with the state: the same as a local scan's.
    assert statuses == cli_json("query", sql, "--lake", local)
    assert {"s": "verified", "n": statuses[-1]["n"]} in statuses
    assert "scanned/findings/findings.parquet" in [
        k.removeprefix(bucket + "/") for k in keys(endpoint, bucket)]
    html = tmp_path / "report.html"
    result = run_cli("report", "--lake", uri, "--endpoint-url", endpoint, "--output", html)
    assert result.exit_code == 0, result.stderr
    assert uri in html.read_text()
    result = CliRunner().invoke(cli, ["shell", "--lake", uri, "--endpoint-url", endpoint],
                                input="SELECT count(*) AS n FROM cloudtrail;\n")
    assert result.exit_code == 0, result.stderr
    assert str(lakes.local_stats["events_written"]) in result.stdout


def test_validate_records_its_verdicts_in_an_s3_lake(endpoint: str, lakes: Lakes,
                                                    creds: None) -> None:
    bucket = new_bucket(endpoint)
    uri = f"s3://{bucket}/v"
    ingest_cli(lakes.trail, "--lake", uri, "--endpoint-url", endpoint)
    sql = "SELECT integrity_status AS s, count(*) AS n FROM cloudtrail GROUP BY 1 ORDER BY 1"
    assert cli_json("query", sql, "--lake", uri, "--endpoint-url", endpoint) == [
        {"s": "unchecked", "n": lakes.local_stats["events_written"]}]
    result = run_cli("validate", lakes.trail, "--lake", uri, "--endpoint-url", endpoint,
                     "--public-keys", lakes.keys_file)
    assert result.exit_code == 0, result.stderr
    statuses = cli_json("query", sql, "--lake", uri, "--endpoint-url", endpoint)
    assert {r["s"] for r in statuses} >= {"verified"}
    assert sum(r["n"] for r in statuses) == lakes.local_stats["events_written"]
    assert f"v/{LOCK_KEY}" not in keys(endpoint, bucket)


def test_open_lake_in_the_library_reads_s3(lakes: Lakes, creds: None) -> None:
    con = trailscan.open_lake(lakes.uri, aws=AwsOptions(endpoint_url=lakes.endpoint))
    try:
        n = con.execute("SELECT count(*) FROM cloudtrail").fetchone()[0]
    finally:
        con.close()
    assert n == lakes.local_stats["events_written"]


# --- writing: incremental runs, compaction, failures ---------------------------------------------


def test_reingest_is_incremental_and_writes_no_new_object(lakes: Lakes, creds: None) -> None:
    client = s3_client(lakes.endpoint)
    before = {k: client.head_object(Bucket=lakes.bucket, Key=k)["ETag"]
              for k in keys(lakes.endpoint, lakes.bucket, "lake/events/")}
    stats = ingest_cli(lakes.trail, "--lake", lakes.uri, "--endpoint-url", lakes.endpoint)
    assert stats["files_ingested"] == 0 and stats["events_written"] == 0
    assert stats["files_skipped"] == lakes.local_stats["files_ingested"]
    after = {k: client.head_object(Bucket=lakes.bucket, Key=k)["ETag"]
             for k in keys(lakes.endpoint, lakes.bucket, "lake/events/")}
    assert after == before


def _day_batch(src: Path, run: int, day: str = "2024-03-01") -> list[str]:
    batch = [make_record(eventTime=f"{day}T{run:02d}:{i:02d}:00Z") for i in range(3)]
    write_records(src / f"run{run}.json.gz", batch)
    return [r["eventID"] for r in batch]


def _ids(uri: str, endpoint: str) -> list[str]:
    result = run_cli("query", "SELECT eventID FROM cloudtrail ORDER BY 1", "--lake", uri,
                     "--endpoint-url", endpoint, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return [r["eventID"] for r in json.loads(result.stdout)]


def test_compaction_publishes_the_state_before_deleting_replaced_objects(
        endpoint: str, creds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = new_bucket(endpoint)
    uri, src = f"s3://{bucket}/l", tmp_path / "src"
    calls: list[tuple[str, str]] = []
    real_client = AwsOptions.client

    def recording_client(self: AwsOptions, service: str, region: str | None = None) -> Any:
        client = real_client(self, service, region)
        client.meta.events.register("before-parameter-build.s3", record)
        return client

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.name, str(params.get("Key", ""))))

    monkeypatch.setattr(AwsOptions, "client", recording_client)
    expected: list[str] = []
    for run in range(COMPACT_AFTER):
        expected += _day_batch(src, run)
        ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    day = keys(endpoint, bucket, "l/events/event_date=2024-03-01/")
    assert len(day) == COMPACT_AFTER
    expected += _day_batch(src, COMPACT_AFTER)
    expected += _day_batch(src, 9, day="2024-03-02")  # a new day in the same run
    calls.clear()
    stats = ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    run = list(calls)  # this run's requests
    assert stats["files_compacted"] == 1 and stats["events_written"] == 6
    compacted = keys(endpoint, bucket, "l/events/event_date=2024-03-01/")
    assert len(compacted) == 1 and not set(compacted) & set(day)
    assert len(keys(endpoint, bucket, "l/events/event_date=2024-03-02/")) == 1
    assert _ids(uri, endpoint) == sorted(expected)
    # Order: the new objects, then the state (the commit point), then the deletes; the lock
    # is taken first and released last.
    names = [n for n, _ in run]
    state_put = run.index(("PutObject", f"l/{STATE_KEY}"))
    assert names.index("DeleteObjects") > state_put
    # (the new objects are uploaded in parallel: their order among themselves is not fixed)
    assert sorted(k for n, k in run[:state_put] if n == "PutObject" and "/events/" in k) == \
        sorted(compacted + keys(endpoint, bucket, "l/events/event_date=2024-03-02/"))
    lock = run.index(("PutObject", f"l/{LOCK_KEY}"))
    assert lock < names.index("GetObject") and lock < state_put
    assert run[-1] == ("DeleteObject", f"l/{LOCK_KEY}")


def _lake_one_run_before_compaction(endpoint: str,
                                    tmp_path: Path) -> tuple[str, str, Path, list[str]]:
    """An S3 lake whose next run on the same day compacts it: (bucket, uri, source dir, ids)."""
    bucket = new_bucket(endpoint)
    uri, src = f"s3://{bucket}/l", tmp_path / "src"
    expected: list[str] = []
    for run in range(COMPACT_AFTER):
        expected += _day_batch(src, run)
        ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    return bucket, uri, src, expected


def test_a_failed_state_upload_leaves_readers_on_the_previous_state(
        endpoint: str, creds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, uri, src, expected = _lake_one_run_before_compaction(endpoint, tmp_path)
    before = keys(endpoint, bucket, "l/")
    late = _day_batch(src, COMPACT_AFTER)  # this run would compact the day

    def fail(self: S3Lake, snapshot: Path, etag: str | None) -> None:
        raise SourceError(f"s3://{self.bucket}/{self.key(STATE_KEY)}: connection reset")

    monkeypatch.setattr(S3Lake, "_put_state", fail)
    result = run_cli("ingest", src, "--lake", uri, "--endpoint-url", endpoint, "--workers", 1)
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "connection reset" in result.stderr
    # Readers see the previous state whole; the replaced objects are all still there; the
    # uploaded but unpublished objects are not read; the lock was released.
    assert _ids(uri, endpoint) == sorted(expected)
    after = keys(endpoint, bucket, "l/")
    assert set(before) <= set(after) and f"l/{LOCK_KEY}" not in after
    monkeypatch.undo()
    for name, value in CREDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRAILSCAN_CACHE", str(tmp_path / "cache"))
    stats = ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    assert stats["events_written"] == 3 and stats["files_compacted"] == 1
    assert _ids(uri, endpoint) == sorted(expected + late)


_KILL_AT_STATE_PUT = """
import os, signal, sys
import trailscan.lake_s3 as lake_s3
def killed(self, snapshot, etag):
    os.kill(os.getpid(), signal.SIGKILL)
lake_s3.S3Lake._put_state = killed
from trailscan.cli import main
sys.argv = ["trailscan", *sys.argv[1:]]
main()
"""


def test_a_writer_killed_before_publishing_the_state_changes_nothing_readers_see(
        endpoint: str, creds: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket, uri, src, expected = _lake_one_run_before_compaction(endpoint, tmp_path)
    state = s3_client(endpoint).head_object(Bucket=bucket, Key=f"l/{STATE_KEY}")["ETag"]
    before = set(keys(endpoint, bucket, "l/"))
    late = _day_batch(src, COMPACT_AFTER) + _day_batch(src, 1, day="2024-03-09")
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_STATE_PUT, "ingest", str(src),
                             "--lake", uri, "--endpoint-url", endpoint, "--workers", "1"],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    client = s3_client(endpoint)
    assert client.head_object(Bucket=bucket, Key=f"l/{STATE_KEY}")["ETag"] == state
    assert len(keys(endpoint, bucket, "l/events/event_date=2024-03-01/")) == COMPACT_AFTER + 1
    assert _ids(uri, endpoint) == sorted(expected)  # the uploaded objects are not read
    result = run_cli("ingest", src, "--lake", uri, "--endpoint-url", endpoint)
    assert result.exit_code == 1 and "being written by another" in result.stderr
    client.delete_object(Bucket=bucket, Key=f"l/{LOCK_KEY}")  # as the message says
    orphans = set(keys(endpoint, bucket, "l/")) - before
    assert orphans and all("/events/" in k or "/quarantine/" in k for k in orphans)
    monkeypatch.setattr(lake_s3, "GARBAGE_AGE_SECONDS", 0)  # instead of waiting an hour
    stats = ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    assert stats["events_written"] == 6 and stats["files_compacted"] == 1
    assert _ids(uri, endpoint) == sorted(expected + late)
    # The next writer deleted the killed run's objects: the bucket holds what the state lists.
    assert not orphans & set(keys(endpoint, bucket, "l/"))
    assert len(keys(endpoint, bucket, "l/events/event_date=2024-03-01/")) == 1


def test_a_reader_that_lost_a_race_with_compaction_rereads_the_new_state(
        endpoint: str, creds: None, tmp_path: Path) -> None:
    bucket = new_bucket(endpoint)
    uri, src = f"s3://{bucket}/l", tmp_path / "src"
    aws = AwsOptions(endpoint_url=endpoint)
    for run in range(COMPACT_AFTER):
        _day_batch(src, run)
        check_invariant(ingest([str(src)], uri, workers=1, aws=aws))
    reader = Lake.open(S3LakeRef(uri, aws))  # holds the state before the compaction
    _day_batch(src, COMPACT_AFTER)
    assert ingest([str(src)], uri, workers=1, aws=aws).files_compacted == 1
    attempts = []

    def count() -> int:
        attempts.append(1)
        con = reader.connect()
        try:
            return int(con.execute("SELECT count(*) FROM cloudtrail").fetchone()[0])
        finally:
            con.close()

    assert reader.reading(count) == 3 * (COMPACT_AFTER + 1)
    assert len(attempts) == 2


def test_a_second_writer_is_refused_and_a_concurrent_publish_is_never_overwritten(
        endpoint: str, creds: None, tmp_path: Path) -> None:
    bucket = new_bucket(endpoint)
    uri, src = f"s3://{bucket}/l", tmp_path / "src"
    ids = _day_batch(src, 0)
    ingest_cli(src, "--lake", uri, "--endpoint-url", endpoint)
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key=f"l/{LOCK_KEY}",
                      Body=b'{"host": "elsewhere", "pid": 42, "since": "2026-01-01T00:00:00"}')
    result = run_cli("ingest", src, "--lake", uri, "--endpoint-url", endpoint)
    assert result.exit_code == 1
    assert "being written by another trailscan process (host elsewhere, pid 42" in result.stderr
    assert f"delete s3://{bucket}/l/{LOCK_KEY}" in result.stderr
    client.delete_object(Bucket=bucket, Key=f"l/{LOCK_KEY}")
    # A writer that ignored the lock publishes during our run: our publish is refused.
    lake = Lake.open(uri, create=True, aws=AwsOptions(endpoint_url=endpoint))
    other = tmp_path / "other.db"
    client.download_file(bucket, f"l/{STATE_KEY}", str(other))
    with sqlite3.connect(other) as db:
        db.execute("INSERT INTO runs VALUES ('other-writer', NULL, NULL, '{}')")
    with pytest.raises(LakeError, match="published by another writer"), lake.writer():
        client.upload_file(str(other), bucket, f"l/{STATE_KEY}")
        etag = client.head_object(Bucket=bucket, Key=f"l/{STATE_KEY}")["ETag"]
    assert client.head_object(Bucket=bucket, Key=f"l/{STATE_KEY}")["ETag"] == etag
    assert f"l/{LOCK_KEY}" not in keys(endpoint, bucket, "l/")
    assert _ids(uri, endpoint) == sorted(ids)


def test_library_ingest_into_s3_with_explicit_options(endpoint: str, creds: None,
                                                      tmp_path: Path) -> None:
    bucket = new_bucket(endpoint)
    src = tmp_path / "src"
    ids = _day_batch(src, 0) + _day_batch(src, 1, day="2024-03-05")
    (src / "broken.json.gz").write_bytes(b"\x1f\x8b not really gzip")
    aws = AwsOptions(endpoint_url=endpoint)
    stats = check_invariant(ingest([str(src)], f"s3://{bucket}", workers=1, aws=aws))
    assert stats["lake"] == f"s3://{bucket}" and stats["events_written"] == 6
    assert stats["files_quarantined"] == 1
    quarantined = cli_json("quarantine", "--lake", f"s3://{bucket}", "--endpoint-url", endpoint)
    assert [(q["source"], q["copy"] is not None) for q in quarantined] == [
        (str(src / "broken.json.gz"), True)]
    assert [k for k in keys(endpoint, bucket, "quarantine/") if "/files/" in k]
    assert [k.split("/")[1] for k in keys(endpoint, bucket, "events/")] == [
        "event_date=2024-03-01", "event_date=2024-03-05"]
    con = trailscan.open_lake(f"s3://{bucket}", aws=aws)
    try:
        got = sorted(r[0] for r in con.sql("SELECT eventID FROM cloudtrail").fetchall())
    finally:
        con.close()
    assert got == sorted(ids)


# --- errors ---------------------------------------------------------------------------------------


def test_errors_are_one_line(endpoint: str, creds: None, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    _day_batch(src, 0)
    for args in (("ingest", src, "--lake", "s3://no-such-bucket-here/lake"),
                 ("query", "SELECT 1", "--lake", "s3://no-such-bucket-here/lake"),
                 ("detect", "--lake", "s3://no-such-bucket-here")):
        result = run_cli(*args, "--endpoint-url", endpoint)
        assert result.exit_code == 1, result.stderr
        assert result.stderr == "Error: s3://no-such-bucket-here" + (
            "/lake" if "/lake" in str(args) else "") + ": no such bucket\n"
    bucket = new_bucket(endpoint)
    result = run_cli("query", "SELECT 1", "--lake", f"s3://{bucket}/nothing", "--endpoint-url",
                     endpoint)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: no trailscan lake at s3://{bucket}/nothing")
    result = run_cli("query", "SELECT 1", "--lake", f"s3://{bucket}", "--endpoint-url",
                     "http://127.0.0.1:9")  # nothing listens there
    assert result.exit_code == 1 and result.stderr.startswith("Error: s3://") and \
        "cannot connect" in result.stderr and result.stderr.count("\n") == 1
    proxy = Proxy(endpoint)
    proxy.deny = True
    try:
        for args in (("ingest", src), ("query", "SELECT 1")):
            result = run_cli(*args, "--lake", f"s3://{bucket}/l", "--endpoint-url", proxy.url)
            assert result.exit_code == 1
            assert result.stderr == f"Error: s3://{bucket}/l: access denied (AccessDenied)\n"
    finally:
        proxy.close()
    for name in CREDS:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    result = run_cli("query", "SELECT 1", "--lake", f"s3://{bucket}", "--endpoint-url", endpoint)
    assert result.exit_code == 1
    assert result.stderr == f"Error: s3://{bucket}: no AWS credentials found (environment, " \
                            "~/.aws, --profile or an instance role)\n"
