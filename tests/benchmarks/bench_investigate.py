"""Investigation, Athena-SQL and report benchmark on the lake of bench_detect.py.

    python tests/benchmarks/bench_investigate.py [--events 1000000] [--workdir /tmp/trailscan-bench]

Times, best of 3: `investigate` for the busiest IAM user (followed forward to its sessions), for
one assumed-role session (traced back), and for the busiest source IP; one Athena-dialect query
(translation + run) against the same query in DuckDB SQL; and `build_report`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best(func: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    args = parser.parse_args()

    from common import cached_bench_trail

    import trailscan
    from trailscan.investigate import investigate
    from trailscan.query import run_query
    from trailscan.report import build_report

    work = Path(args.workdir)
    trail, _ = cached_bench_trail(work, args.events)
    lake = work / f"lake-detect-{args.events}"
    if not (lake / "_trailscan" / "state.db").exists():
        subprocess.run([sys.executable, "-m", "trailscan.cli", "ingest", str(trail), "--lake",
                        str(lake), "--json"], check=True, stdout=subprocess.DEVNULL)
    con = trailscan.open_lake(str(lake))
    events = con.execute("SELECT count(*) FROM cloudtrail").fetchall()[0][0]
    user = con.execute("SELECT userIdentity.arn FROM cloudtrail WHERE userIdentity.type = "
                       "'IAMUser' GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    session = con.execute("SELECT userIdentity.arn FROM cloudtrail WHERE userIdentity.type = "
                          "'AssumedRole' AND userIdentity.invokedBy IS NULL GROUP BY 1 "
                          "ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    ip = con.execute("SELECT sourceIPAddress FROM cloudtrail GROUP BY 1 ORDER BY count(*) DESC "
                     "LIMIT 1").fetchall()[0][0]
    con.close()
    print(f"lake: {events:,} events ({args.events:,} requested)")

    for label, kwargs in (("IAM user (forward)", {"principal": user}),
                          ("assumed-role session (back)", {"principal": session}),
                          ("source IP", {"ip": ip})):
        seconds, inv = best(lambda kw=kwargs: investigate(lake, **kw))
        print(f"investigate {label}: {seconds:.2f}s - {inv.timeline.height:,} timeline events, "
              f"{inv.sessions.height} sessions started, {inv.attribution.height} keys attributed")

    athena_sql = ("SELECT useridentity.arn, count(*) AS n FROM cloudtrail_logs WHERE eventtime >= "
                  "'2024-01-01T00:00:00Z' AND json_extract_scalar(requestparameters, "
                  "'$.bucketName') IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 10")
    duck_sql = ("SELECT userIdentity.arn, count(*) AS n FROM cloudtrail WHERE eventTime >= "
                "TIMESTAMPTZ '2024-01-01 00:00:00+00' AND json_extract_string(requestParameters, "
                "'$.bucketName') IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 10")
    athena_s = duck_s = float("inf")
    for _ in range(3):  # alternate, keep the minimum of each (the machine may be shared)
        athena_s = min(athena_s, best(lambda: run_query(athena_sql, lake, "athena"), 1)[0])
        duck_s = min(duck_s, best(lambda: run_query(duck_sql, lake), 1)[0])
    print(f"athena-dialect query: {athena_s:.2f}s vs the same in DuckDB SQL {duck_s:.2f}s "
          f"(ratio {athena_s / duck_s:.2f})")

    with tempfile.TemporaryDirectory() as tmp:
        seconds, path = best(lambda: build_report(lake, Path(tmp) / "report.html"))
        print(f"report: {seconds:.2f}s, {path.stat().st_size / 1024:,.0f} KiB")


if __name__ == "__main__":
    main()
