"""S3 benchmark: ingest from a local S3 endpoint vs from the same files on disk, same run.

    python tests/benchmarks/bench_s3.py [--events 200000] [--repeat 3] [--workers 2]

Starts moto's S3 server (`moto_server`) as its own process on a free loopback port, uploads a
generated trail once, then alternates `trailscan ingest DIR` and `trailscan ingest s3://bucket
--endpoint-url ...` into fresh lakes (separate processes; wall time and peak RSS of each process
tree). Prints both, the ratio (S3 seconds / disk seconds), and listing throughput (objects/s
for the whole trail, and the request count for one day).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from bench_ingest import measure  # noqa: E402
from common import cached_bench_trail  # noqa: E402
from s3_helpers import free_port, s3_client, upload_tree  # noqa: E402


def wait_for(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/trailscan-bench"))
    parser.add_argument("--year-per-day", type=int, default=6,
                        help="objects per day, account and region in the year-long listing "
                             "bucket (2 accounts x 2 regions x 366 days; 0: skip)")
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    trail, info = cached_bench_trail(args.workdir, args.events)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(url)
        client = s3_client(url)
        client.create_bucket(Bucket="bench-trail")
        started = time.perf_counter()
        uploaded = upload_tree(client, "bench-trail", trail)
        print(f"uploaded {uploaded} objects in {time.perf_counter() - started:.1f}s")
        run(args, trail, info, url, server.pid)
        if args.year_per_day:
            year_listing(url, args.year_per_day, args.repeat)
    finally:
        server.terminate()
        server.wait()


def run(args: argparse.Namespace, trail: Path, info: dict, url: str, server_pid: int) -> None:
    from trailscan.s3 import AwsOptions, list_trail
    from trailscan.sources import Filters, parse_time

    exe = str(Path(sys.executable).parent / "trailscan")
    lakes = args.workdir / "s3-lakes"
    disk, s3 = [], []
    cpus: dict[str, list[float]] = {}
    for i in range(args.repeat):
        for label, source, extra, out in (("disk", str(trail), [], disk),
                                          ("s3", "s3://bench-trail", ["--endpoint-url", url], s3)):
            shutil.rmtree(lakes, ignore_errors=True)
            before = cpu_seconds(server_pid)
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, rss, _ = measure([exe, "ingest", source, "--lake", str(lakes / label),
                                       "--workers", str(args.workers), "--json", *extra])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
            out.append((seconds, rss))
            cpus.setdefault(label, []).append(cpu)
            served = cpu_seconds(server_pid) - before
            print(f"run {i + 1} {label:4}: {seconds:6.2f}s  {info['events'] / seconds:9,.0f} "
                  f"events/s  {cpu:5.1f} CPU s  peak RSS {rss / 2**20:6.0f} MiB"
                  + (f"  (+ S3 server {served:.1f} CPU s)" if label == "s3" else ""))
    d = sorted(s for s, _ in disk)[len(disk) // 2]
    s = sorted(t for t, _ in s3)[len(s3) // 2]
    print(f"\nmedian: disk {d:.2f}s, S3 {s:.2f}s -> ratio S3/disk {s / d:.2f} "
          f"({info['events']} events, {info['files']} log files)")
    print(f"median CPU s (ingest process tree): disk {sorted(cpus['disk'])[args.repeat // 2]:.1f}"
          f", S3 {sorted(cpus['s3'])[args.repeat // 2]:.1f}")
    print(f"peak RSS: disk {max(r for _, r in disk) / 2**20:.0f} MiB, "
          f"S3 {max(r for _, r in s3) / 2**20:.0f} MiB")

    aws = AwsOptions(endpoint_url=url)
    best, calls = float("inf"), 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        listing = list_trail(aws, "s3://bench-trail")
        best = min(best, time.perf_counter() - started)
        calls = listing.calls
    print(f"listing the whole trail: {len(listing.objects)} objects in {best:.2f}s "
          f"({len(listing.objects) / best:,.0f} objects/s, {calls} ListObjectsV2 calls)")
    day = Filters(since=parse_time("2026-03-02"), until=parse_time("2026-03-02", end=True))
    started = time.perf_counter()
    one = list_trail(aws, "s3://bench-trail", day)
    print(f"listing one day: {len(one.objects)} objects, {one.calls} calls, "
          f"{time.perf_counter() - started:.2f}s")


def year_listing(url: str, per_day: int, repeat: int) -> None:
    """A year of tiny objects: the whole bucket vs one day, by prefix arithmetic."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date, timedelta

    from trailscan.s3 import AwsOptions, list_trail
    from trailscan.sources import Filters, parse_time

    client = s3_client(url)
    client.create_bucket(Bucket="bench-year")
    keys = [f"AWSLogs/o-abcd1234/{acct}/CloudTrail/{region}/{d:%Y/%m/%d}/{acct}_CloudTrail_"
            f"{region}_{d:%Y%m%d}T{n:02d}05Z_x.json.gz"
            for d in (date(2024, 1, 1) + timedelta(days=i) for i in range(366))
            for acct in ("111122223333", "444455556666") for region in ("us-east-1", "eu-west-1")
            for n in range(per_day)]
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket="bench-year", Key=k, Body=b"x"), keys))
    print(f"\nyear bucket: {len(keys)} objects uploaded in {time.perf_counter() - started:.1f}s")
    aws = AwsOptions(endpoint_url=url)
    day = Filters(since=parse_time("2024-06-10"), until=parse_time("2024-06-10", end=True))
    for label, filters in (("whole bucket", Filters()), ("one day", day)):
        best, listing = float("inf"), None
        for _ in range(repeat):
            started = time.perf_counter()
            listing = list_trail(aws, "s3://bench-year", filters)
            best = min(best, time.perf_counter() - started)
        assert listing is not None
        print(f"listing {label}: {len(listing.objects)} objects, {listing.calls} ListObjectsV2 "
              f"calls, {best:.2f}s ({len(listing.objects) / best:,.0f} objects/s)")


if __name__ == "__main__":
    main()
