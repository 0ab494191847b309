"""S3 as a source: sessions, one-line errors, listing by prefix arithmetic, retried downloads.

A trail bucket holds years of 5-minute files for many accounts and regions. Listing it whole to
read one day would cost one request per 1,000 keys of the entire bucket; instead the layout
`AWSLogs/[o-id/]<account>/<kind>/<region>/YYYY/MM/DD/` is walked with delimiter listings to find
org ids, accounts and regions, and only the date prefixes covering the requested range are listed
(several in parallel). Downloads run on a bounded thread pool with a bounded look-ahead, so memory
does not grow with the bucket, and a body cut mid-transfer is retried, never used half-read.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from .errors import SourceError, UsageError
from .integrity import StoredObject
from .sources import INSIGHT, LOG, Filters, SourceObject, classify

LOG_KINDS = ("CloudTrail", "CloudTrail-Digest", "CloudTrail-Insight")
ORG_ID = re.compile(r"^o-[a-z0-9]{4,32}$")
TRAIL_KEY = re.compile(r"(?:^|/)AWSLogs/(?:[^/]+/){1,2}(?:CloudTrail|CloudTrail-Digest|"
                       r"CloudTrail-Insight)/")
LIST_THREADS = 8
DOWNLOAD_THREADS = 8
ATTEMPTS = 4  # tries per object when a body is cut or the connection drops mid-transfer
# Kept after the user's range for the same reason as Filters.admits_key: files are delivered
# after their events (one day before `since` for a file that straddles midnight).
DAYS_BEFORE, DAYS_AFTER = 1, 2

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class AwsOptions:
    """--profile / --aws-region / --endpoint-url; `session` injects a ready boto3 Session."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    session: Any = field(default=None, compare=False)

    def boto_session(self) -> Any:
        if self.session is not None:
            return self.session
        import boto3
        from botocore.exceptions import ProfileNotFound

        try:
            return boto3.session.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound:
            raise UsageError(f"AWS profile not found: {self.profile}") from None

    def client(self, service: str, region: str | None = None) -> Any:
        """A client with adaptive retries (client-side rate limiting on throttling)."""
        from botocore.config import Config

        config = Config(retries={"mode": "adaptive", "max_attempts": 8},
                        max_pool_connections=max(LIST_THREADS, DOWNLOAD_THREADS) * 2,
                        connect_timeout=10, read_timeout=60)
        kwargs: dict[str, Any] = {"config": config}
        if region or self.region:
            kwargs["region_name"] = region or self.region
        if self.endpoint_url and service == "s3":
            kwargs["endpoint_url"] = self.endpoint_url
        return self.boto_session().client(service, **kwargs)


def is_s3(source: str) -> bool:
    return str(source).startswith("s3://")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket[/prefix]` -> (bucket, prefix)."""
    rest = str(uri)[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not bucket or "/" in bucket:
        raise UsageError(f"not an S3 location (s3://bucket[/prefix]): {uri}")
    return bucket, prefix


def source_error(exc: BaseException, where: str) -> SourceError:
    """One line naming the bucket/prefix for the botocore errors users actually meet."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return SourceError(f"{where}: no AWS credentials found (environment, ~/.aws, --profile "
                           "or an instance role)")
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"{where}: cannot connect to {exc.kwargs.get('endpoint_url')}")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return SourceError(f"{where}: no such bucket")
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "403") or \
                status == 403:
            return SourceError(f"{where}: access denied ({code or status})")
        if code in ("NoSuchKey", "404") or status == 404:
            return SourceError(f"{where}: not found")
        return SourceError(f"{where}: {code or status}: {error.get('Message', exc)}")
    return SourceError(f"{where}: {type(exc).__name__}: {exc}")


def _fatal(exc: BaseException) -> bool:
    """Errors that no retry or other object will fix (credentials, endpoint, bucket)."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, NoCredentialsError | PartialCredentialsError | EndpointConnectionError):
        return True
    return isinstance(exc, ClientError) and \
        exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "InvalidAccessKeyId",
                                                      "ExpiredToken", "SignatureDoesNotMatch")


# --- listing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    etag: str


class Lister:
    """ListObjectsV2 calls against one bucket, counted (`calls`) so tests can check the cost."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self.calls = 0
        self._lock = threading.Lock()

    def _call(self, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        where = f"s3://{self.bucket}/{kwargs.get('Prefix', '')}"
        try:
            return self.client.list_objects_v2(Bucket=self.bucket, **kwargs)
        except Exception as exc:
            raise source_error(exc, where) from None

    def children(self, prefix: str) -> list[str]:
        """Names of the `folders` directly under `prefix` (delimiter listing)."""
        names: list[str] = []
        args: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/"}
        while True:
            page = self._call(**args)
            names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return names
            args["ContinuationToken"] = page["NextContinuationToken"]

    def objects(self, prefix: str) -> list[Listed]:
        out: list[Listed] = []
        args: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call(**args)
            out += [Listed(o["Key"], int(o["Size"]), str(o.get("ETag", "")).strip('"'))
                    for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            args["ContinuationToken"] = page["NextContinuationToken"]


def _bounds(filters: Filters) -> tuple[date | None, date | None]:
    lo = (filters.since - timedelta(days=DAYS_BEFORE)).date() if filters.since else None
    hi = (filters.until + timedelta(days=DAYS_AFTER)).date() if filters.until else None
    return lo, hi


def date_prefixes(lo: date, hi: date) -> list[str]:
    """The fewest `YYYY/`, `YYYY/MM/` and `YYYY/MM/DD/` prefixes covering [lo, hi] exactly."""
    out: list[str] = []
    for year in range(lo.year, hi.year + 1):
        if lo <= date(year, 1, 1) and date(year, 12, 31) <= hi:
            out.append(f"{year:04d}/")
            continue
        for month in range(1, 13):
            first = date(year, month, 1)
            last = (date(year + month // 12, month % 12 + 1, 1)) - timedelta(days=1)
            if last < lo or first > hi:
                continue
            if lo <= first and last <= hi:
                out.append(f"{year:04d}/{month:02d}/")
                continue
            day = max(first, lo)
            while day <= min(last, hi):
                out.append(f"{day:%Y/%m/%d}/")
                day += timedelta(days=1)
    return out


def trail_root(prefix: str) -> tuple[str, bool]:
    """(prefix to walk, True when it is an `AWSLogs/` root to walk by layout).

    `s3://b`, `s3://b/p` and `s3://b/p/AWSLogs` are roots; a prefix already inside the layout
    (`.../AWSLogs/<acct>/...`) is listed as given."""
    p = prefix.strip("/")
    if not p:
        return "AWSLogs/", True
    if p.split("/")[-1] == "AWSLogs":
        return p + "/", True
    if "AWSLogs/" in p + "/":
        return p + "/", False
    return p + "/AWSLogs/", True


def plan(lister: Lister, root: str, filters: Filters, kinds: Iterable[str],
         pool: ThreadPoolExecutor) -> list[str]:
    """Leaf prefixes to list for `filters`: a few discovery calls per account, then dates."""
    kinds = tuple(kinds)
    bases: list[str] = []
    top = lister.children(root)
    if not top:
        raise SourceError(f"s3://{lister.bucket}/{root}: no CloudTrail logs under this prefix "
                          "(expected AWSLogs/[o-id/]<account>/CloudTrail/...)")
    for name in top:
        if ORG_ID.match(name):
            if filters.accounts:
                bases += [f"{root}{name}/{a}/" for a in sorted(filters.accounts)]
            else:
                bases += [f"{root}{name}/{a}/" for a in lister.children(f"{root}{name}/")]
        elif not filters.accounts or name in filters.accounts:
            bases.append(f"{root}{name}/")
    areas = [f"{base}{kind}/" for base in bases for kind in kinds]
    if filters.regions:
        regions = [sorted(filters.regions)] * len(areas)
    else:
        regions = list(pool.map(lister.children, areas))
    cells = [f"{area}{r}/" for area, names in zip(areas, regions, strict=True) for r in names]
    lo, hi = _bounds(filters)
    if lo is None and hi is None:
        return cells
    leaves: list[str] = []
    years_of = list(pool.map(lister.children, cells)) if lo is None or hi is None else None
    for i, cell in enumerate(cells):
        start, end = lo, hi
        if years_of is not None:
            years = sorted(int(y) for y in years_of[i] if y.isdigit() and len(y) == 4)
            if not years:
                continue
            start = start or date(years[0], 1, 1)
            end = end or date(years[-1], 12, 31)
        assert start is not None and end is not None
        if start <= end:
            leaves += [cell + p for p in date_prefixes(start, end)]
    return leaves


def bounded_map(func: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor,
                ahead: int) -> Iterator[tuple[T, R | BaseException]]:
    """pool.map in input order with at most `ahead` results pending: memory stays bounded."""
    window: deque[tuple[T, Future[R]]] = deque()

    def pop() -> tuple[T, R | BaseException]:
        item, future = window.popleft()
        try:
            return item, future.result()
        except BaseException as exc:  # handed to the caller, which decides
            return item, exc

    for item in items:
        window.append((item, pool.submit(func, item)))
        if len(window) >= ahead:
            yield pop()
    while window:
        yield pop()


@dataclass
class S3Listing:
    """One listed source: its objects and what listing cost."""

    bucket: str
    prefix: str
    objects: list[Listed]
    calls: int


def list_trail(options: AwsOptions, uri: str, filters: Filters | None = None,
               kinds: Iterable[str] = LOG_KINDS, client: Any = None) -> S3Listing:
    """List the trail objects of `s3://bucket[/prefix]` for `filters` by prefix arithmetic."""
    filters = filters or Filters()
    bucket, prefix = parse_s3_uri(uri)
    client = client or options.client("s3")
    lister = Lister(client, bucket)
    root, by_layout = trail_root(prefix)
    wanted = tuple(kinds)
    with ThreadPoolExecutor(LIST_THREADS) as pool:
        leaves = plan(lister, root, filters, wanted, pool) if by_layout else [root]
        found: list[Listed] = []
        for _, result in bounded_map(lister.objects, leaves, pool, LIST_THREADS * 2):
            if isinstance(result, BaseException):
                raise result
            found += result
    if not by_layout:  # a prefix inside the layout: keep the requested kinds and range only
        found = [o for o in found if _kind_of(o.key) in wanted and filters.admits_key(
            classify(o.key))]
    return S3Listing(bucket, prefix, found, lister.calls)


def _kind_of(key: str) -> str | None:
    match = TRAIL_KEY.search(key)
    return match.group(0).rstrip("/").rsplit("/", 1)[-1] if match else None


def source_objects(listing: S3Listing, filters: Filters) -> Iterator[SourceObject]:
    """Listed objects as SourceObjects (uri `s3://bucket/key`, version = ETag)."""
    for obj in listing.objects:
        key = classify(obj.key)
        if key.kind in (LOG, INSIGHT) and not filters.admits_key(key):
            continue
        yield SourceObject(f"s3://{listing.bucket}/{obj.key}", obj.size, obj.etag, key)


# --- downloads ---------------------------------------------------------------------------------


class DownloadError(OSError):
    """An object could not be read completely after retries (the run reports it, goes on)."""


def _transient(exc: BaseException) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500
    return isinstance(exc, BotoCoreError | OSError) and not _fatal(exc)


def get_object(client: Any, bucket: str, key: str, size: int | None = None,
               attempts: int = ATTEMPTS,
               sink: Callable[[Iterator[bytes]], Any] | None = None) -> tuple[Any, dict[str, str]]:
    """Read one object completely: (body bytes or `sink`'s result, lower-cased user metadata).

    A body shorter than announced (connection cut mid-transfer) is retried; after `attempts`
    DownloadError (a missing object: FileNotFoundError). `sink` consumes the chunks (sync writes
    them to a temp file) and is called afresh for every attempt.
    """
    from botocore.exceptions import ClientError

    last: BaseException | None = None
    for _ in range(attempts):
        try:
            response = client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            expected = int(response.get("ContentLength", -1))
            counted = _Counted(body.iter_chunks(1 << 20))
            result = sink(iter(counted)) if sink else b"".join(counted)
            if expected >= 0 and counted.bytes != expected:
                raise DownloadError(f"s3://{bucket}/{key}: body cut at {counted.bytes} of "
                                    f"{expected} bytes")
            if size is not None and counted.bytes != size:
                raise DownloadError(f"s3://{bucket}/{key}: {counted.bytes} bytes, listed "
                                    f"as {size} (changed while reading)")
            meta = {str(k).lower(): str(v) for k, v in response.get("Metadata", {}).items()}
            return result, meta
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                raise FileNotFoundError(f"s3://{bucket}/{key}: no such key") from None
            if _fatal(exc):
                raise source_error(exc, f"s3://{bucket}/{key}") from None
            if not _transient(exc):
                raise DownloadError(str(source_error(exc, f"s3://{bucket}/{key}"))) from None
            last = exc
        except DownloadError as exc:
            last = exc
        except Exception as exc:
            if _fatal(exc):
                raise source_error(exc, f"s3://{bucket}/{key}") from None
            if not _transient(exc):
                raise
            last = exc
    raise DownloadError(f"s3://{bucket}/{key}: incomplete after {attempts} attempts ({last})")


class _Counted:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.bytes = chunks, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.bytes += len(chunk)
            yield chunk


class Downloader:
    """Fetches `s3://` SourceObjects on a bounded thread pool, in order, a bounded way ahead."""

    def __init__(self, options: AwsOptions, threads: int = DOWNLOAD_THREADS) -> None:
        self.options, self.threads = options, threads
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self.options.client("s3")
        return self._client

    def fetch(self, obj: SourceObject) -> bytes:
        bucket, key = parse_s3_uri(obj.uri)
        data, _ = get_object(self.client, bucket, key, obj.size)
        return data

    def stream(self, objects: Iterable[SourceObject]) -> Iterator[tuple[SourceObject,
                                                                        bytes | BaseException]]:
        """(object, bytes or the error) in input order; fatal errors (credentials) raise."""
        with ThreadPoolExecutor(self.threads) as pool:
            for obj, result in bounded_map(self.fetch, objects, pool, self.threads * 2):
                if isinstance(result, SourceError):
                    raise result
                yield obj, result


# --- validation store --------------------------------------------------------------------------


class S3Store:
    """The integrity ObjectStore over a bucket. Keys are `s3://bucket/key`, so reports name
    objects as the AWS CLI does; signatures come from the digests' object metadata, which
    GetObject returns with the body (no HeadObject needed)."""

    def __init__(self, client: Any, bucket: str, listed: Iterable[Listed]) -> None:
        self.client, self.bucket = client, bucket
        self.base = f"s3://{bucket}/"
        self.listed = list(listed)
        self._keys = {o.key for o in self.listed}
        self._meta: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def _key(self, uri: str) -> str:
        return uri.removeprefix(self.base)

    def list(self) -> Iterator[StoredObject]:
        for obj in self.listed:
            yield StoredObject(self.base + obj.key, obj.size)

    def read(self, key: str) -> bytes:
        data, meta = get_object(self.client, self.bucket, self._key(key))
        if "/CloudTrail-Digest/" in key:
            with self._lock:
                self._meta[key] = meta
        return data

    def metadata(self, key: str) -> dict[str, str]:
        with self._lock:
            if key in self._meta:
                return self._meta[key]
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise OSError(str(source_error(exc, key))) from None
        return {str(k).lower(): str(v) for k, v in head.get("Metadata", {}).items()}

    def exists(self, key: str) -> bool:
        return self._key(key) in self._keys
