"""Ingest benchmark: trailscan ingest vs DuckDB's own read_json -> unnest -> COPY, same files.

    python tests/benchmarks/bench_ingest.py [--events 1000000] [--workdir /tmp/trailscan-bench]

Generates the trail once (deterministic, reused across runs), then times both pipelines as separate
processes and samples the resident memory of each process tree. Prints events/s, peak RSS and
the ratio (DuckDB seconds / trailscan seconds: > 1.0 means trailscan is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

DUCKDB_SCRIPT = """
import duckdb, sys
con = duckdb.connect()
con.execute(f"SET temp_directory = '{sys.argv[3]}'")
con.execute(
    "COPY (SELECT unnest(Records, max_depth := 2) FROM "
    "read_json(?, maximum_object_size = 268435456))"
    f" TO '{sys.argv[2]}' (FORMAT parquet, COMPRESSION zstd)", [sys.argv[1]])
"""


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(children.get(current, []))
    return total


def measure(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak tree RSS in bytes, stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({proc.returncode}):\n{err[-2000:]}")
    return elapsed, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--per-file", type=int, default=250)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    parser.add_argument("--skip-duckdb", action="store_true")
    args = parser.parse_args()

    from common import cached_bench_trail

    work = Path(args.workdir)
    trail, info = cached_bench_trail(work, args.events, args.per_file)
    events = info["events"]
    size = sum(p.stat().st_size for p in trail.rglob("*.json.gz"))
    print(f"trail: {events} events, {info['files']} files, {size / 1e6:.0f} MB gzipped")

    lake = work / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    ts_secs, ts_rss, out = measure([sys.executable, "-m", "trailscan.cli", "ingest", str(trail),
                                    "--lake", str(lake), "--json"])
    stats = json.loads(out)
    assert stats["events_written"] == events, stats
    print(f"trailscan ingest: {ts_secs:.1f}s, {events / ts_secs:,.0f} events/s, "
          f"peak RSS {ts_rss / 2**20:.0f} MiB (sha256 of every file computed in the same pass)")
    if args.skip_duckdb:
        return
    out_file = work / "duckdb.parquet"
    glob = str(trail / "**" / "*.json.gz")
    db_secs, db_rss, _ = measure([sys.executable, "-c", DUCKDB_SCRIPT, glob, str(out_file),
                                  str(work / "duckdb-tmp")])
    out_file.unlink(missing_ok=True)
    print(f"duckdb read_json->unnest->COPY: {db_secs:.1f}s, {events / db_secs:,.0f} events/s, "
          f"peak RSS {db_rss / 2**20:.0f} MiB")
    print(f"ratio (duckdb time / trailscan time): {db_secs / ts_secs:.2f}")


if __name__ == "__main__":
    main()
