"""Detection benchmark: the whole bundled pack over a lake vs one DuckDB scan of the raw files.

    python tests/benchmarks/bench_detect.py [--events 1000000] [--workdir /tmp/trailscan-bench]
    python tests/benchmarks/bench_detect.py --behaviour [--events 1000000]

Reuses (or makes) the trail and lake of bench_ingest.py, then in the same run times
`run_rules(all rules)` and one full DuckDB scan of the same events as raw `.json.gz`
(`read_json` -> `unnest(Records)` -> count). Target: the pack in less than 3 raw scans.

`--behaviour` uses instead a benign-only 14-day trail of synth_behaviour (synth's background
plus persona routines, no planted anomaly), also times the behavioural rules alone, and prints
the false positives: findings at medium or above per 100,000 events (target: at most 1).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

RAW_SCAN = ("SELECT count(*) FROM (SELECT unnest(Records) FROM "
            "read_json(?, maximum_object_size = 268435456))")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    parser.add_argument("--behaviour", action="store_true",
                        help="a benign 14-day behaviour trail; print false positives")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import duckdb
    from common import cached_bench_trail

    from trailscan.detections import SEVERITIES, load_rules, run_rules

    work = Path(args.workdir)
    if args.behaviour:
        trail = cached_behaviour_trail(work, args.events)
        lake = work / f"lake-behaviour-{args.events}"
    else:
        trail, _ = cached_bench_trail(work, args.events)
        lake = work / f"lake-detect-{args.events}"
    if not (lake / "_trailscan" / "state.db").exists():
        subprocess.run([sys.executable, "-m", "trailscan.cli", "ingest", str(trail), "--lake",
                        str(lake), "--json"], check=True, stdout=subprocess.DEVNULL)
    rules = load_rules()

    behaviour = [r for r in rules if "behaviour" in r.tags]
    best_pack = best_raw = best_behaviour = float("inf")
    findings: list[dict] = []
    events = 0
    for _ in range(args.rounds):  # alternate, keep the minimum of each
        started = time.perf_counter()
        findings = run_rules(lake, rules).to_pylist()
        best_pack = min(best_pack, time.perf_counter() - started)
        started = time.perf_counter()
        run_rules(lake, behaviour)
        best_behaviour = min(best_behaviour, time.perf_counter() - started)
        started = time.perf_counter()
        events = duckdb.connect().execute(RAW_SCAN, [str(trail / "**" / "*.json.gz")]).fetchone()[0]
        best_raw = min(best_raw, time.perf_counter() - started)
    print(f"lake: {events} events; {len(rules)} rules ({len(behaviour)} behavioural) -> "
          f"{len(findings)} findings")
    print(f"detect (whole pack): {best_pack:.2f}s, {events / best_pack:,.0f} events/s")
    print(f"behavioural rules alone: {best_behaviour:.2f}s")
    print(f"one raw DuckDB scan of the .json.gz: {best_raw:.2f}s")
    print(f"pack / raw scan: {best_pack / best_raw:.2f} (target < 3)")
    loud = [f for f in findings if SEVERITIES.index(f["severity"]) >= SEVERITIES.index("medium")]
    mine = {r.id for r in behaviour}
    for label, subset in (("all rules", loud), ("behavioural rules",
                                                [f for f in loud if f["rule_id"] in mine])):
        print(f"findings at medium+ ({label}): {len(subset)} = "
              f"{len(subset) * 100_000 / max(events, 1):.2f} per 100,000 events"
              + (" (target <= 1 on a benign trail)" if args.behaviour else ""))
    for rule_id, n in Counter(f["rule_id"] for f in loud).most_common(10):
        print(f"  {rule_id}: {n}")


def cached_behaviour_trail(work: Path, events: int) -> Path:
    """The benign-only 14-day behaviour trail of about `events` events (made on first use)."""
    from trailscan.synth_behaviour import write_behaviour_trail

    trail = work / f"behaviour-trail-{events}"
    if not (trail / ".complete").exists():
        started = time.perf_counter()
        summary, _ = write_behaviour_trail(trail, background_events=events, anomalies=False)
        (trail / ".complete").write_text(str(summary.events))
        print(f"generated {summary.events} events in {summary.log_files} files "
              f"({time.perf_counter() - started:.1f}s)")
    return trail


if __name__ == "__main__":
    main()
