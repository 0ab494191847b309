"""Validate benchmark: trailscan integrity.validate vs read + gunzip + sha256 of the same files.

    python tests/benchmarks/bench_validate.py [--events 200000] [--workdir /tmp/trailscan-bench]

Generates a signed trail with hourly digests once (deterministic, reused across runs), writes its
public-keys.json, then times in-process, alternating, 3 rounds each (the minimum is reported):
  - validate: `integrity.validate(LocalStore(trail), KeyRing(load_public_keys_file(...)))`;
  - baseline: list the tree, then read + gunzip + sha256 every log and digest file, nothing else,
    on a thread pool of the same size and batching as validate's log-file hashing.
Both run with validate's default worker count and with workers=1. The ratio validate/baseline is
what validation costs beyond the unavoidable I/O, inflate and hash work (target <= 1.3).
validate's digests/s and log files/s are each that count over the whole validate run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROUNDS = 3
TARGET = 1.3


def generate(trail: Path, events: int, per_file: int) -> dict:
    """A bench-like trail (write_bench_trail's spec) with digests signed by the public test key.

    write_bench_trail cannot sign, so its spec is rebuilt here and passed to write_trail."""
    from trailscan import synth

    accounts, regions = ("111122223333", "444455556666"), ("us-east-1", "eu-west-1", "us-west-2")
    windows = events / (len(accounts) * len(regions) * per_file * 0.8)
    spec = synth.TrailSpec(seed=11, days=max(windows * synth.WINDOW / 86400, 1 / 288),
                           accounts=accounts, regions=regions, events=events,
                           events_per_file=per_file, attacks=False, duplicates=False,
                           insights=False, digests=True, diurnal=False)
    key = synth.derive_test_key(7)
    summary = synth.write_trail(spec, trail, signing_key=key)
    end = spec.start + timedelta(days=spec.days)
    doc = synth.public_keys_document(key, spec.start - timedelta(days=1), end + timedelta(days=30))
    (trail / "public-keys.json").write_text(json.dumps(doc, indent=4) + "\n")
    return {"events": summary.events, "log_files": summary.log_files,
            "digest_files": summary.digest_files}


def trail_files(root: Path) -> list[str]:
    """Every log and digest file (`*.json.gz`; sidecars and public-keys.json are not)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, n) for n in sorted(filenames) if n.endswith(".json.gz")]
    return found


def baseline(root: Path, workers: int) -> tuple[int, int]:
    """List, then read + gunzip + sha256 every file once; (files, uncompressed bytes)."""
    from trailscan.integrity import BATCH

    def work(batch: list[str]) -> list[tuple[str, int]]:
        out = []
        for path in batch:
            with open(path, "rb") as handle:
                text = zlib.decompress(handle.read(), 31)
            out.append((hashlib.sha256(text).hexdigest(), len(text)))
        return out

    paths = trail_files(root)
    batches = [paths[i:i + BATCH] for i in range(0, len(paths), BATCH)]
    if workers > 1 and len(batches) > 1:
        with ThreadPoolExecutor(workers) as pool:
            hashed = [r for batch in pool.map(work, batches) for r in batch]
    else:
        hashed = work(paths)
    return len(hashed), sum(size for _, size in hashed)


def run_validate(root: Path, keys_file: Path, workers: int, info: dict) -> int:
    """One validation from scratch (keys loaded, store opened); asserts a clean, full report."""
    from trailscan.integrity import LocalStore, validate
    from trailscan.keys import KeyRing, load_public_keys_file

    report = validate(LocalStore(root), KeyRing(load_public_keys_file(keys_file)), workers=workers)
    assert report.valid, report.to_json()
    digests, logs = report.digest_counts, report.log_file_counts
    assert digests["valid"] == len(report.digests) == info["digest_files"], digests
    assert logs["valid"] == len(report.log_files) == info["log_files"], logs
    return len(report.digests) + len(report.log_files)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-file", type=int, default=250)
    parser.add_argument("--workdir", default="/tmp/trailscan-bench")
    args = parser.parse_args()

    work = Path(args.workdir)
    trail = work / f"signed-trail-{args.events}-{args.per_file}"
    if not (trail / ".complete").exists():
        shutil.rmtree(trail, ignore_errors=True)
        started = time.perf_counter()
        info = generate(trail, args.events, args.per_file)
        (trail / ".complete").write_text(json.dumps(info))
        print(f"generated {info['events']} events in {info['log_files']} log files and "
              f"{info['digest_files']} signed digests ({time.perf_counter() - started:.1f}s)")
    info = json.loads((trail / ".complete").read_text())
    keys_file = trail / "public-keys.json"
    paths = trail_files(trail)
    files = info["log_files"] + info["digest_files"]
    assert len(paths) == files, (len(paths), files)
    size = sum(os.path.getsize(p) for p in paths)
    _, (_, raw) = timed(lambda: baseline(trail, 1))  # warms the page cache for both sides
    print(f"trail: {info['events']} events, {files} files ({info['log_files']} log files, "
          f"{info['digest_files']} digests), {size / 1e6:.1f} MB gzipped, "
          f"{raw / 1e6:.1f} MB uncompressed")

    default_workers = min(8, os.cpu_count() or 1)  # integrity.validate's default
    for workers in dict.fromkeys((default_workers, 1)):
        best = {"validate": float("inf"), "baseline": float("inf")}
        for _ in range(ROUNDS):  # alternate so drift and background load hit both sides
            secs, checked = timed(lambda w=workers: run_validate(trail, keys_file, w, info))
            assert checked == files, (checked, files)
            best["validate"] = min(best["validate"], secs)
            secs, (hashed, _) = timed(lambda w=workers: baseline(trail, w))
            assert hashed == files, (hashed, files)
            best["baseline"] = min(best["baseline"], secs)
        v, b = best["validate"], best["baseline"]
        ratio = v / b
        print(f"workers={workers}: validate {v:.3f}s, baseline read+gunzip+sha256 {b:.3f}s, "
              f"ratio validate/baseline {ratio:.2f} "
              f"({'within' if ratio <= TARGET else 'ABOVE'} target {TARGET})")
        print(f"  validate: {info['digest_files'] / v:,.0f} digests/s, "
              f"{info['log_files'] / v:,.0f} log files/s, {size / 1e6 / v:.1f} MB/s gzipped; "
              f"baseline: {files / b:,.0f} files/s, {size / 1e6 / b:.1f} MB/s gzipped "
              f"(min of {ROUNDS})")


if __name__ == "__main__":
    main()
