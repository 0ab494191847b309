"""Where objects come from: list candidate objects, classify them by key, filter by key, read them.

Listing is kept apart from parsing so that the same filters (account, region, date) apply to a
local tree and to an S3 bucket (prefix arithmetic).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import SourceError, UsageError

KEY_PATTERN = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>o-[a-z0-9]{4,32})/)?(?P<account>[^/]+)/"
    r"(?P<kind>CloudTrail|CloudTrail-Digest|CloudTrail-Insight)/(?P<region>[^/]+)/"
    r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<name>[^/]+)$"
)

LOG, INSIGHT, DIGEST, SIDECAR, OTHER = "log", "insight", "digest", "sidecar", "other"
SIDECAR_SUFFIX = ".metadata.json"


@dataclass(frozen=True)
class ObjectKey:
    """What the CloudTrail key layout says about an object (all None when the key is not in it)."""

    kind: str
    account: str | None = None
    region: str | None = None
    day: date | None = None
    org_id: str | None = None


def classify(key: str) -> ObjectKey:
    """Classify a path or S3 key by CloudTrail's layout; digests and sidecars hold no events."""
    if key.endswith(SIDECAR_SUFFIX):
        return ObjectKey(SIDECAR)
    match = KEY_PATTERN.search(key.replace(os.sep, "/"))
    if match is None:
        return ObjectKey(DIGEST if "/CloudTrail-Digest/" in key else OTHER)
    try:
        day = date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError:
        day = None
    kind = {"CloudTrail": LOG, "CloudTrail-Digest": DIGEST, "CloudTrail-Insight": INSIGHT}[
        match["kind"]
    ]
    return ObjectKey(kind, match["account"], match["region"], day, match["org"])


@dataclass(frozen=True)
class Filters:
    """The user's --since/--until/--account/--region; `None` or empty means no restriction."""

    since: datetime | None = None
    until: datetime | None = None
    accounts: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return bool(self.since or self.until or self.accounts or self.regions)

    def admits_key(self, key: ObjectKey) -> bool:
        """Cheap pre-filter on the key; records are filtered again by their own fields."""
        if self.accounts and key.account is not None and key.account not in self.accounts:
            return False
        if self.regions and key.region is not None and key.region not in self.regions:
            return False
        if key.day is not None and key.kind in (LOG, INSIGHT):
            # A file is delivered after its events (late events up to hours later): keep a margin.
            if self.since and key.day < _day_shifted(self.since, -1):
                return False
            if self.until and key.day > _day_shifted(self.until, 2):
                return False
        return True


def _day_shifted(value: datetime, days: int) -> date:
    """The date `days` away, clamped at the ends of the calendar (--until 9999-12-31 is valid)."""
    try:
        return (value + timedelta(days=days)).date()
    except OverflowError:
        return date.max if days > 0 else date.min


@dataclass(frozen=True)
class SourceObject:
    """One object to read: `uri` is what provenance columns and the manifest record."""

    uri: str
    size: int
    version: str  # mtime_ns for files, ETag for S3: "unchanged" means same uri+size+version
    key: ObjectKey
    path: Path | None = None

    def read(self) -> bytes:
        if self.path is None:
            raise SourceError(f"{self.uri}: no reader for this source")
        return read_regular(self.path)


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The bytes of a regular file, checked on the open file itself: a FIFO (opened without
    blocking), a device such as /dev/zero, or a file over `limit` bytes raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", closefd=True) as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file: {path}")
        if limit is not None and info.st_size > limit:
            raise OSError(f"{path} is {info.st_size} bytes, over the limit of {limit}")
        return handle.read()


@dataclass(frozen=True)
class Unreadable:
    """An entry that exists but cannot be read as a file (FIFO, socket, dangling link...)."""

    uri: str
    reason: str


def parse_time(text: str, *, end: bool = False) -> datetime:
    """Accept `YYYY-MM-DD` or ISO-8601 times; a bare date as --until means the end of that day."""
    from datetime import UTC

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not a date or ISO-8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        if end and len(text) == 10:
            value += timedelta(days=1) - timedelta(microseconds=1)
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is after the last representable time
        raise UsageError(f"date or time out of range: {text!r}") from None


def walk_local(roots: Iterable[str | Path]) -> Iterator[SourceObject | Unreadable]:
    """Every regular file under the roots, sorted for reproducible runs; never follows dir links."""
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise UsageError(f"no such file or directory: {root}")
        if root.is_dir():
            errors: list[OSError] = []
            for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append,
                                                        followlinks=False):
                while errors:  # a directory that cannot be listed is reported, not skipped
                    yield _unlistable(errors.pop(0))
                dirnames.sort()
                # Hidden folders and trailscan lakes (e.g. ./trailscan-lake under the source)
                # are never input.
                dirnames[:] = [d for d in dirnames if not d.startswith(".")
                               and not _is_lake(Path(dirpath) / d)]
                for name in sorted(filenames):
                    yield _local(Path(dirpath) / name)
            for error in errors:
                yield _unlistable(error)
        else:
            yield _local(root)


def _is_lake(path: Path) -> bool:
    try:
        return (path / "_trailscan" / "state.db").exists()
    except OSError:  # e.g. a name too long: then it is listed (and reported) like any folder
        return False


def _unlistable(error: OSError) -> Unreadable:
    return Unreadable(str(error.filename), f"cannot list directory: {error.strerror or error}")


def _local(path: Path) -> SourceObject | Unreadable:
    uri = str(path)
    try:
        info = path.stat()
    except OSError as exc:
        return Unreadable(uri, f"cannot stat: {exc.strerror or exc}")
    if not stat.S_ISREG(info.st_mode):
        return Unreadable(uri, "not a regular file")
    return SourceObject(uri, info.st_size, str(info.st_mtime_ns), classify(uri), path)


# --- dispatch on the SOURCE form ---------------------------------------------------------------

S3_SCHEME, HISTORY_SCHEME = "s3://", "aws-event-history://"


def source_form(source: str | os.PathLike[str]) -> str:
    """`s3` for s3://bucket[/prefix], `history` for aws-event-history://<region>, else `local`."""
    text = str(source)
    if text.startswith(S3_SCHEME):
        return "s3"
    if text.startswith(HISTORY_SCHEME):
        return "history"
    if "://" in text:
        raise UsageError(f"unsupported source {text!r} (a path, s3://bucket[/prefix] or "
                         "aws-event-history://<region>)")
    return "local"


@dataclass
class OpenedSources:
    """SOURCE arguments sorted by form; S3 sources are listed here (once, reused to validate)."""

    local: list[Path]
    s3: list[tuple[str, Any]]  # (uri, s3.S3Listing)
    history: list[str]  # regions
    list_calls: int = 0


def open_sources(sources: Iterable[str | os.PathLike[str]], filters: Filters,
                 aws: Any = None) -> OpenedSources:
    """Check every SOURCE and list the S3 ones (prefix arithmetic over `filters`)."""
    opened = OpenedSources([], [], [])
    for source in sources:
        form = source_form(source)
        if form == "local":
            path = Path(source)
            if not path.exists() and not path.is_symlink():
                raise UsageError(f"no such file or directory: {path}")
            opened.local.append(path)
        elif form == "s3":
            from .s3 import AwsOptions, list_trail

            listing = list_trail(aws or AwsOptions(), str(source), filters)
            opened.s3.append((str(source), listing))
            opened.list_calls += listing.calls
        else:
            region = str(source)[len(HISTORY_SCHEME):].strip("/")
            if not re.fullmatch(r"[a-z]{2}(?:-[a-z]+)+-\d+", region):
                raise UsageError(f"{source}: expected aws-event-history://<region>, e.g. "
                                 "aws-event-history://us-east-1")
            opened.history.append(region)
    return opened
