"""Hostile and broken input (tests/hostile_corpus.py): every case gets a one-line reason in the
quarantine, the run exits 0 with the invariant intact, and every good record is still ingested."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import (
    ingest_cli,
    make_record,
    quarantine_list,
    query,
    run_cli,
    scalar,
    write_bytes,
)
from hostile_corpus import CORPUS_LIMIT, write_corpus

from trailscan import records
from trailscan.errors import BadInput


def _entries_by_source(lake: Path) -> dict[str, list[dict]]:
    by_source: dict[str, list[dict]] = defaultdict(list)
    for entry in quarantine_list(lake):
        by_source[entry["source"]].append(entry)
    return by_source


@pytest.mark.parametrize("workers", [1, 2])
def test_hostile_corpus(tmp_path: Path, workers: int) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    cases = write_corpus(src)
    on_disk = sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert on_disk < 1_000_000  # the corpus is small on disk (the bomb is ~64 KB)

    stats = ingest_cli(src, "--lake", lake, "--max-file-bytes", CORPUS_LIMIT, workers=workers)
    quarantined = _entries_by_source(lake)
    stored = {row[0] for row in query(lake, "SELECT eventID FROM cloudtrail")}
    by_path = {str(case.path): case for case in cases}

    for case in cases:
        uri = str(case.path)
        entries = quarantined.get(uri, [])
        for entry in entries:  # one line, bounded
            assert "\n" not in entry["reason"] and len(entry["reason"]) < 400, entry
        if case.outcome in ("quarantined", "unreadable"):
            assert len(entries) == 1, (uri, entries)
            assert entries[0]["record_index"] is None
            assert case.reason in entries[0]["reason"], (uri, entries[0]["reason"])
            assert any(p.startswith(f"{uri}: ") for p in stats["problems"])
        elif case.outcome == "partial":
            assert [e["record_index"] is not None for e in entries] == [True] * case.bad, uri
            for entry, want in zip(entries, case.reasons, strict=True):
                assert want in entry["reason"], (uri, entry["reason"], want)
        else:
            assert entries == [], (uri, entries)
        assert set(case.good) <= stored, uri

    # Every good record is in, exactly once; nothing else is.
    good = [eid for case in cases for eid in case.good]
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == len(good) == len(set(good))
    assert stored == set(good)
    assert stats["events_written"] == len(good)
    assert stats["files_quarantined"] == sum(c.outcome in ("quarantined", "unreadable")
                                             for c in cases)
    assert stats["events_quarantined"] == sum(c.bad for c in cases)
    assert set(quarantined) <= set(by_path)  # the directory link loop was never followed

    # Copies of rejected files stay inside the lake and hold the original bytes.
    for entries in quarantined.values():
        for entry in entries:
            if entry["copy"]:
                copy = (lake / "quarantine" / entry["run_id"] / entry["copy"]).resolve()
                assert copy.is_relative_to(lake.resolve())
                assert copy.read_bytes() == Path(entry["source"]).read_bytes()

    # A second run skips what it has read and quarantines nothing new; the lake is unchanged.
    again = ingest_cli(src, "--lake", lake, "--max-file-bytes", CORPUS_LIMIT, workers=workers)
    assert again["events_written"] == 0 and again["events_read"] == 0
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == len(good)


def test_wrong_struct_value_rejects_only_its_record() -> None:
    """`[]` for a struct column used to make pyarrow fail the whole batch (and the file)."""
    good = make_record()
    for bad in (make_record(userIdentity=[]), make_record(tlsDetails=[]),
                make_record(resources=[[]]),
                make_record(userIdentity={"type": "IAMUser", "sessionContext": []})):
        parsed = records.parse(json.dumps({"Records": [bad, good]}).encode(), "x")
        assert parsed.table is not None and parsed.table.num_rows == 1
        assert parsed.table.column("eventID").to_pylist() == [good["eventID"]]
        assert [r.index for r in parsed.rejected] == [0]
        assert "is not of type 'object'" in parsed.rejected[0].reason
        assert json.loads(parsed.rejected[0].raw) == bad  # quarantined as it was read


def test_deep_nesting_is_a_reason_not_a_crash() -> None:
    nested = "[" * 1000 + "]" * 1000
    deep = make_record(requestParameters={"p": "DEEP"})
    text = json.dumps({"Records": [deep]}).replace('"DEEP"', nested)
    parsed = records.parse(text.encode(), "x")
    assert parsed.table is not None and parsed.table.num_rows == 1
    stored = parsed.table.column("requestParameters")[0].as_py()
    assert stored.replace(" ", "") == '{"p":' + nested + "}"
    with pytest.raises(BadInput, match="nested too deeply"):
        records.parse(b"[" * 200_000 + b"]" * 200_000, "x")


def test_hostile_reasons_are_one_line() -> None:
    with pytest.raises(BadInput) as info:
        records.parse(json.dumps({"a\nb" * 1000: 1}).encode(), "x")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200
    bad_time = make_record(eventTime="2024-03-01\n" + "x" * 10_000)
    parsed = records.parse(json.dumps({"Records": [bad_time]}).encode(), "x")
    (rejected,) = parsed.rejected
    assert "\n" not in rejected.reason and len(rejected.reason) < 200


def test_huge_file_is_refused_before_reading(src: Path, lake: Path) -> None:
    big = write_bytes(src / "big.json", b" " * (3 * 1024 * 1024))
    good = write_bytes(src / "good.json", json.dumps({"Records": [make_record()]}).encode())
    stats = ingest_cli(src, "--lake", lake, "--max-file-bytes", 1024 * 1024)
    assert stats["files_quarantined"] == 1 and stats["events_written"] == 1
    (entry,) = quarantine_list(lake)
    assert entry["source"] == str(big) and "before decompression" in entry["reason"]
    assert entry["copy"] is None  # a huge object is not copied into the lake either
    assert str(good) not in {e["source"] for e in quarantine_list(lake)}


@pytest.mark.slow
def test_100_mb_records(src: Path, lake: Path) -> None:
    """A 100 MB valid record is stored whole; a 100 MB invalid one is quarantined to a file."""
    huge = "A" * (100 * 1024 * 1024)
    valid = make_record(requestParameters={"blob": huge})
    invalid = make_record(eventTime=12345, requestParameters={"blob": huge})
    small = make_record()
    write_bytes(src / "huge.json.gz", gzip.compress(
        json.dumps({"Records": [valid, invalid, small]}).encode(), compresslevel=1))
    del huge
    stats = ingest_cli(src, "--lake", lake)
    assert (stats["events_written"], stats["events_quarantined"]) == (2, 1)
    assert scalar(lake, "SELECT max(length(requestParameters)) FROM cloudtrail") > 100 * 2**20
    (entry,) = quarantine_list(lake)
    assert entry["record_index"] == 1 and entry["reason"].startswith("eventTime:")
    assert len(entry["reason"]) < 400
    copy = lake / "quarantine" / entry["run_id"] / entry["copy"]
    assert json.loads(copy.read_bytes())["eventID"] == invalid["eventID"]


def test_corpus_through_the_installed_command(tmp_path: Path) -> None:
    """The real `trailscan` process (not click's test runner): exit 0, no traceback."""
    src, lake = tmp_path / "src", tmp_path / "lake"
    write_corpus(src)
    result = subprocess.run(
        [sys.executable, "-m", "trailscan.cli", "ingest", str(src), "--lake", str(lake),
         "--max-file-bytes", str(CORPUS_LIMIT), "--workers", "1"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "quarantined:" in result.stderr
    scan = subprocess.run(  # the whole job: ingest, detections, summary
        [sys.executable, "-m", "trailscan.cli", "scan", str(src), "--lake", str(tmp_path / "l2"),
         "--max-file-bytes", str(CORPUS_LIMIT), "--workers", "1"],
        capture_output=True, text=True, timeout=300)
    assert scan.returncode == 0, scan.stderr
    assert "Traceback" not in scan.stderr and "Findings by severity" in scan.stdout
    assert "\x1b" not in scan.stdout + scan.stderr


def test_largest_inline_quarantine_entry_is_readable(src: Path, lake: Path) -> None:
    """Just under the inline limit, with characters escaped twice on the way to the index."""
    bad = make_record(eventTime=1, userAgent='"' * 520_000)
    write_bytes(src / "a.json", json.dumps({"Records": [bad, make_record()]}).encode())
    stats = ingest_cli(src, "--lake", lake)
    assert (stats["events_written"], stats["events_quarantined"]) == (1, 1)
    (entry,) = quarantine_list(lake)
    assert entry["copy"] is None
    assert scalar(lake, "SELECT length(raw) FROM quarantine") > 1_040_000
    raw = scalar(lake, "SELECT raw FROM quarantine")
    assert json.loads(raw)["userAgent"] == bad["userAgent"]


def test_a_lone_surrogate_cannot_break_detection_for_the_lake(src: Path, lake: Path) -> None:
    r"""`"\ud800"` is legal JSON syntax but not Unicode: stored as JSON text it made DuckDB's JSON
    functions fail, and with them every rule reading requestParameters on the whole lake."""
    odd = make_record(requestParameters={"bucketName": "\ud800", "key": "k"})
    paired = make_record(requestParameters={"bucketName": "\U0001f980"})
    write_bytes(src / "a.json", json.dumps({"Records": [odd, paired]}).encode())
    stats = ingest_cli(src, "--lake", lake)
    assert (stats["events_written"], stats["events_quarantined"]) == (1, 1)
    (entry,) = quarantine_list(lake)
    assert "unpaired UTF-16 surrogate" in entry["reason"]
    raw = scalar(lake, "SELECT raw FROM quarantine")
    assert json.loads(raw)["requestParameters"] == odd["requestParameters"]  # kept as read
    assert scalar(lake, "SELECT json_extract_string(requestParameters, '$.bucketName') "
                        "FROM cloudtrail") == "\U0001f980"
    result = run_cli("detect", "--lake", lake, "--format", "json")
    assert result.exit_code == 0, result.stderr
