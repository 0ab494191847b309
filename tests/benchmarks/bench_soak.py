"""Scale soak: ingest and detect over 10,000,000 generated events with bounded memory.

    python tests/benchmarks/bench_soak.py [--events 10000000] [--workdir /tmp/trailscan-bench]
                                          [--limit-mib 2048]

Runs the real CLI (`trailscan ingest`, then `trailscan detect` with the whole pack) as child
processes, samples the resident memory of each whole process tree (parent + parser workers) from
/proc every 50 ms, and also reports getrusage(RUSAGE_CHILDREN) max RSS (the largest single
process). Prints the figures and exits 1 when the peak tree RSS goes over `--limit-mib`.
The trail is generated once and cached (tests/benchmarks/common.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

from bench_ingest import _tree_rss


def measure(cmd: list[str], label: str, every: float = 30.0) -> tuple[float, int, str]:
    """Wall seconds, peak tree RSS, stdout; prints the RSS trend every `every` seconds."""
    import subprocess
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, done = 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        last = start
        while not done.is_set():
            rss = _tree_rss(proc.pid)
            peak = max(peak, rss)
            now = time.perf_counter()
            if now - last >= every:
                print(f"  {label} t={now - start:6.0f}s tree RSS {rss / 2**20:6,.0f} MiB "
                      f"(peak so far {peak / 2**20:,.0f} MiB)", flush=True)
                last = now
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({proc.returncode}):\n{err[-2000:]}")
    return elapsed, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    parser.add_argument("--limit-mib", type=int, default=2048)
    parser.add_argument("--keep-lake", action="store_true", help="do not delete the lake after")
    args = parser.parse_args()

    from common import cached_bench_trail

    work = Path(args.workdir)
    trail, info = cached_bench_trail(work, args.events)
    events = info["events"]
    print(f"trail: {events:,} events in {info['files']:,} files")
    lake = work / f"lake-soak-{args.events}"
    shutil.rmtree(lake, ignore_errors=True)
    cli = [sys.executable, "-m", "trailscan.cli"]

    secs, rss, out = measure([*cli, "ingest", str(trail), "--lake", str(lake), "--json"],
                             "ingest")
    stats = json.loads(out)
    accounted = (stats["events_written"] + stats["events_duplicate"]
                 + stats["events_quarantined"] + stats["events_filtered"])
    assert stats["events_read"] == accounted == events, stats
    lake_bytes = sum(p.stat().st_size for p in (lake / "events").rglob("*.parquet"))
    print(f"ingest: {secs:.1f}s, {events / secs:,.0f} events/s, peak tree RSS "
          f"{rss / 2**20:,.0f} MiB; {stats['events_written']:,} written; lake "
          f"{lake_bytes / 1e6:,.0f} MB")
    peaks = [rss]

    started = time.perf_counter()
    secs, rss, out = measure([*cli, "detect", "--lake", str(lake), "--format", "json"],
                             "detect")
    findings = json.loads(out)
    print(f"detect (whole pack): {time.perf_counter() - started:.1f}s, "
          f"{events / secs:,.0f} events/s, peak tree RSS {rss / 2**20:,.0f} MiB, "
          f"{len(findings)} findings")
    peaks.append(rss)

    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"largest single child process (getrusage RUSAGE_CHILDREN): {largest:,.0f} MiB")
    peak = max(peaks) / 2**20
    print(f"peak tree RSS over the soak: {peak:,.0f} MiB (limit {args.limit_mib:,} MiB): "
          f"{'OK' if peak < args.limit_mib else 'OVER THE LIMIT'}")
    if not args.keep_lake:
        shutil.rmtree(lake, ignore_errors=True)
    if peak >= args.limit_mib:
        sys.exit(1)


if __name__ == "__main__":
    main()
