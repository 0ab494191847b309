"""The lake on disk: hive-partitioned Parquet, manifest, atomic commits, compaction, DuckDB views.

Layout (any Parquet engine can read `events/` without trailscan):

    <lake>/events/event_date=YYYY-MM-DD/part-<run>-<n>.parquet
    <lake>/quarantine/<run>/quarantine.ndjson   (+ files/ with copies of rejected files)
    <lake>/_trailscan/state.db         (SQLite: manifest of source objects, data files, runs)
    <lake>/_staging/<run>/...                   (invisible until committed)

Commit protocol: data is written under `_staging`, then one SQLite transaction records the
manifest rows, the data files and the pending renames; renames follow. A run killed before the
transaction leaves only staging files (deleted on the next open); killed after it, the renames are
finished on the next open.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .errors import LakeError, NoLake, UsageError

T = TypeVar("T")
DEFAULT_LAKE = "trailscan-lake"
MEMORY_ENV = "TRAILSCAN_MEMORY_LIMIT"
DEFAULT_MEMORY = "1GB"  # per DuckDB connection; see bound_memory()
LAKE_ENV = "TRAILSCAN_LAKE"
COMPACT_AFTER = 4  # files per day partition before compaction merges them
# Dictionary-encode only columns with few distinct values: faster writes, smaller files.
_DICTIONARY_COLUMNS = [
    "eventVersion", "eventSource", "eventName", "awsRegion", "sourceIPAddress", "userAgent",
    "errorCode", "eventType", "apiVersion", "recipientAccountId", "eventCategory",
    "sessionCredentialFromConsole", "vpcEndpointId", "vpcEndpointAccountId",
    "tlsDetails.tlsVersion", "tlsDetails.cipherSuite", "tlsDetails.clientProvidedHostHeader",
    "userIdentity.type", "userIdentity.principalId", "userIdentity.arn", "userIdentity.accountId",
    "userIdentity.userName", "userIdentity.invokedBy", "userIdentity.accessKeyId",
    "userIdentity.sessionContext.sessionIssuer.arn", "source_object", "integrity_status",
    "covering_digest",
]
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1,
                                   "use_dictionary": _DICTIONARY_COLUMNS, "write_statistics": True}

_DDL = """
CREATE TABLE IF NOT EXISTS objects (
    uri TEXT PRIMARY KEY, size INTEGER, version TEXT, sha256 TEXT, kind TEXT, container TEXT,
    events INTEGER, written INTEGER, quarantined INTEGER, status TEXT, reason TEXT,
    complete INTEGER, run_id TEXT);
CREATE INDEX IF NOT EXISTS objects_sha256 ON objects(sha256);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, event_date TEXT, rows INTEGER,
    run_id TEXT);
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started TEXT, finished TEXT,
    stats TEXT);
CREATE TABLE IF NOT EXISTS pending (run_id TEXT, op TEXT, src TEXT, dst TEXT);
CREATE TABLE IF NOT EXISTS integrity_files (object TEXT PRIMARY KEY, status TEXT,
    file_status TEXT, covering_digest TEXT, sha256 TEXT, detail TEXT, validated_at TEXT);
CREATE TABLE IF NOT EXISTS integrity_problems (root TEXT, kind TEXT, object TEXT, account TEXT,
    region TEXT, detail TEXT, validated_at TEXT);
"""
_INTEGRITY_COLUMNS = ("object", "status", "file_status", "covering_digest", "sha256", "detail",
                      "validated_at")
_PROBLEM_COLUMNS = ("root", "kind", "object", "account", "region", "detail", "validated_at")


@dataclass(frozen=True)
class ManifestEntry:
    """One source object as recorded in the manifest."""

    uri: str
    size: int
    version: str
    sha256: str | None
    kind: str
    container: str | None
    events: int
    written: int
    quarantined: int
    status: str  # ingested | quarantined
    reason: str | None
    complete: bool  # False when filters left records out: a later run reads it again


@dataclass(frozen=True)
class NewFile:
    """A data file written to staging by this run, bound for a day partition."""

    staging: Path
    event_date: str
    rows: int


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """--lake, else $TRAILSCAN_LAKE, else ./trailscan-lake."""
    return Path(path or os.environ.get(LAKE_ENV) or DEFAULT_LAKE)


class Lake:
    """A lake directory. Writers hold an exclusive lock; readers never need one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.events = root / "events"
        self.quarantine = root / "quarantine"
        self.meta = root / "_trailscan"
        self.staging = root / "_staging"

    @property
    def location(self) -> str:
        """Where the lake is, as users name it (a directory here, `s3://...` for S3Lake)."""
        return str(self.root)

    @property
    def state_file(self) -> Path:
        return self.meta / "state.db"

    @classmethod
    def open(cls, path: str | os.PathLike[str] | Any = None, *, create: bool = False,
             aws: Any = None) -> Lake:
        """The lake at `path` (--lake, else $TRAILSCAN_LAKE, else ./trailscan-lake). An
        `s3://bucket/prefix` (or an S3LakeRef carrying AWS options) opens an S3Lake."""
        if str(path if path is not None else os.environ.get(LAKE_ENV) or "").startswith("s3://"):
            from .lake_s3 import S3Lake

            return S3Lake.open_uri(path if path is not None else os.environ[LAKE_ENV],
                                   create=create, aws=aws)
        root = resolve_path(path)
        lake = cls(root)
        if create:
            try:
                for directory in (lake.events, lake.quarantine, lake.meta, lake.staging):
                    directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(f"cannot use {root} as a lake: {exc.strerror or exc}") from None
            with lake._db() as db:
                db.executescript(_DDL)
        elif not lake.state_file.exists():
            raise NoLake(f"no trailscan lake at {root} (run `trailscan ingest` first)")
        else:
            with lake._db() as db:  # lakes made by older versions gain new tables
                db.executescript(_DDL)
        return lake

    # --- state database -------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            db = sqlite3.connect(self.state_file, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise LakeError(f"cannot open the lake state {self.state_file}: {exc}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        except sqlite3.DatabaseError as exc:  # not a database, corrupt, locked for over 60 s
            raise LakeError(f"lake state {self.state_file}: {exc}") from None
        finally:
            db.close()

    state = _db  # the SQLite state, for modules that keep their own tables in it

    def table(self, name: str, columns: tuple[str, ...]) -> pa.Table:
        """A state table as Arrow strings (for DuckDB views)."""
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall()
        values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        return pa.table({c: pa.array(list(v), pa.string()) for c, v in zip(columns, values,
                                                                          strict=True)})

    @contextmanager
    def writer(self) -> Iterator[Lake]:
        """Exclusive write access; finishes or rolls back whatever a killed run left behind."""
        handle = open(self.meta / "lock", "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LakeError(f"lake {self.location} is being written by another trailscan "
                                "process; try again when it has finished") from None
            with self._exclusive():
                self.recover()
                yield self
        finally:
            handle.close()

    @classmethod
    def existing(cls, path: str | os.PathLike[str] | Any = None, *, aws: Any = None) -> Lake | None:
        """The lake at `path` if there is one (validate records its verdicts there)."""
        try:
            return cls.open(path, aws=aws)
        except NoLake:
            return None

    @contextmanager
    def recording(self) -> Iterator[Lake]:
        """Around changes to the state made outside an ingest (validation verdicts): a SQLite
        transaction is enough on disk; an S3 lake needs the writer's lock and publish."""
        yield self

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Held inside the local lock around a write (S3Lake: the remote lock and publish)."""
        yield

    def recover(self) -> None:
        """Complete committed renames, then drop uncommitted staging data."""
        with self._db() as db:
            rows = db.execute("SELECT run_id, op, src, dst FROM pending").fetchall()
            for _, op, src, dst in rows:
                _apply(op, src, dst)
            db.execute("DELETE FROM pending")
        if self.staging.exists():
            for leftover in self.staging.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

    def manifest(self) -> dict[str, tuple[int, str, bool]]:
        """uri -> (size, version, complete) of every object already read."""
        with self._db() as db:
            return {uri: (size, version, bool(complete)) for uri, size, version, complete
                    in db.execute("SELECT uri, size, version, complete FROM objects")}

    def manifest_entries(self) -> list[dict[str, Any]]:
        with self._db() as db:
            cursor = db.execute("SELECT * FROM objects ORDER BY uri")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]

    def data_files(self, dates: Iterable[str] | None = None) -> list[Path]:
        with self._db() as db:
            db.execute("BEGIN")  # one read snapshot: files and pending renames agree
            if dates is None:
                rows = db.execute("SELECT path FROM files ORDER BY path").fetchall()
            else:
                wanted = sorted(set(dates))
                marks = ",".join("?" * len(wanted))
                rows = db.execute(f"SELECT path FROM files WHERE event_date IN ({marks}) "
                                  "ORDER BY path", wanted).fetchall()
            pending = dict(db.execute("SELECT dst, src FROM pending WHERE op = 'move'").fetchall())
            db.execute("COMMIT")
        out = []
        for (path,) in rows:
            final = self.root / path
            # A committed run whose renames have not finished (killed, or still running): its
            # data is still in staging, and readers see it there.
            if not final.exists() and str(final) in pending:
                final = Path(pending[str(final)])
            out.append(final)
        return out

    def vanished(self, exc: BaseException) -> bool:
        """True when DuckDB could not open a file of this lake that was listed when the views
        were made: a concurrent writer compacted it away or finished moving it into place."""
        import duckdb

        return isinstance(exc, duckdb.IOException) and self.location in str(exc)

    def reading(self, work: Callable[[], T], attempts: int = 5) -> T:
        """Run `work` (which connects and reads) until it reads one committed state whole.

        Views list the data files of one committed state, and data files never change once
        written, so a read either sees that state entirely or finds a listed file gone; then it
        is redone on a fresh listing. Readers never block writers and never see a partial run.
        """
        for attempt in range(attempts):
            try:
                return work()
            except Exception as exc:
                if not self.vanished(exc):
                    raise
                if attempt + 1 == attempts:
                    first = str(exc).strip().splitlines()[0]
                    raise LakeError(f"lake {self.location} kept changing while being read "
                                    f"({attempts} attempts); try again: {first}") from None
        raise AssertionError("unreachable")

    # --- writing --------------------------------------------------------------------------

    def new_run(self) -> tuple[str, Path]:
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        directory = self.staging / run_id
        directory.mkdir(parents=True)
        return run_id, directory

    def final_path(self, run_id: str, new: NewFile) -> Path:
        return self.events / f"{schema.PARTITION_COLUMN}={new.event_date}" / (
            f"part-{run_id}-{new.staging.stem}.parquet")

    def commit(self, run_id: str, files: list[NewFile], entries: list[ManifestEntry],
               stats: dict[str, Any], quarantine_dir: Path | None) -> None:
        """Make a run's data visible and its manifest entries true, atomically (see module doc)."""
        moves = [(str(f.staging), str(self.final_path(run_id, f))) for f in files if f.rows]
        if quarantine_dir is not None and quarantine_dir.exists():
            moves.append((str(quarantine_dir), str(self.quarantine / run_id)))
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(e.uri, e.size, e.version, e.sha256, e.kind, e.container, e.events, e.written,
                  e.quarantined, e.status, e.reason, int(e.complete), run_id) for e in entries])
            db.executemany("INSERT OR REPLACE INTO files VALUES (?,?,?,?)",
                           [(os.path.relpath(self.final_path(run_id, f), self.root),
                             f.event_date, f.rows, run_id) for f in files if f.rows])
            db.executemany("INSERT INTO pending VALUES (?,?,?,?)",
                           [(run_id, "move", src, dst) for src, dst in moves])
            db.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?)",
                       (run_id, stats.get("started"), datetime.now(UTC).isoformat(),
                        json.dumps(stats)))
            db.execute("COMMIT")
            for src, dst in moves:
                _apply("move", src, dst)
            db.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
        shutil.rmtree(self.staging / run_id, ignore_errors=True)

    def compact(self, dates: Iterable[str], threshold: int = COMPACT_AFTER) -> int:
        """Merge the files of each day partition holding more than `threshold` into one."""
        merged = 0
        for day in sorted(set(dates)):
            sources = self.data_files([day])
            if len(sources) <= threshold:
                continue
            run_id, directory = self.new_run()
            target = directory / "compacted.parquet"
            rows = merge_parquet(sources, target)
            new = NewFile(target, day, rows)
            final = self.final_path(run_id, new)
            with self._db() as db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("DELETE FROM files WHERE path = ?",
                               [(os.path.relpath(s, self.root),) for s in sources])
                db.execute("INSERT INTO files VALUES (?,?,?,?)",
                           (os.path.relpath(final, self.root), day, rows, run_id))
                ops = [(run_id, "move", str(target), str(final))]
                ops += [(run_id, "delete", str(s), "") for s in sources]
                db.executemany("INSERT INTO pending VALUES (?,?,?,?)", ops)
                db.execute("COMMIT")
                for _, op, src, dst in ops:
                    _apply(op, src, dst)
                db.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
            shutil.rmtree(directory, ignore_errors=True)
            merged += 1
        return merged

    # --- reading --------------------------------------------------------------------------

    def data_locations(self) -> list[str]:
        """The data files of one committed state, as DuckDB reads them."""
        return [str(p) for p in self.data_files()]

    def quarantine_locations(self) -> list[str]:
        return sorted(str(p) for p in self.quarantine.glob("*/quarantine-*.ndjson"))

    def findings_location(self, relative: Path) -> str | None:
        """The stored findings file as DuckDB reads it, None when there is none."""
        path = self.root / relative
        return str(path) if path.exists() else None

    def read_table(self, location: str) -> pa.Table:
        """A whole Parquet file of the lake (as `findings_location` names it)."""
        return pq.read_table(location)

    def stored(self, relative: Path) -> None:
        """Called after a file under the lake root was replaced outside a write (findings)."""

    def prepare(self, con: Any) -> None:
        """Make the lake's files readable on `con` (S3Lake registers its filesystem)."""

    def connect(self, database: str = ":memory:") -> Any:
        """A DuckDB connection with the views `cloudtrail`, `quarantine`, `manifest`, `findings`,
        `integrity` and `integrity_problems`."""
        import duckdb

        con = duckdb.connect(database)
        con.execute("SET TimeZone = 'UTC'")
        bound_memory(con, Path(tempfile.gettempdir()) / f"trailscan-duckdb-{os.getuid()}")
        try:
            self.prepare(con)
            create_views(con, self)
        except duckdb.Error as exc:  # e.g. a damaged data file: one line, not a traceback
            con.close()
            if self.vanished(exc):
                raise
            first = str(exc).strip().splitlines()[0]
            raise LakeError(f"cannot read lake {self.location}: {first}") from None
        return con


def bound_memory(con: Any, spill_to: Path) -> None:
    """DuckDB would take up to 80% of RAM and spill to `./.tmp`: trailscan bounds each connection
    ($TRAILSCAN_MEMORY_LIMIT, default 1GB; a DuckDB size such as 512MB or 4GiB) and spills to
    `spill_to`, so that big lakes stay within memory on a shared machine."""
    import duckdb

    value = os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY
    try:
        con.execute("SET memory_limit = ?", [value])
        con.execute("SET temp_directory = ?", [str(spill_to)])
    except duckdb.Error:
        con.close()
        raise UsageError(f"${MEMORY_ENV}: not a memory size: {value!r}") from None


def create_views(con: Any, lake: Lake) -> None:
    files = lake.data_locations()
    if files:
        # event_date from our own directory name only: a folder above the lake that merely looks
        # like key=value must not become a column.
        con.execute(
            "CREATE OR REPLACE VIEW _trailscan_events AS SELECT * EXCLUDE (filename), "
            "CAST(regexp_extract(filename, '/event_date=([0-9]{4}-[0-9]{2}-[0-9]{2})/[^/]*$', 1) "
            "AS DATE) AS event_date "
            f"FROM read_parquet({_sql_list(files)}, filename = true, hive_partitioning = false)")
    else:
        empty = schema.arrow_schema().empty_table().append_column(
            schema.PARTITION_COLUMN, pa.array([], pa.date32()))
        con.register("_trailscan_empty", empty)
        con.execute("CREATE OR REPLACE VIEW _trailscan_events AS SELECT * FROM _trailscan_empty")
    # The latest validation verdict of each source file overrides what was known at ingest.
    con.register("_trailscan_integrity", lake.table("integrity_files", _INTEGRITY_COLUMNS))
    con.register("_trailscan_problems", lake.table("integrity_problems", _PROBLEM_COLUMNS))
    con.execute("CREATE OR REPLACE VIEW integrity AS SELECT * FROM _trailscan_integrity")
    con.execute("CREATE OR REPLACE VIEW integrity_problems AS SELECT * FROM _trailscan_problems")
    con.execute(
        "CREATE OR REPLACE VIEW cloudtrail AS SELECT e.* REPLACE ("
        "coalesce(i.status, e.integrity_status) AS integrity_status, "
        "coalesce(i.covering_digest, e.covering_digest) AS covering_digest) "
        "FROM _trailscan_events e LEFT JOIN _trailscan_integrity i ON i.object = e.source_object")
    from .athena import create_view  # `cloudtrail_logs`: AWS's Athena table over `cloudtrail`

    create_view(con)
    quarantine_files = lake.quarantine_locations()
    if quarantine_files:
        con.execute(
            f"CREATE OR REPLACE VIEW quarantine AS SELECT * FROM read_json("
            f"{_sql_list(quarantine_files)}, format = "
            "'newline_delimited', maximum_object_size = 33554432, "  # entries are < 8 MiB
            "columns = {run_id: 'VARCHAR', source: 'VARCHAR', "
            "record_index: 'BIGINT', reason: 'VARCHAR', raw: 'VARCHAR', copy: 'VARCHAR'})")
    else:
        con.execute("CREATE OR REPLACE VIEW quarantine AS SELECT NULL::VARCHAR AS run_id, "
                    "NULL::VARCHAR AS source, NULL::BIGINT AS record_index, NULL::VARCHAR AS "
                    "reason, NULL::VARCHAR AS raw, NULL::VARCHAR AS copy WHERE false")
    from .detections import findings_view  # detections build on the lake, not the other way

    findings_view(con, lake)
    entries = lake.manifest_entries()
    manifest = (pa.Table.from_pylist(entries) if entries
                else pa.table({"uri": pa.array([], pa.string())}))
    con.register("_trailscan_manifest", manifest)
    con.execute("CREATE OR REPLACE VIEW manifest AS SELECT * FROM _trailscan_manifest")


def _sql_list(items: list[str]) -> str:
    """A SQL list literal (views cannot take bound parameters)."""
    return "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items) + "]"


def merge_parquet(sources: list[Path], target: Path) -> int:
    """Stream several lake files into one (bounded memory: one batch at a time)."""
    rows = 0
    with pq.ParquetWriter(target, schema.arrow_schema(), **PARQUET_OPTIONS) as writer:
        for source in sources:
            for batch in pq.ParquetFile(source).iter_batches(batch_size=65536):
                writer.write_batch(batch)
                rows += batch.num_rows
    _fsync(target)
    return rows


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _apply(op: str, src: str, dst: str) -> None:
    """Idempotent: replaying a finished operation is a no-op."""
    if op == "delete":
        Path(src).unlink(missing_ok=True)
        return
    source, target = Path(src), Path(dst)
    if not source.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir() and target.exists():
        for child in source.iterdir():
            os.replace(child, target / child.name)
        source.rmdir()
        return
    os.replace(source, target)
