"""The `trailscan` command: output formats, exit codes, one-line errors, the real console script."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (
    STAT_KEYS,
    check_invariant,
    ingest_cli,
    make_record,
    quarantine_list,
    run_cli,
    write_bytes,
    write_records,
)

import trailscan

SQL = ("SELECT eventID, eventTime, eventName, userAgent, userIdentity, readOnly, "
       "requestParameters FROM cloudtrail ORDER BY eventTime")


@pytest.fixture
def small_lake(src: Path, lake: Path) -> tuple[Path, list[dict]]:
    recs = [
        make_record(eventTime="2024-03-01T10:00:00Z", eventName="GetObject",
                    userAgent='curl/8.0, "quoted", ünïcode'),
        make_record(eventTime="2024-03-01T11:00:00Z", eventName="PutObject", readOnly=False,
                    userAgent="=HYPERLINK(\"http://evil\")"),
    ]
    write_records(src / "two.json.gz", recs)
    ingest_cli(src, "--lake", lake)
    return lake, recs


# --- ingest ----------------------------------------------------------------------------------


def test_ingest_json_is_exactly_one_object_with_every_counter(src, lake):
    write_records(src / "a.json.gz", [make_record(), make_record()])
    write_bytes(src / "broken.json.gz", b"\x1f\x8b\x08\x00nonsense")
    result = run_cli("ingest", src, "--lake", lake, "--workers", "1", "--json")
    assert result.exit_code == 0  # quarantined input is reported, not a failure
    assert result.stdout.count("\n") == 1
    stats = json.loads(result.stdout)
    check_invariant(stats)
    assert set(STAT_KEYS) <= set(stats)
    assert stats["files_seen"] == 2
    assert stats["files_quarantined"] == 1
    assert stats["events_written"] == 2
    assert stats["events_filtered"] == 0
    assert stats["lake"] == str(lake)
    assert result.stderr == ""


def test_ingest_human_output_summarises_on_stdout_and_names_problems_on_stderr(src, lake):
    write_records(src / "a.json", [make_record(), make_record(eventTime="never")])
    write_bytes(src / "empty.json", b"")
    result = run_cli("ingest", src, "--lake", lake, "--workers", "1")
    assert result.exit_code == 0
    assert f"quarantined: {src / 'empty.json'}: empty file" in result.stderr
    assert "2 files seen: 1 ingested, 0 skipped, 1 quarantined" in result.stdout
    assert "2 events read: 1 written, 0 duplicates, 1 quarantined, 0 filtered out" in (
        result.stdout)


@pytest.mark.parametrize(("args", "message"), [
    (["ingest", "{src}", "--lake", "{lake}", "--no-such-option"], "No such option"),
    (["ingest", "--lake", "{lake}"], "Missing argument"),
    (["ingest", "{src}/does-not-exist", "--lake", "{lake}"], "Error: no such file or directory"),
    (["ingest", "{src}", "--lake", "{lake}", "--since", "yesterday"],
     "Error: not a date or ISO-8601 time: 'yesterday'"),
    (["ingest", "{src}", "--lake", "{lake}", "--until", "2024-13-01"],
     "Error: not a date or ISO-8601 time: '2024-13-01'"),
    (["ingest", "{src}", "--lake", "{lake}", "--max-file-bytes", "lots"], "not a valid integer"),
    (["query", "SELECT 1", "--lake", "{lake}"], "Error: no trailscan lake at"),
    (["query", "SELECT 1", "--lake", "{lake}", "--format", "xml"], "Invalid value for '--format'"),
    (["quarantine", "--lake", "{lake}"], "Error: no trailscan lake at"),
    (["frobnicate"], "No such command"),
], ids=["unknown-option", "no-source", "missing-source-path", "bad-since", "bad-until",
        "bad-max-bytes", "query-on-missing-lake-is-usage-error",
        "bad-format", "quarantine-on-missing-lake", "unknown-command"])
def test_usage_errors_exit_2_with_a_one_line_message(src, lake, args, message):
    write_records(src / "a.json", [make_record()])
    result = run_cli(*[a.format(src=src, lake=lake) for a in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""
    if message.startswith("Error: "):
        assert result.stderr.count("\n") == 1


def test_lake_locked_by_another_writer_is_a_failure_exit_1(src, lake):
    write_records(src / "a.json", [make_record()])
    ingest_cli(src, "--lake", lake)
    write_records(src / "b.json", [make_record()])
    with open(lake / "_trailscan" / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("ingest", src, "--lake", lake, "--workers", "1")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: lake {lake} is being written by another")
    assert result.stderr.count("\n") == 1
    assert ingest_cli(src, "--lake", lake)["events_written"] == 1


def test_failed_ingest_commits_nothing(src, lake):
    write_records(src / "a.json", [make_record()])
    result = run_cli("ingest", src, src / "missing", "--lake", lake)
    assert result.exit_code == 2
    # Sources are checked before anything is written: not even an empty lake is created.
    assert not lake.exists()
    query = run_cli("query", "SELECT count(*) AS n FROM cloudtrail", "--lake", lake,
                    "--format", "json")
    assert query.exit_code == 2
    assert "no trailscan lake" in query.stderr


def test_help_for_every_command():
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("ingest", "scan", "query", "quarantine"):
        assert command in result.stdout
        sub = run_cli(command, "--help")
        assert sub.exit_code == 0
        assert "Usage:" in sub.stdout and sub.stdout.count("--lake") >= 1
    assert run_cli("--version").stdout.strip() == f"trailscan, version {trailscan.__version__}"


# --- query output formats --------------------------------------------------------------------


def test_query_table_format(small_lake):
    lake, _ = small_lake
    result = run_cli("query", "SELECT eventName, readOnly FROM cloudtrail ORDER BY eventTime",
                     "--lake", lake)
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if "Object" in line]
    assert len(lines) == 2
    assert "GetObject" in lines[0] and "True" in lines[0]
    assert "PutObject" in lines[1] and "False" in lines[1]
    assert "eventName" in result.stdout and "readOnly" in result.stdout


def test_query_csv_format(small_lake):
    lake, recs = small_lake
    result = run_cli("query", SQL, "--lake", lake, "--format", "csv")
    assert result.exit_code == 0
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0] == ["eventID", "eventTime", "eventName", "userAgent", "userIdentity",
                        "readOnly", "requestParameters"]
    first, second = table[1:]
    assert first[0] == recs[0]["eventID"]
    assert datetime.fromisoformat(first[1]) == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert first[3] == 'curl/8.0, "quoted", ünïcode'
    assert json.loads(first[4])["arn"] == recs[0]["userIdentity"]["arn"]
    assert json.loads(first[6]) == recs[0]["requestParameters"]
    assert second[5] == "False"
    assert second[3] == "'=HYPERLINK(\"http://evil\")"  # spreadsheet formula neutralised


def test_query_json_and_ndjson_formats(small_lake):
    lake, recs = small_lake
    as_json = run_cli("query", SQL, "--lake", lake, "--format", "json")
    as_ndjson = run_cli("query", SQL, "--lake", lake, "--format", "ndjson")
    assert as_json.exit_code == as_ndjson.exit_code == 0
    rows = json.loads(as_json.stdout)
    lines = [json.loads(line) for line in as_ndjson.stdout.splitlines()]
    assert rows == lines
    assert [r["eventID"] for r in rows] == [r["eventID"] for r in recs]
    assert datetime.fromisoformat(rows[0]["eventTime"]) == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert rows[0]["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"] == "Admin"
    assert rows[1]["readOnly"] is False
    assert rows[1]["userAgent"] == recs[1]["userAgent"]  # no CSV escaping in JSON
    assert json.loads(rows[0]["requestParameters"]) == recs[0]["requestParameters"]


def test_query_parquet_format_to_file_and_to_stdout(small_lake, tmp_path):
    lake, recs = small_lake
    out = tmp_path / "out" / "result.parquet"
    out.parent.mkdir()
    result = run_cli("query", SQL, "--lake", lake, "--format", "parquet", "--output", out)
    assert result.exit_code == 0
    assert result.stdout == ""
    table = pq.read_table(out)
    assert table.column("eventID").to_pylist() == [r["eventID"] for r in recs]
    assert pa.types.is_timestamp(table.schema.field("eventTime").type)
    assert table.column("eventTime").to_pylist()[1] == datetime(2024, 3, 1, 11, tzinfo=UTC)
    assert table.column("userIdentity").to_pylist()[0]["arn"] == recs[0]["userIdentity"]["arn"]
    piped = run_cli("query", SQL, "--lake", lake, "--format", "parquet")
    assert piped.exit_code == 0
    assert pq.read_table(io.BytesIO(piped.stdout_bytes)).equals(table)


def test_query_output_file_for_text_formats(small_lake, tmp_path):
    lake, recs = small_lake
    out = tmp_path / "rows.ndjson"
    result = run_cli("query", "SELECT eventID FROM cloudtrail ORDER BY eventTime", "--lake", lake,
                     "--format", "ndjson", "-o", out)
    assert result.exit_code == 0 and result.stdout == ""
    assert [json.loads(line)["eventID"] for line in out.read_text().splitlines()] == [
        r["eventID"] for r in recs]


def test_query_reads_the_quarantine_and_manifest_views(src, lake):
    write_records(src / "ok.json", [make_record()])
    write_bytes(src / "bad.json", b"{")
    ingest_cli(src, "--lake", lake)
    result = run_cli("query", "SELECT m.uri, m.status, q.reason FROM manifest m LEFT JOIN "
                     "quarantine q ON q.source = m.uri ORDER BY m.uri", "--lake", lake,
                     "--format", "json")
    rows = json.loads(result.stdout)
    assert [(r["uri"], r["status"]) for r in rows] == [(str(src / "bad.json"), "quarantined"),
                                                      (str(src / "ok.json"), "ingested")]
    assert rows[0]["reason"].startswith("invalid JSON")
    assert rows[1]["reason"] is None


def test_table_output_shows_markup_like_values_literally(src, lake):
    """userAgent and friends are attacker-controlled: `[/bold]` must not crash or restyle output."""
    write_records(src / "a.json", [
        make_record(eventTime="2024-03-01T10:00:00Z", userAgent="[/bold] closing tag"),
        make_record(eventTime="2024-03-01T11:00:00Z", userAgent="[red]not red[/red]"),
        make_record(eventTime="2024-03-01T12:00:00Z", readOnly="[/x]"),
    ])
    ingest_cli(src, "--lake", lake)
    result = run_cli("query", "SELECT userAgent FROM cloudtrail ORDER BY eventTime",
                     "--lake", lake)
    assert result.exit_code == 0
    assert "[/bold] closing tag" in result.stdout
    assert "[red]not red[/red]" in result.stdout
    listing = run_cli("quarantine", "--lake", lake)
    assert listing.exit_code == 0
    assert "'[/x]'" in listing.stdout


def test_numbers_are_not_mangled_by_the_csv_formula_guard(small_lake):
    lake, _ = small_lake
    sql = ("SELECT -3 AS neg, -1.5 AS f, count(*) AS n, '=1+1' AS formula FROM cloudtrail")
    rows = list(csv.reader(io.StringIO(run_cli("query", sql, "--lake", lake,
                                               "--format", "csv").stdout)))
    assert rows == [["neg", "f", "n", "formula"], ["-3", "-1.5", "2", "'=1+1"]]
    table = run_cli("query", sql, "--lake", lake).stdout
    assert "'-3" not in table and "-3" in table


@pytest.mark.parametrize("sql", ["SELEC * FROM cloudtrail", "SELECT nope FROM cloudtrail",
                                 "SELECT * FROM no_such_table", "SELECT 1/'x'"])
def test_sql_errors_are_one_line_and_exit_2(small_lake, sql):
    lake, _ = small_lake
    result = run_cli("query", sql, "--lake", lake)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: SQL error: ")
    assert result.stderr.count("\n") == 1


# --- quarantine and scan ---------------------------------------------------------------------


def test_quarantine_command_lists_files_and_records_with_reasons(src, lake):
    write_records(src / "mixed.json", [make_record(), make_record(readOnly="yes")])
    write_bytes(src / "junk.json.gz", b"\x1f\x8b junk")
    ingest_cli(src, "--lake", lake)
    entries = quarantine_list(lake)
    assert [(e["source"], e["record_index"]) for e in entries] == [
        (str(src / "junk.json.gz"), None), (str(src / "mixed.json"), 1)]
    assert "gzip" in entries[0]["reason"]
    assert entries[1]["reason"].startswith("readOnly: 'yes' is not of type 'boolean'")
    as_csv = run_cli("quarantine", "--lake", lake, "--format", "csv")
    assert as_csv.stdout.splitlines()[0] == "run_id,source,record_index,reason,copy"
    assert len(as_csv.stdout.splitlines()) == 3


def test_scan_ingests_then_summarises(src, lake):
    write_records(src / "a.json", [make_record(), make_record(eventTime="2024-03-02T00:00:00Z",
                                                              errorCode="AccessDenied")])
    result = run_cli("scan", src, "--lake", lake, "--workers", "1", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    check_invariant(report["ingest"])
    summary = report["summary"]
    assert summary["events"] == 2
    assert summary["errors"] == 1
    assert datetime.fromisoformat(summary["first_event"]) == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert datetime.fromisoformat(summary["last_event"]) == datetime(2024, 3, 2, tzinfo=UTC)
    assert summary["top_errors"] == [{"name": "AccessDenied", "events": 1}]


def test_python_api_fetches_event_times_as_datetimes(small_lake):
    lake, _ = small_lake
    con = trailscan.open_lake(str(lake))
    try:
        assert con.execute("SELECT min(eventTime) FROM cloudtrail").fetchall() == [
            (datetime(2024, 3, 1, 10, tzinfo=UTC),)]
    finally:
        con.close()


# --- the installed console script ------------------------------------------------------------


def _script() -> str:
    found = Path(sys.executable).parent / "trailscan"
    return str(found) if found.exists() else shutil.which("trailscan") or "trailscan"


def test_console_script_ingest_json_stdout_is_exactly_one_json_object(src, tmp_path):
    write_records(src / "a.json.gz", [make_record(), make_record()])
    write_bytes(src / "b.json", b"[{]")
    proc = subprocess.run([_script(), "ingest", str(src), "--lake", str(tmp_path / "lake"),
                           "--workers", "1", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stats = json.loads(proc.stdout)  # raises if anything else is on stdout
    assert proc.stdout.endswith("}\n") and proc.stdout.count("\n") == 1
    check_invariant(stats)
    assert (stats["events_written"], stats["files_quarantined"]) == (2, 1)


def test_redelivery_with_unknown_fields_is_a_duplicate_in_another_process(src, tmp_path):
    """Two runs are two processes (different hash seeds): an identical record stays one row."""
    rec = make_record(newA=1, newB=2, newC=3, newD=4, newE=5)
    rec["userIdentity"].update(extraOne=1, extraTwo=2, extraThree=3)
    write_records(src / "first" / "a.json.gz", [rec])
    write_records(src / "second" / "b.json.gz", [rec])
    lake = tmp_path / "lake"
    outputs = []
    for folder, seed in (("first", "1"), ("second", "2")):
        proc = subprocess.run([_script(), "ingest", str(src / folder), "--lake", str(lake),
                               "--workers", "1", "--json"], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        outputs.append(check_invariant(json.loads(proc.stdout)))
    assert outputs[1]["events_duplicate"] == 1
    assert outputs[1]["conflicting_event_ids"] == 0
    assert outputs[1]["events_written"] == 0


def test_console_script_exit_codes(src, tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([_script(), *args], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)

    bad_option = run("ingest", str(src), "--bogus")
    assert bad_option.returncode == 2
    missing_lake = run("query", "SELECT 1", "--lake", str(tmp_path / "none"))
    assert missing_lake.returncode == 2
    assert missing_lake.stderr.startswith("Error: no trailscan lake at ")
    module = subprocess.run([sys.executable, "-m", "trailscan", "--version"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert module.returncode == 0 and trailscan.__version__ in module.stdout
    for proc in (bad_option, missing_lake, module):
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "trailscan-lake").exists()


def test_output_piped_into_head_ends_quietly(src: Path, lake: Path) -> None:
    """`trailscan query ... | head`: the reader leaving early is not an error to report."""
    write_records(src / "many.json.gz", [make_record() for _ in range(2000)])
    ingest_cli(src, "--lake", lake)
    proc = subprocess.Popen([sys.executable, "-m", "trailscan.cli", "query", "--lake", str(lake),
                             "SELECT * FROM cloudtrail", "--format", "ndjson"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # then close the pipe, as head does, with much still to come
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert json.loads(first)["eventID"]
    assert err == "", err  # no "Error: [Errno 32] Broken pipe", no traceback
