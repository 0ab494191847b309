"""Concurrency: one writer at a time (a second one exits 1 with a clear message), and readers
that run while a writer commits and compacts see one committed state, never a partial run."""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ingest_lib, make_record, run_cli, scalar, write_records

from trailscan.detections import load_rules, run_rules
from trailscan.errors import LakeError
from trailscan.lake import Lake
from trailscan.query import run_query
from trailscan.summary import summarize

LOCK_MESSAGE = "is being written by another trailscan process"
SUM = ("SELECT count(*) AS n, count(DISTINCT eventID) AS ids, coalesce(sum(CAST(json_extract("
       "additionalEventData, '$.bytesTransferredOut') AS BIGINT)), 0) AS total FROM cloudtrail")


def _batch(root: Path, index: int, files: int = 3, per_file: int = 20) -> tuple[int, int]:
    """Write one batch (all on one day, so repeated runs trigger compaction); (events, sum)."""
    total = 0
    for f in range(files):
        recs = [make_record(additionalEventData={"bytesTransferredOut": index + 1})
                for _ in range(per_file)]
        total += (index + 1) * per_file
        write_records(root / f"batch-{index:02d}" / f"f{f}.json.gz", recs)
    return files * per_file, total


def test_second_writer_exits_1_with_a_clear_message(src: Path, lake: Path) -> None:
    write_records(src / "a.json.gz", [make_record() for _ in range(3)])
    ingest_lib([src], lake)
    write_records(src / "b.json.gz", [make_record() for _ in range(3)])
    with open(lake / "_trailscan" / "lock", "a+") as handle:  # as a running writer holds it
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = run_cli("ingest", src, "--lake", lake, "--workers", 1)
        assert result.exit_code == 1
        assert result.stderr.startswith("Error: lake ") and LOCK_MESSAGE in result.stderr
        assert len(result.stderr.splitlines()) == 1
        with pytest.raises(LakeError, match=LOCK_MESSAGE):
            ingest_lib([src], lake)
        assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 3  # readers are not blocked
    assert ingest_lib([src], lake)["events_written"] == 3  # released: the next run goes ahead
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 6


def test_two_ingests_at_once_store_each_event_once(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    events = sum(_batch(src, i, files=8, per_file=50)[0] for i in range(6))
    for trial in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "trailscan.cli", "ingest", str(src),
                                   "--lake", str(lake), "--workers", "1", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outcomes = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
        for code, out, err in outcomes:
            assert "Traceback" not in err
            if code == 1:  # the loser of the lock race
                assert LOCK_MESSAGE in err and out == "", err
            else:
                assert code == 0, err
                stats = json.loads(out)
                assert stats["events_read"] == stats["events_written"] + stats[
                    "events_duplicate"] + stats["events_quarantined"] + stats["events_filtered"]
        assert any(code == 0 for code, _, _ in outcomes), (trial, outcomes)
        assert scalar(lake, "SELECT count(*) FROM cloudtrail") == events
        assert scalar(lake, "SELECT count(DISTINCT eventID) FROM cloudtrail") == events


# The writer commits a batch only when the reader says "go" (a line on stdin), and the reader says
# it once it has seen the previous commit: the reads overlap every commit and compaction whatever
# the relative speed of the two processes (a free-running writer could finish before a slow reader
# had looked twice, which made this test flaky on a busy machine).
_WRITER = """
import sys
from trailscan.ingest import ingest
for path in sys.argv[2:]:
    if not sys.stdin.readline():
        sys.exit("reader went away")
    ingest([path], sys.argv[1], workers=1)
    print("committed", path, flush=True)
"""


def test_readers_see_only_committed_states_during_ingest_and_compaction(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    batches = [_batch(src, i) for i in range(12)]
    states = [(0, 0)]  # the committed states, in order
    for count, amount in batches:
        states.append((states[-1][0] + count, states[-1][1] + amount))
    allowed = set(states)
    Lake.open(lake, create=True)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(lake),
                               *[str(src / f"batch-{i:02d}") for i in range(len(batches))]],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    seen: list[tuple[int, int]] = []
    rules = [r for r in load_rules() if r.id.startswith("s3_")] or load_rules()[:3]
    released = 0  # batches the writer has been told to commit
    deadline = time.monotonic() + 600
    try:
        while writer.poll() is None:
            assert time.monotonic() < deadline, f"writer stuck at {released}: {seen[-3:]}"
            row = run_query(SUM, lake).to_pylist()[0]
            assert row["n"] == row["ids"]  # no event listed twice (compaction swap is atomic)
            state = (row["n"], row["total"])
            seen.append(state)
            summary = summarize(lake)
            assert summary["events"] in {a for a, _ in allowed}
            run_rules(lake, rules)  # every rule reads the same state, even across a compaction
            if released < len(batches) and state == states[released]:
                writer.stdin.write("go\n")
                writer.stdin.flush()
                released += 1
    finally:
        if writer.poll() is None:
            writer.kill()
        out, err = writer.communicate(timeout=300)
    assert writer.returncode == 0, err
    assert out.count("committed") == len(batches)
    partial = [s for s in seen if s not in allowed]
    assert partial == [], f"readers saw states that were never committed: {partial[:5]}"
    # every committed state but the last was seen (the writer waited for it); the last one after:
    assert set(seen) >= set(states[:-1]), sorted(set(states[:-1]) - set(seen))
    assert run_query(SUM, lake).to_pylist()[0] == {
        "n": states[-1][0], "ids": states[-1][0], "total": states[-1][1]}
    assert len(Lake.open(lake).data_files()) <= 5  # compaction ran meanwhile


def test_a_read_hit_by_compaction_is_redone_on_the_new_state(src: Path, lake: Path) -> None:
    for i in range(4):
        _batch(src, i, files=1, per_file=5)
        ingest_lib([src / f"batch-{i:02d}"], lake)
    handle = Lake.open(lake)
    before = handle.data_files()
    assert len(before) == 4
    calls = 0

    def work() -> int:
        nonlocal calls
        calls += 1
        con = handle.connect()  # views list the four files
        try:
            if calls == 1:  # a writer compacts them into one and deletes the four meanwhile
                with handle.writer():
                    assert handle.compact(["2024-03-01"], threshold=1) == 1
            return con.execute("SELECT count(*) FROM cloudtrail").fetchone()[0]
        finally:
            con.close()

    assert handle.reading(work) == 20
    assert calls == 2
    assert not any(p.exists() for p in before)


def test_a_lake_that_keeps_changing_is_a_clear_error(src: Path, lake: Path) -> None:
    write_records(src / "a.json.gz", [make_record()])
    ingest_lib([src], lake)
    handle = Lake.open(lake)

    def work() -> int:
        con = handle.connect()
        try:
            for path in handle.data_files():
                path.rename(path.with_suffix(".moved"))  # every listed file vanishes
            return con.execute("SELECT count(*) FROM cloudtrail").fetchone()[0]
        finally:
            con.close()
            for path in handle.data_files():
                path.with_suffix(".moved").rename(path)

    with pytest.raises(LakeError, match="kept changing while being read"):
        handle.reading(work, attempts=3)
    time.sleep(0)  # the lake is intact afterwards
    assert scalar(lake, "SELECT count(*) FROM cloudtrail") == 1
