"""The lake on S3: the same layout under `s3://bucket/prefix`, written through a local working copy.

A writer takes a lock object, pulls the published state (`_trailscan/state.db`) into a cache
directory, runs the local commit machinery there unchanged, then publishes: new data and
quarantine objects first, then the state with a conditional put (If-Match the ETag it started
from), which is the commit point; objects compaction replaced are deleted only after it. Readers
take one snapshot of the state and read the Parquet objects it lists through DuckDB (an fsspec
filesystem over pyarrow's S3 client, since DuckDB's httpfs extension cannot be installed here).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import LakeError, NoLake, SourceError, UsageError
from .lake import _DDL, Lake
from .s3 import AwsOptions, parse_s3_uri, source_error

STATE_KEY = "_trailscan/state.db"
LOCK_KEY = "_trailscan/lock"
CACHE_ENV = "TRAILSCAN_CACHE"
UPLOAD_THREADS = 8
SNAPSHOTS_KEPT_SECONDS = 3600  # older reader snapshots of the state are removed
# Unreferenced objects (left by a publish that failed or was killed) are deleted by the next
# writer once they are this old: far longer than any publish takes between its uploads and its
# state put, so a writer that raced the lock never loses the objects it is about to publish.
GARBAGE_AGE_SECONDS = 3600
_S3_DDL = "CREATE TABLE IF NOT EXISTS s3_quarantine (path TEXT PRIMARY KEY, run_id TEXT);"


@dataclass(frozen=True)
class S3LakeRef:
    """`--lake s3://...` with the AWS options to reach it (what the CLI hands the library)."""

    uri: str
    aws: AwsOptions

    def __str__(self) -> str:
        return self.uri


def lake_ref(path: str | None, aws: AwsOptions | None) -> str | S3LakeRef | None:
    """The CLI's --lake: an S3 location keeps its AWS options, a directory stays a path."""
    if path is not None and str(path).startswith("s3://") and aws is not None:
        return S3LakeRef(str(path), aws)
    return path


def cache_dir(uri: str, endpoint: str | None) -> Path:
    """The working copy of one S3 lake: $TRAILSCAN_CACHE, else $XDG_CACHE_HOME/trailscan, else
    ~/.cache/trailscan, then lakes/<bucket>/<hash of endpoint and location>."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "trailscan")
    bucket, _ = parse_s3_uri(uri)
    digest = hashlib.sha256(f"{endpoint or ''}\n{uri}".encode()).hexdigest()[:16]
    return Path(base) / "lakes" / bucket / digest


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


class S3Lake(Lake):
    """A lake under `s3://bucket/prefix`. `root` is the local working copy (cache)."""

    def __init__(self, uri: str, aws: AwsOptions, root: Path, client: Any = None) -> None:
        super().__init__(root)
        self.uri = uri.rstrip("/")
        self.bucket, prefix = parse_s3_uri(self.uri)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.aws = aws
        self.client = client or aws.client("s3")
        self._snapshot: Path | None = None  # readers: the state snapshot they read
        self._fresh = False  # the snapshot was just taken: the next connect() need not
        self._base: tuple[str | None, set[str], set[str]] = (None, set(), set())

    @classmethod
    def open_uri(cls, path: Any, *, create: bool = False, aws: AwsOptions | None = None) -> S3Lake:
        uri = str(path).rstrip("/")
        options = getattr(path, "aws", None) or aws or AwsOptions()
        parse_s3_uri(uri)
        client = options.client("s3")
        lake = cls(uri, options, cache_dir(uri, client.meta.endpoint_url), client)
        try:
            lake.client.list_objects_v2(Bucket=lake.bucket, Prefix=lake.prefix + "_trailscan/",
                                        MaxKeys=1)
        except Exception as exc:
            raise source_error(exc, lake.uri) from None
        try:
            for directory in (lake.events, lake.quarantine, lake.meta, lake.staging):
                directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot use {lake.root} as the working copy of {uri}: "
                             f"{exc.strerror or exc}") from None
        if not create:
            lake.refresh()
        return lake

    def recording(self) -> Any:
        return self.writer()

    @property
    def location(self) -> str:
        return self.uri

    @property
    def state_file(self) -> Path:
        return self._snapshot or self.meta / "state.db"

    def key(self, relative: str | os.PathLike[str]) -> str:
        return self.prefix + Path(relative).as_posix()

    def _where(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"

    # --- reading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Take a snapshot of the published state (downloaded once per ETag)."""
        for _ in range(5):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(STATE_KEY))
            except Exception as exc:
                if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                    raise NoLake(f"no trailscan lake at {self.uri} (run `trailscan ingest "
                                 "--lake ...` first)") from None
                raise source_error(exc, self._where(STATE_KEY)) from None
            etag = str(head["ETag"]).strip('"')
            snapshots = self.root / "_snapshots"
            target = snapshots / f"state-{hashlib.sha256(etag.encode()).hexdigest()[:20]}.db"
            self._fresh = True
            if target.exists():
                self._snapshot = target
                return
            snapshots.mkdir(parents=True, exist_ok=True)
            try:
                self._download(STATE_KEY, target, if_match=etag)
            except LakeError:  # replaced between HEAD and GET: take the newer one
                continue
            self._snapshot = target
            self._prune(snapshots, keep=target)
            return
        raise LakeError(f"lake {self.uri}: the state kept changing while being fetched; "
                        "try again")

    def _prune(self, snapshots: Path, keep: Path) -> None:
        cutoff = time.time() - SNAPSHOTS_KEPT_SECONDS
        for old in snapshots.glob("state-*.db*"):
            if not old.name.startswith(keep.name):
                with contextlib.suppress(OSError):
                    if old.stat().st_mtime < cutoff:
                        old.unlink()

    def connect(self, database: str = ":memory:") -> Any:
        if self._snapshot is not None and not self._fresh:  # a reconnection (e.g. a retried
            self.refresh()                                  # read) sees the latest state
        self._fresh = False
        return super().connect(database)

    def prepare(self, con: Any) -> None:
        con.register_filesystem(self.filesystem())

    def filesystem(self) -> Any:
        """An fsspec filesystem for `s3://` over pyarrow's S3 client, with the credentials,
        region and endpoint boto3 resolved (range reads: DuckDB fetches only what it needs)."""
        from .lake_fs import LakeFS

        return LakeFS(self.arrow_fs())

    def arrow_fs(self) -> Any:
        from pyarrow.fs import S3FileSystem

        credentials = self.aws.boto_session().get_credentials()
        if credentials is None:
            raise SourceError(f"{self.uri}: no AWS credentials found (environment, ~/.aws, "
                              "--profile or an instance role)")
        frozen = credentials.get_frozen_credentials()
        kwargs: dict[str, Any] = {"access_key": frozen.access_key,
                                  "secret_key": frozen.secret_key,
                                  "session_token": frozen.token,
                                  "region": self.client.meta.region_name or "us-east-1"}
        endpoint = self.aws.endpoint_url or self.client.meta.endpoint_url
        if endpoint and "amazonaws.com" not in endpoint:
            scheme, _, rest = endpoint.partition("://")
            kwargs.update(endpoint_override=rest or scheme, scheme=scheme if rest else "https")
        else:  # pyarrow's client does not follow AWS's redirect to the bucket's own region
            kwargs["region"] = self._bucket_region() or kwargs["region"]
        return S3FileSystem(**kwargs)

    def _bucket_region(self) -> str | None:
        if not hasattr(self, "_region"):
            self._region: str | None = None
            with contextlib.suppress(Exception):
                head = self.client.head_bucket(Bucket=self.bucket)
                headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
                self._region = headers.get("x-amz-bucket-region")
        return self._region

    def vanished(self, exc: BaseException) -> bool:
        import duckdb

        text = str(exc)
        return isinstance(exc, duckdb.IOException) and (
            self.uri in text or f"{self.bucket}/{self.prefix}" in text)

    def read_table(self, location: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(location.removeprefix("s3://"), filesystem=self.arrow_fs())

    def data_locations(self) -> list[str]:
        with self._db() as db:
            rows = db.execute("SELECT path FROM files ORDER BY path").fetchall()
        return [self._where(path) for (path,) in rows]

    def quarantine_locations(self) -> list[str]:
        with self._db() as db:
            db.executescript(_S3_DDL)
            rows = db.execute("SELECT path FROM s3_quarantine ORDER BY path").fetchall()
        return [self._where(path) for (path,) in rows]

    def findings_location(self, relative: Path) -> str | None:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except Exception as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise source_error(exc, self._where(str(relative))) from None
        return self._where(str(relative))

    def stored(self, relative: Path) -> None:
        self._upload(self.root / relative, relative)

    # --- writing --------------------------------------------------------------------------

    def data_files(self, dates: Iterable[str] | None = None) -> list[Path]:
        """Local copies of the listed data files (dedupe and compaction read them), fetched
        from the bucket when this working copy does not hold them."""
        paths = super().data_files(dates)
        missing = [p for p in paths if not p.exists()]
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(lambda p: self._download(p.relative_to(self.root), p), missing))
        return paths

    def _exclusive(self) -> Any:
        return _Writing(self)

    def _lock(self) -> None:
        body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "since": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key(LOCK_KEY),
                                   Body=body.encode(), IfNoneMatch="*")
        except Exception as exc:
            if _code(exc) not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise source_error(exc, self._where(LOCK_KEY)) from None
            holder = ""
            with contextlib.suppress(Exception):
                info = json.loads(self.client.get_object(
                    Bucket=self.bucket, Key=self.key(LOCK_KEY))["Body"].read())
                holder = f" (host {info['host']}, pid {info['pid']}, since {info['since']})"
            raise LakeError(f"lake {self.uri} is being written by another trailscan process"
                            f"{holder}; try again when it has finished, or delete "
                            f"{self._where(LOCK_KEY)} if that process is gone") from None

    def _unlock(self) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(LOCK_KEY))

    def _pull(self) -> None:
        """Make the working copy's state the published one; drop what no published state lists
        (a run whose publish never finished)."""
        state = self.meta / "state.db"
        for suffix in ("-wal", "-shm"):  # a stale WAL must never be applied to another state
            Path(f"{state}{suffix}").unlink(missing_ok=True)
        etag: str | None = None
        try:
            etag = self._download(STATE_KEY, state)
        except FileNotFoundError:
            state.unlink(missing_ok=True)
        with self._db() as db:
            db.executescript(_DDL + _S3_DDL)
            files = {p for (p,) in db.execute("SELECT path FROM files")}
            runs = {r for (r,) in db.execute("SELECT run_id FROM runs")}
        self._base = (etag, files, runs)
        for path in self.events.glob("*/*.parquet"):
            if path.relative_to(self.root).as_posix() not in files:
                path.unlink()
        for run in self.quarantine.iterdir():
            shutil.rmtree(run, ignore_errors=True)

    def publish(self) -> None:
        """Upload new objects, then the state (the commit point), then delete replaced ones."""
        etag, base_files, base_runs = self._base
        with self._db() as db:
            files = {p for (p,) in db.execute("SELECT path FROM files")}
            runs = {r for (r,) in db.execute("SELECT run_id FROM runs")}
        uploads = [Path(p) for p in sorted(files - base_files)]
        quarantined: list[tuple[str, str]] = []
        for run in sorted(runs - base_runs):
            for path in sorted((self.quarantine / run).rglob("*")):
                if path.is_file():
                    relative = path.relative_to(self.root)
                    uploads.append(relative)
                    if path.name.startswith("quarantine-") and path.suffix == ".ndjson":
                        quarantined.append((relative.as_posix(), run))
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(lambda r: self._upload(self.root / r, r), uploads))
        with self._db() as db:
            db.executemany("INSERT OR REPLACE INTO s3_quarantine VALUES (?,?)", quarantined)
        snapshot = self.meta / f".publish-{uuid.uuid4().hex}.db"
        try:
            with self._db() as db:
                db.execute("VACUUM INTO ?", (str(snapshot),))
            self._put_state(snapshot, etag)
        finally:
            snapshot.unlink(missing_ok=True)
        replaced = sorted(base_files - files)
        for start in range(0, len(replaced), 1000):
            batch = [{"Key": self.key(p)} for p in replaced[start:start + 1000]]
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch,
                                                                       "Quiet": True})
            except Exception:  # unreferenced objects are harmless; readers never list them
                break
        for path in files:  # the bucket holds them now; the next run fetches what it needs
            (self.root / path).unlink(missing_ok=True)
        self._base = (None, files, runs)

    def collect_garbage(self, age: float | None = None) -> int:
        """Delete data and quarantine objects no published state references, older than `age`
        seconds (a lock holder only; best effort). Returns how many were deleted."""
        age = GARBAGE_AGE_SECONDS if age is None else age
        with self._db() as db:
            files = {self.key(p) for (p,) in db.execute("SELECT path FROM files")}
            runs = {r for (r,) in db.execute("SELECT run_id FROM runs")}
        cutoff = time.time() - age
        garbage: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for area in ("events/", "quarantine/"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + area):
                for obj in page.get("Contents", []):
                    key = str(obj["Key"])
                    run = key[len(self.prefix + area):].split("/", 1)[0]
                    referenced = key in files if area == "events/" else run in runs
                    if not referenced and obj["LastModified"].timestamp() < cutoff:
                        garbage.append(key)
        for start in range(0, len(garbage), 1000):
            batch = [{"Key": k} for k in garbage[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch,
                                                                   "Quiet": True})
        return len(garbage)

    def _put_state(self, snapshot: Path, etag: str | None) -> None:
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            with open(snapshot, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=self.key(STATE_KEY), Body=body,
                                       **condition)
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise LakeError(f"lake {self.uri} was published by another writer during this "
                                "run; nothing of this run is visible; run again") from None
            raise source_error(exc, self._where(STATE_KEY)) from None

    # --- transfers ------------------------------------------------------------------------

    def _upload(self, path: Path, relative: str | os.PathLike[str]) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, self.key(relative))
        except Exception as exc:
            raise source_error(exc, self._where(str(relative))) from None

    def _download(self, relative: str | os.PathLike[str], target: Path,
                  if_match: str | None = None) -> str:
        """Fetch one object to `target` (temp file + rename); its ETag. FileNotFoundError when
        the object does not exist, LakeError when it no longer matches `if_match`."""
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        extra = {"IfMatch": if_match} if if_match else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key(relative),
                                              **extra)
            with open(temp, "wb") as handle:
                for chunk in response["Body"].iter_chunks(1 << 20):
                    handle.write(chunk)
            os.replace(temp, target)
            return str(response["ETag"]).strip('"')
        except Exception as exc:
            code = _code(exc)
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(self._where(str(relative))) from None
            if code in ("PreconditionFailed", "412"):
                raise LakeError(f"{self._where(str(relative))} changed while being read") \
                    from None
            if isinstance(exc, OSError):
                raise
            raise source_error(exc, self._where(str(relative))) from None
        finally:
            temp.unlink(missing_ok=True)


class _Writing(contextlib.AbstractContextManager["_Writing"]):
    """The S3 part of a write: lock, pull the published state, publish on success, unlock."""

    def __init__(self, lake: S3Lake) -> None:
        self.lake = lake

    def __enter__(self) -> _Writing:
        self.lake._snapshot = None  # a lake opened for reading now writes its working copy
        self.lake._lock()
        try:
            self.lake._pull()
        except BaseException:
            self.lake._unlock()
            raise
        return self

    def __exit__(self, kind: Any, exc: Any, trace: Any) -> None:
        try:
            if kind is None:
                self.lake.publish()
                with contextlib.suppress(Exception):  # only tidies; the run is published
                    self.lake.collect_garbage()
        finally:
            self.lake._unlock()
