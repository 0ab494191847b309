"""Shared by the benchmark scripts: one generated trail per size, made once and reused."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any


def cached_bench_trail(work: Path, events: int, per_file: int = 250) -> tuple[Path, dict[str, Any]]:
    """The trail of `events` generated events under `work` (generated on first use)."""
    from trailscan.synth import write_bench_trail

    trail = work / f"trail-{events}-{per_file}"
    if not (trail / ".complete").exists():
        shutil.rmtree(trail, ignore_errors=True)
        started = time.perf_counter()
        summary = write_bench_trail(trail, events, events_per_file=per_file)
        (trail / ".complete").write_text(json.dumps({"events": summary.events,
                                                     "files": summary.log_files}))
        print(f"generated {summary.events} events in {summary.log_files} files "
              f"({time.perf_counter() - started:.1f}s)")
    return trail, json.loads((trail / ".complete").read_text())
