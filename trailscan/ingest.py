"""Ingest: source objects -> parsed batches (parallel workers) -> deduplicated, committed Parquet.

Workers parse files and stream rows into per-day staging Parquet files; the parent then removes
exact re-deliveries (same eventID and content, within the run and against the lake) and commits
atomically.
Nothing is lost: every record read is written, counted as a duplicate, quarantined or filtered out.
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing as mp
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import records, schema, typed
from .dedupe import dedupe
from .errors import BadInput, LakeError, NotEvents, TrailscanError
from .lake import Lake, ManifestEntry, NewFile
from .quarantine import QuarantineWriter
from .sources import (
    DIGEST,
    SIDECAR,
    Filters,
    OpenedSources,
    SourceObject,
    Unreadable,
    open_sources,
    walk_local,
)
from .staging import DaySink

Progress = Callable[[str, int, int | None], None]  # (stage, done, total)
# Files per worker task: the fast path converts a task's files together (one call per column),
# which is what makes larger tasks cheaper per event; small enough to balance the workers.
TASK_SIZE = 32
TASK_BYTES = 32 * 1024 * 1024  # ... and at most this many stored bytes, so big files go alone
BATCH_TEXT = 64 * 1024 * 1024  # uncompressed text a worker holds before converting a batch
PARALLEL_FROM = 32  # files: below this, one process (starting workers costs more than it saves)
# One item to parse: the object and its bytes when the parent fetched them (S3, event history),
# None when the worker reads the file itself, or the error that made the fetch fail.
Item = tuple[SourceObject, bytes | BaseException | None]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    return None


@dataclass
class IngestStats:
    """What a run did. Always: `events_read == events_written + events_duplicate +
    events_quarantined + events_filtered` (events_filtered is 0 without range/account filters)."""

    lake: str = ""
    run_id: str = ""
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    files_quarantined: int = 0
    files_digest: int = 0
    files_failed: int = 0  # could not be downloaded completely: not in the manifest, retried later
    events_read: int = 0
    events_written: int = 0
    events_duplicate: int = 0
    events_quarantined: int = 0
    events_filtered: int = 0
    conflicting_event_ids: int = 0
    bytes_read: int = 0
    files_compacted: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    integrity: list[dict[str, Any]] = field(default_factory=list)  # one report per source

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    """The result of reading one object (sent from a worker to the parent)."""

    uri: str
    size: int
    version: str
    kind: str
    status: str  # ingested | quarantined | digest | sidecar | failed
    reason: str | None = None
    sha256: str | None = None
    container: str | None = None
    events_read: int = 0
    kept: int = 0
    quarantined: int = 0
    filtered: int = 0


def _keep(table: pa.Table, filters: Filters) -> pa.Array | None:
    """Which rows pass the range/account/region filters (None: no filter, all pass)."""
    mask = None

    def both(m: Any, cond: Any) -> Any:
        return cond if m is None else pc.and_(m, cond)

    if filters.since:
        mask = both(mask, pc.greater_equal(table["eventTime"], pa.scalar(filters.since)))
    if filters.until:
        mask = both(mask, pc.less_equal(table["eventTime"], pa.scalar(filters.until)))
    if filters.accounts:
        account = pc.coalesce(table["recipientAccountId"],
                              pc.struct_field(table["userIdentity"], "accountId"))
        mask = both(mask, pc.is_in(account, pa.array(sorted(filters.accounts))))
    if filters.regions:
        mask = both(mask, pc.is_in(table["awsRegion"], pa.array(sorted(filters.regions))))
    return None if mask is None else pc.fill_null(mask, False)


class Worker:
    """Reads objects and streams their rows to staging; one per process."""

    def __init__(self, staging: Path, worker_id: int, limit: int, filters: Filters) -> None:
        self.sink = DaySink(staging, f"w{worker_id}")
        self.quarantine = QuarantineWriter(staging, f"w{worker_id}")
        self.limit = limit
        self.filters = filters

    def process(self, obj: SourceObject, data: bytes | None = None) -> Outcome:
        return self.process_task([(obj, data)])[0]

    def process_task(self, task: list[tuple[SourceObject, bytes | None]]) -> list[Outcome]:
        """Read a few objects. Files the fast path decodes are converted together (one call
        per column for all of them); rows reach staging in input order either way."""
        outcomes: list[Outcome] = []
        fast: list[tuple[Outcome, list[Any], bytes, bytes]] = []
        for obj, data in task:
            out = Outcome(obj.uri, obj.size, obj.version, obj.key.kind, "ingested")
            outcomes.append(out)
            loaded = self._load(out, obj, data)
            if loaded is None:
                continue
            decoded = typed.decode(loaded[1])
            if decoded is not None:
                out.container, out.events_read = "records", len(decoded)
                fast.append((out, decoded, *loaded))
                if sum(len(text) for *_, text in fast) >= BATCH_TEXT:
                    self._convert(fast)
                    fast = []
                continue
            self._convert(fast)  # keep input order: earlier files' rows go first
            fast = []
            self._general(out, *loaded)
        self._convert(fast)
        return outcomes

    def _load(self, out: Outcome, obj: SourceObject,
              data: bytes | None) -> tuple[bytes, bytes] | None:
        """The object's bytes and uncompressed text (sha256 noted), None when it is rejected."""
        if obj.size > records.largest_input(self.limit):  # never read (or copy) a huge object whole
            self._reject_file(out, None, f"file is {obj.size} bytes, larger than the "
                              f"limit of {self.limit} bytes before decompression")
            return None
        if data is None:
            try:
                data = obj.read()
            except OSError as exc:
                self._reject_file(out, None, f"cannot read: {exc.strerror or exc}")
                return None
        try:
            text, out.sha256 = records.load(data, self.limit)
        except BadInput as exc:
            self._reject_file(out, data, str(exc))
            return None
        except Exception as exc:
            self._reject_file(out, data, f"unexpected error: {type(exc).__name__}: {exc}")
            return None
        return data, text

    def _convert(self, fast: list[tuple[Outcome, list[Any], bytes, bytes]]) -> None:
        """Convert fast-path files together; if the batch needs the general path somewhere,
        narrow it down file by file."""
        if not fast:
            return
        table = records.typed_table([(decoded, out.uri) for out, decoded, _, _ in fast])
        if table is None:
            if len(fast) == 1:
                self._general(fast[0][0], fast[0][2], fast[0][3])
            else:
                for item in fast:
                    self._convert([item])
            return
        keep = _keep(table, self.filters) if self.filters.active else None
        offset = 0
        for out, decoded, _, _ in fast:
            out.kept = len(decoded)
            if keep is not None:
                out.filtered = len(decoded) - pc.sum(keep.slice(offset, len(decoded))).as_py()
                out.kept -= out.filtered
            offset += len(decoded)
        if keep is not None:
            table = table.filter(keep)
        if table.num_rows:
            self.sink.add(table)

    def _general(self, out: Outcome, data: bytes, text: bytes) -> None:
        """records.py's general path: any container, per-record reasons for the quarantine."""
        try:
            out.container, table, out.events_read, rejected = records.parse_text(text, out.uri)
        except NotEvents as exc:
            out.status = DIGEST if str(exc) == "digest" else SIDECAR  # key lists count as metadata
            out.sha256 = None
            return
        except BadInput as exc:
            self._reject_file(out, data, str(exc))
            return
        except Exception as exc:
            self._reject_file(out, data, f"unexpected error: {type(exc).__name__}: {exc}")
            return
        if table is not None and self.filters.active:
            keep = _keep(table, self.filters)
            if keep is not None:
                kept = table.filter(keep)
                out.filtered = table.num_rows - kept.num_rows
                table = kept
        if table is not None and table.num_rows:
            self.sink.add(table)
            out.kept = table.num_rows
        for bad in rejected:
            self.quarantine.record(out.uri, bad.index, bad.reason, bad.raw)
        out.quarantined = len(rejected)

    def _reject_file(self, out: Outcome, data: bytes | None, reason: str) -> None:
        out.status, out.reason, out.sha256 = "quarantined", reason, None
        self.quarantine.file(out.uri, reason, data)

    def close(self) -> list[NewFile]:
        self.quarantine.close()
        return self.sink.close()


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Parsed JSON is acyclic: the cyclic collector only rescans millions of short-lived dicts
    (about 10-15% of parse time), so it is paused while parsing and restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _worker_main(tasks: Any, results: Any, staging: str, worker_id: int, limit: int,
                 filters: Filters) -> None:
    gc.disable()  # see _no_cyclic_gc; this process only parses
    try:
        worker = Worker(Path(staging), worker_id, limit, filters)
        while (task := tasks.get()) is not None:
            for outcome in worker.process_task(task):
                results.put(outcome)
        results.put(("done", worker.close()))
    except BaseException:  # a bug, not bad input: report it instead of hanging the parent
        results.put(("error", traceback.format_exc()))


def _task_full(task: list[tuple[SourceObject, bytes | None]]) -> bool:
    return len(task) >= TASK_SIZE or sum(obj.size for obj, _ in task) >= TASK_BYTES


def _failed(obj: SourceObject, error: BaseException) -> Outcome:
    text = str(error).removeprefix(f"{obj.uri}: ")  # the uri leads the problem line already
    return Outcome(obj.uri, obj.size, obj.version, obj.key.kind, "failed",
                   reason=f"download failed: {text}")


def _run_workers(items: Iterable[Item], count: int, staging: Path, limit: int, filters: Filters,
                 workers: int, on_outcome: Callable[[Outcome], None]) -> list[NewFile]:
    """Parse `count` items; fetched bytes travel to the workers through a bounded queue, so
    downloads never run more than a few tasks ahead of parsing."""
    if workers <= 1 or count < PARALLEL_FROM:
        worker = Worker(staging, 0, limit, filters)
        with _no_cyclic_gc():
            task: list[tuple[SourceObject, bytes | None]] = []

            def flush() -> None:
                for outcome in worker.process_task(task):
                    on_outcome(outcome)
                task.clear()

            for obj, data in items:
                if isinstance(data, BaseException):
                    flush()
                    on_outcome(_failed(obj, data))
                    continue
                task.append((obj, data))
                if _task_full(task):
                    flush()
            flush()
            return worker.close()
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(maxsize=2 * workers), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(tasks, results, str(staging), i, limit,
                                                     filters), daemon=True)
             for i in range(workers)]
    for proc in procs:
        proc.start()
    stop = threading.Event()
    failed: list[Outcome] = []
    errors: list[BaseException | str] = []

    def feed() -> None:  # a thread: the main thread keeps draining results meanwhile
        try:
            task: list[tuple[SourceObject, bytes | None]] = []
            for obj, data in items:
                if stop.is_set():
                    return
                if isinstance(data, BaseException):
                    failed.append(_failed(obj, data))
                    continue
                task.append((obj, data))
                if _task_full(task):
                    tasks.put(task)
                    task = []
            if task:
                tasks.put(task)
        except BaseException as exc:
            errors.append(exc if isinstance(exc, TrailscanError) else traceback.format_exc())
        finally:
            for _ in procs:
                tasks.put(None)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    files: list[NewFile] = []
    running = len(procs)
    while running:
        try:
            message = results.get(timeout=1.0)
        except queue.Empty:  # a worker killed (e.g. by the OOM killer) never reports: notice it
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                stop.set()
                tasks.cancel_join_thread()  # nobody reads the queued tasks any more
                for proc in procs:
                    proc.terminate()
                raise LakeError(f"ingest worker {dead[0].pid} died (exit code "
                                f"{dead[0].exitcode}); nothing was committed, run again") from None
            continue
        if isinstance(message, Outcome):
            on_outcome(message)
        elif message[0] == "done":
            files.extend(message[1])
            running -= 1
        else:
            stop.set()
            for proc in procs:
                proc.terminate()
            raise LakeError(f"ingest worker failed:\n{message[1]}")
    feeder.join()
    for proc in procs:
        proc.join()
    if errors:
        if isinstance(errors[0], TrailscanError):
            raise errors[0]
        raise LakeError(f"reading sources failed:\n{errors[0]}")
    for outcome in failed:
        on_outcome(outcome)
    return files


def ingest(
    sources: Iterable[str | os.PathLike[str]],
    lake_path: str | os.PathLike[str] | None = None,
    *,
    filters: Filters | None = None,
    limit: int = records.DEFAULT_MAX_BYTES,
    workers: int | None = None,
    force: bool = False,
    progress: Progress = _no_progress,
    objects: Iterable[SourceObject | Unreadable] | None = None,
    validate: bool | None = False,
    public_keys: str | os.PathLike[str] | None = None,
    aws: Any = None,
) -> IngestStats:
    """Ingest CloudTrail objects from local paths, `s3://bucket[/prefix]` and
    `aws-event-history://<region>` sources (or given `objects`) into the lake.

    `validate`: True checks the digest chains of every source directory or bucket, None does so
    only when digest files were seen. The sha256 computed while parsing is reused: no file is read
    twice. `aws` (s3.AwsOptions) says how to reach AWS. S3 objects already in the manifest with
    the same key, size and ETag are not downloaded again.
    """
    started = time.perf_counter()
    filters = filters or Filters()
    opened = open_sources(sources, filters, aws)
    lake = Lake.open(lake_path, create=True, aws=aws)
    stats = IngestStats(lake=lake.location)
    if objects is not None:
        listing: Iterable[SourceObject | Unreadable] = objects
    else:
        listing = itertools.chain(walk_local(opened.local), _s3_objects(opened, filters))
    with lake.writer():
        run_id, staging = lake.new_run()
        stats.run_id = run_id
        known = {} if force else lake.manifest()
        parent_quarantine = QuarantineWriter(staging, "main")
        todo: list[SourceObject] = []
        for obj in listing:
            stats.files_seen += 1
            if isinstance(obj, Unreadable):
                stats.files_quarantined += 1
                stats.problems.append(f"{obj.uri}: {obj.reason}")
                parent_quarantine.file(obj.uri, obj.reason, None)
            elif obj.key.kind in (DIGEST, SIDECAR):
                stats.files_digest += 1
            elif not filters.admits_key(obj.key) or known.get(obj.uri) == (
                    obj.size, obj.version, True):
                stats.files_skipped += 1
            else:
                todo.append(obj)
        parent_quarantine.close()
        progress("read", 0, len(todo) if not opened.history else None)
        entries: list[ManifestEntry] = []

        def on_outcome(out: Outcome) -> None:
            stats.bytes_read += out.size
            if out.status in (DIGEST, SIDECAR):
                stats.files_digest += 1
            elif out.status == "failed":
                stats.files_failed += 1
                stats.problems.append(f"{out.uri}: {out.reason}")
            elif out.status == "quarantined":
                stats.files_quarantined += 1
                stats.problems.append(f"{out.uri}: {out.reason}")
            else:
                stats.files_ingested += 1
            stats.events_read += out.events_read
            stats.events_quarantined += out.quarantined
            stats.events_filtered += out.filtered
            if out.status in ("ingested", "quarantined"):  # the manifest lists event sources
                entries.append(ManifestEntry(
                    out.uri, out.size, out.version, out.sha256, out.kind, out.container,
                    out.events_read, out.kept, out.quarantined, out.status, out.reason,
                    complete=out.filtered == 0))
            progress("read", stats.files_ingested + stats.files_quarantined + stats.files_failed,
                     len(todo) if not opened.history else None)

        items = _fetched(todo, opened, filters, aws, known, force, stats, limit)
        count = len(todo) if not opened.history else 0
        files = _run_workers(items, count, staging, limit, filters,
                             workers or os.cpu_count() or 1, on_outcome)
        progress("deduplicate", 0, None)
        kept = sum(e.written for e in entries)
        try:
            result = dedupe(lake, files)
        except duckdb.Error as exc:  # e.g. a damaged data file in the lake
            first = str(exc).strip().splitlines()[0]
            raise LakeError(f"cannot read the lake's data files in {lake.location}: "
                            f"{first}") from None
        stats.events_duplicate = result.duplicates
        stats.conflicting_event_ids = result.conflicting_event_ids
        stats.events_written = kept - result.duplicates
        entries = [_less(e, result.per_source.get(e.uri, 0)) for e in entries]
        progress("commit", 0, None)
        stats.seconds = round(time.perf_counter() - started, 3)
        summary = stats.as_dict() | {"started": datetime.now(UTC).isoformat()}
        lake.commit(run_id, result.files, entries, summary, staging / "quarantine")
        stats.files_compacted = lake.compact({f.event_date for f in result.files})
        if validate or (validate is None and stats.files_digest):
            progress("validate", 0, None)
            stats.integrity = _validate_sources(lake, opened, filters, public_keys, aws)
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats


def _s3_objects(opened: OpenedSources, filters: Filters) -> Iterator[SourceObject]:
    from .s3 import source_objects

    for _, listing in opened.s3:
        yield from source_objects(listing, filters)


def _fetched(todo: list[SourceObject], opened: OpenedSources, filters: Filters, aws: Any,
             known: dict[str, tuple[int, str, bool]], force: bool,
             stats: IngestStats, limit: int = records.DEFAULT_MAX_BYTES) -> Iterator[Item]:
    """Local files as (object, None) for the workers to read; S3 objects downloaded ahead on a
    thread pool; event-history pages fetched one at a time. An S3 object whose listed size is
    already over the limit is never downloaded: the worker quarantines it by its size."""
    too_big = records.largest_input(limit)
    remote = [o for o in todo if o.path is None and o.uri.startswith("s3://")
              and o.size <= too_big]
    local = [o for o in todo if not (o.path is None and o.uri.startswith("s3://"))
             or o.size > too_big]
    for obj in local:
        yield obj, None
    if remote:
        from .s3 import AwsOptions, Downloader

        yield from Downloader(aws or AwsOptions()).stream(remote)
    for region in opened.history:
        from .event_history import pages

        for obj, data in pages(region, filters, aws):
            stats.files_seen += 1
            if not force and known.get(obj.uri) == (obj.size, obj.version, True):
                stats.files_skipped += 1
                continue
            yield obj, data


def _validate_sources(lake: Lake, opened: OpenedSources, filters: Filters,
                      public_keys: str | os.PathLike[str] | None,
                      aws: Any) -> list[dict[str, Any]]:
    from .validation import record, validate_listing, validate_source

    hashes = {e["uri"]: e["sha256"] for e in lake.manifest_entries() if e["sha256"]}
    reports = []
    for source in opened.local:
        if not source.is_dir():
            continue
        prefix = str(source).rstrip("/") + "/"
        known = {uri: digest for uri, digest in hashes.items() if uri.startswith(prefix)}
        report = validate_source(source, public_keys=public_keys, filters=filters, lake=lake,
                                 known_hashes=known)
        record(lake, source, report)
        reports.append({"source": str(source)} | report.to_json())
    for uri, listing in opened.s3:
        prefix = f"s3://{listing.bucket}/"
        known = {u: digest for u, digest in hashes.items() if u.startswith(prefix)}
        report = validate_listing(listing, public_keys=public_keys, filters=filters, lake=lake,
                                  known_hashes=known, aws=aws)
        record(lake, uri, report, object_base=prefix)
        reports.append({"source": uri} | report.to_json())
    return reports


def _less(entry: ManifestEntry, duplicates: int) -> ManifestEntry:
    if not duplicates:
        return entry
    values = asdict(entry) | {"written": entry.written - duplicates}
    return ManifestEntry(**values)


__all__ = ["IngestStats", "Progress", "ingest", "schema"]
