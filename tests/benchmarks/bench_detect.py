"""Detection benchmark: the whole bundled pack over a lake vs one DuckDB scan of the raw files.

    python tests/benchmarks/bench_detect.py [--events 1000000] [--workdir /tmp/trailscan-bench]

Reuses (or makes) the trail and lake of bench_ingest.py, then in the same run times
`run_rules(all rules)` and one full DuckDB scan of the same events as raw `.json.gz`
(`read_json` -> `unnest(Records)` -> count). Target: the pack in less than 3 raw scans.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

RAW_SCAN = ("SELECT count(*) FROM (SELECT unnest(Records) FROM "
            "read_json(?, maximum_object_size = 268435456))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    args = parser.parse_args()

    import duckdb
    from common import cached_bench_trail

    from trailscan.detections import load_rules, run_rules

    work = Path(args.workdir)
    trail, _ = cached_bench_trail(work, args.events)
    lake = work / f"lake-detect-{args.events}"
    if not (lake / "_trailscan" / "state.db").exists():
        subprocess.run([sys.executable, "-m", "trailscan.cli", "ingest", str(trail), "--lake",
                        str(lake), "--json"], check=True, stdout=subprocess.DEVNULL)
    rules = load_rules()

    best_pack = best_raw = float("inf")
    findings = 0
    events = 0
    for _ in range(3):  # alternate, keep the minimum of each
        started = time.perf_counter()
        findings = run_rules(lake, rules).num_rows
        best_pack = min(best_pack, time.perf_counter() - started)
        started = time.perf_counter()
        events = duckdb.connect().execute(RAW_SCAN, [str(trail / "**" / "*.json.gz")]).fetchone()[0]
        best_raw = min(best_raw, time.perf_counter() - started)
    print(f"lake: {events} events; {len(rules)} rules -> {findings} findings")
    print(f"detect (whole pack): {best_pack:.2f}s, {events / best_pack:,.0f} events/s")
    print(f"one raw DuckDB scan of the .json.gz: {best_raw:.2f}s")
    print(f"pack / raw scan: {best_pack / best_raw:.2f} (target < 3)")


if __name__ == "__main__":
    main()
