"""`trailscan sync`: mirror a trail bucket's logs, digests and insights to disk, keeping what a
plain copy loses: each digest's signature (S3 object metadata) goes to a `<digest>.metadata.json`
sidecar in the format `LocalStore` reads, so the copy can be validated offline.

Object keys are untrusted: a key is written only where it resolves inside DIR; keys with `..`,
absolute paths, NUL, empty segments or over-long names are counted and skipped. Files are written
to a temporary name and renamed, so an interrupted download never leaves a partial file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import SourceError, UsageError
from .s3 import DOWNLOAD_THREADS, AwsOptions, Listed, bounded_map, get_object, list_trail
from .sources import SIDECAR_SUFFIX, Filters

MAX_NAME = 255  # bytes per path segment on common file systems
MAX_KEY = 1024  # S3's own key limit

Progress = Callable[[str, int, int | None], None]


@dataclass
class SyncStats:
    """What a sync did (or, with dry_run, would do)."""

    source: str = ""
    target: str = ""
    dry_run: bool = False
    objects_listed: int = 0
    objects_to_fetch: int = 0
    bytes_to_fetch: int = 0
    objects_fetched: int = 0
    bytes_fetched: int = 0
    objects_present: int = 0  # already on disk with the same size (and sidecar for digests)
    sidecars_written: int = 0
    skipped_unsafe: int = 0
    failed: int = 0
    list_calls: int = 0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def safe_target(root: Path, key: str) -> Path | None:
    """Where `key` goes under `root` (already resolved), or None when it must not be written."""
    if not key or "\x00" in key or key.startswith("/") or "\\" in key:
        return None
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY:
        return None
    parts = key.split("/")
    if any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogatepass")) > MAX_NAME
           for p in parts):
        return None
    if parts[-1].endswith(SIDECAR_SUFFIX) or parts[-1].startswith(".trailscan-"):
        return None  # would shadow a sidecar or a temp file of ours
    target = root.joinpath(*parts)
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root):
        return None  # through a symlink inside DIR
    return target


def _present(target: Path, obj: Listed, digest: bool) -> bool:
    try:
        if target.stat().st_size != obj.size:
            return False
    except OSError:
        return False
    return not digest or target.with_name(target.name + SIDECAR_SUFFIX).is_file()


def _atomic_write(target: Path, write: Callable[[Any], Any]) -> Any:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".trailscan-", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            result = write(handle)
        os.replace(tmp, target)
        return result
    except BaseException:
        os.unlink(tmp)
        raise


def sidecar_bytes(metadata: dict[str, str]) -> bytes:
    """The sidecar LocalStore reads and `trailscan.synth` writes: the user metadata as JSON."""
    return json.dumps(dict(sorted(metadata.items()))).encode()


def sync(source: str, target: str | os.PathLike[str], *, filters: Filters | None = None,
         aws: AwsOptions | None = None, dry_run: bool = False,
         progress: Progress | None = None) -> SyncStats:
    """Mirror `s3://bucket[/prefix]` to `target` with the same keys (see module doc)."""
    aws = aws or AwsOptions()
    filters = filters or Filters()
    if not str(source).startswith("s3://"):
        raise UsageError(f"sync reads from s3://bucket[/prefix], not {source}")
    root = Path(target)
    if root.exists() and not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    client = aws.client("s3")
    listing = list_trail(aws, source, filters, client=client)
    stats = SyncStats(str(source), str(root), dry_run, len(listing.objects),
                      list_calls=listing.calls)
    if not dry_run:
        root.mkdir(parents=True, exist_ok=True)
    resolved = root.resolve()
    todo: list[tuple[Listed, Path]] = []
    for obj in listing.objects:
        dest = safe_target(resolved, obj.key)
        if dest is None:
            stats.skipped_unsafe += 1
            stats.problems.append(f"s3://{listing.bucket}/{obj.key!r}: unsafe key, skipped")
        elif _present(dest, obj, "/CloudTrail-Digest/" in obj.key):
            stats.objects_present += 1
        else:
            todo.append((obj, dest))
    stats.objects_to_fetch = len(todo)
    stats.bytes_to_fetch = sum(o.size for o, _ in todo)
    if dry_run:
        return stats
    report = progress or (lambda stage, done, total: None)
    report("sync", 0, len(todo))

    def fetch(item: tuple[Listed, Path]) -> int:
        obj, dest = item

        def write(handle: Any) -> int:
            def sink(chunks: Iterator[bytes]) -> int:
                handle.seek(0)
                handle.truncate()
                return sum(handle.write(chunk) for chunk in chunks)

            written, meta = get_object(client, listing.bucket, obj.key, obj.size, sink=sink)
            if "/CloudTrail-Digest/" in obj.key:  # sidecar first: a digest never lacks it
                side = dest.with_name(dest.name + SIDECAR_SUFFIX)
                _atomic_write(side, lambda h: h.write(sidecar_bytes(meta)))
            return written

        return _atomic_write(dest, write)

    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        for done, ((obj, _dest), result) in enumerate(
                bounded_map(fetch, todo, pool, DOWNLOAD_THREADS * 2), 1):
            if isinstance(result, SourceError):
                raise result
            if isinstance(result, BaseException):
                if not isinstance(result, OSError):
                    raise result
                stats.failed += 1
                stats.problems.append(f"s3://{listing.bucket}/{obj.key}: {result}")
            else:
                stats.objects_fetched += 1
                stats.bytes_fetched += result
                if "/CloudTrail-Digest/" in obj.key:
                    stats.sidecars_written += 1
            report("sync", done, len(todo))
    return stats
