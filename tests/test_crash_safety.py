"""Crash safety: `trailscan ingest` killed with SIGKILL at random points (seeded), including
in the middle of its commit, then run again. After each kill a reader sees a committed state
(the lake before the run, or after it), never a partial file; after the re-run the lake holds
every unique event exactly once and the manifest agrees with the Parquet files.

For the kills aimed at the commit, the child process (the real CLI) is started with each of the
commit's file operations slowed by 30 ms, so that the short window between the SQLite commit and
the last rename can be hit on purpose rather than by luck."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ingest_lib, make_record, scalar, write_records

SEED = 20261122
TRIALS = 20
_SLOW_COMMIT = """
import sys, time
import trailscan.lake as lake
_apply = lake._apply
lake._apply = lambda *args: (time.sleep(0.03), _apply(*args))[1]
from trailscan.cli import main
sys.argv[0] = "trailscan"
main()
"""


def _trail(root: Path) -> tuple[int, int]:
    """Part A (ingested before the killed run) and part B: 8 days, re-delivered files and one
    bad record. Returns (unique events in A, unique events in A+B)."""
    a_ids: set[str] = set()
    all_ids: set[str] = set()
    for day in range(1, 9):
        for n in range(2):
            recs = [make_record(eventTime=f"2024-03-{day:02d}T{n:02d}:{i:02d}:00Z")
                    for i in range(30)]
            part = "A" if day <= 2 else "B"
            write_records(root / part / f"2024-03-{day:02d}-{n}.json.gz", recs)
            ids = {r["eventID"] for r in recs}
            all_ids |= ids
            if part == "A":
                a_ids |= ids
            if n == 0:  # CloudTrail re-delivers: the same file under another name
                write_records(root / "B" / f"redelivered-{day:02d}.json.gz", recs)
    write_records(root / "B" / "bad.json.gz", [make_record(eventTime=12)])
    return len(a_ids), len(all_ids)


def _state(lake: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{lake / '_trailscan' / 'state.db'}?mode=ro", uri=True,
                           timeout=30)


def _pending(lake: Path) -> int:
    try:
        with _state(lake) as db:
            return db.execute("SELECT count(*) FROM pending").fetchone()[0]
    except sqlite3.Error:
        return 0


def _check_consistent(lake: Path, allowed: set[int]) -> int:
    """What a reader sees: a committed count, every listed file whole and readable."""
    count = scalar(lake, "SELECT count(*) FROM cloudtrail")
    assert count in allowed, (count, allowed)
    assert scalar(lake, "SELECT count(DISTINCT eventID) FROM cloudtrail") == count
    return count


def _check_manifest(lake: Path, expected: int) -> None:
    with _state(lake) as db:
        files = dict(db.execute("SELECT path, rows FROM files").fetchall())
        written = db.execute("SELECT sum(written) FROM objects").fetchone()[0]
        pending = db.execute("SELECT count(*) FROM pending").fetchone()[0]
    on_disk = {str(p.relative_to(lake)) for p in (lake / "events").rglob("*") if p.is_file()}
    assert on_disk == set(files)  # no orphan (partial or uncommitted) file, none missing
    for path, rows in files.items():
        assert pq.ParquetFile(lake / path).metadata.num_rows == rows
    assert sum(files.values()) == expected == written
    assert pending == 0
    assert list((lake / "_staging").iterdir()) == []


def _ingest_cmd(src: Path, lake: Path, workers: int, slow_commit: bool = False) -> list[str]:
    start = ["-c", _SLOW_COMMIT] if slow_commit else ["-m", "trailscan.cli"]
    return [sys.executable, *start, "ingest", str(src), "--lake", str(lake),
            "--workers", str(workers), "--json"]


@pytest.mark.slow
def test_sigkill_at_random_points_then_rerun(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    in_a, total = _trail(trail)
    rng = random.Random(SEED)

    # How long an uninterrupted run takes here (start-up included), to spread the kills over it.
    reference = tmp_path / "reference"
    ingest_lib([trail / "A"], reference)
    started = time.perf_counter()
    subprocess.run(_ingest_cmd(trail, reference, 1), check=True, capture_output=True)
    duration = time.perf_counter() - started
    _check_manifest(reference, total)

    killed_in_commit = killed = 0
    for trial in range(TRIALS):
        lake = tmp_path / f"lake-{trial}"
        ingest_lib([trail / "A"], lake)
        workers = 1 + trial % 2
        in_commit = trial % 4 == 3  # wait for the commit's pending renames, then kill
        delay = rng.uniform(0.05, duration * 1.1)
        extra = rng.uniform(0, 0.3)  # how far into the renames
        proc = subprocess.Popen(_ingest_cmd(trail, lake, workers, in_commit),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            deadline = time.perf_counter() + (duration * 5 if in_commit else delay)
            while time.perf_counter() < deadline and proc.poll() is None:
                if in_commit and _pending(lake):
                    time.sleep(extra)
                    break
                time.sleep(0.005)
            if proc.poll() is None:
                killed_in_commit += bool(_pending(lake))
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
            proc.wait(timeout=60)
        finally:  # parser workers orphaned by the kill (ours only: our own session)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        # Before any recovery, a reader sees the lake before the run or after it, whole.
        _check_consistent(lake, {in_a, total})
        rerun = ingest_lib([trail], lake)  # in-process: the invariant is checked too
        assert rerun["files_quarantined"] <= 1  # bad.json.gz, unless the killed run committed
        assert _check_consistent(lake, {total}) == total, trial
        _check_manifest(lake, total)
    print(f"{TRIALS} trials: {killed} runs killed, {killed_in_commit} of them mid-commit")
    assert killed >= TRIALS // 2  # most trials really interrupted a run
    assert killed_in_commit >= 1  # and some of them in the middle of a commit


def _workers_of(pid: int) -> list[int]:
    """The parser worker processes (multiprocessing spawn children) of `pid`."""
    out = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.append(child)
    return out


def test_a_killed_worker_fails_the_run_instead_of_hanging(tmp_path: Path) -> None:
    src, lake = tmp_path / "src", tmp_path / "lake"
    ids = set()
    for i in range(120):
        recs = [make_record(eventTime=f"2024-03-{1 + i % 5:02d}T10:00:00Z") for _ in range(100)]
        ids |= {r["eventID"] for r in recs}
        write_records(src / f"f{i:03d}.json.gz", recs)
    proc = subprocess.Popen(_ingest_cmd(src, lake, 2), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.perf_counter() + 60
        workers: list[int] = []
        while not workers and time.perf_counter() < deadline and proc.poll() is None:
            workers = _workers_of(proc.pid)
            time.sleep(0.01)
        assert workers, "no parser worker seen"
        time.sleep(0.3)
        os.kill(workers[0], signal.SIGKILL)  # as the OOM killer would
        _, err = proc.communicate(timeout=60)  # fails the run instead of hanging
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:  # the run finished before the kill landed: nothing to prove
        pytest.skip("the run finished before the worker was killed")
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip().startswith("Error: ingest worker") and "died" in err
    _check_consistent(lake, {0})
    rerun = ingest_lib([src], lake)
    assert rerun["events_written"] == len(ids)
    _check_manifest(lake, len(ids))
