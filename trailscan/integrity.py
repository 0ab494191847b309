"""CloudTrail log file integrity: verify digest chains and the log files they list, over any
object store (a local copy of a bucket now, S3 later), offline when the public keys are known.
Checks what `aws cloudtrail validate-logs` checks, and what it misses (see `validate`).
"""

from __future__ import annotations

import binascii
import hashlib
import os
import re
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from . import records
from .errors import BadInput, SourceError, TrailscanError
from .keys import KeyRing
from .sources import KEY_PATTERN, SIDECAR_SUFFIX, Filters, read_regular

ALGORITHM = "SHA256withRSA"
HOUR = timedelta(hours=1)
DELIVERY_SLACK = timedelta(minutes=30)  # digest delivery after its end time, and clock skew
END_SLACK = timedelta(minutes=15)  # a file named just before a chain's end may be in the next one
DIGEST_LIMIT = 64 * 1024 * 1024
BATCH = 32  # log files per thread-pool task

DIGEST_NAME = re.compile(
    r"^(?P<account>[^_/]+)_CloudTrail-Digest_(?P<region>[a-z0-9-]+)_(?P<trail>.+)_"
    r"(?P<home>[a-z]{2}(?:-[a-z]+)+-\d+)_(?P<ts>\d{8}T\d{6}Z)(?P<backfill>_backfill)?"
    r"\.json(?:\.gz)?$"
)
LOG_NAME_TIME = re.compile(r"_(\d{8}T\d{4})Z_[^_/]*$")
PREVIOUS = ("previousDigestS3Bucket", "previousDigestS3Object", "previousDigestHashValue",
            "previousDigestHashAlgorithm", "previousDigestSignature")
REQUIRED = ("awsAccountId", "digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
            "digestPublicKeyFingerprint", "digestSignatureAlgorithm")


# --- stores -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class ObjectStore(Protocol):
    """What validation needs from a bucket or a copy of one; keys are `/`-separated."""

    def list(self) -> Iterable[StoredObject]: ...
    def read(self, key: str) -> bytes: ...
    def metadata(self, key: str) -> dict[str, str]: ...
    def exists(self, key: str) -> bool: ...


class LocalStore:
    """A local copy of a bucket; keys are POSIX paths relative to `root`.

    Copies lose S3 metadata, so a digest's metadata is read from `<digest name>.metadata.json`
    beside it (a plain map, or a `head-object` response with `Metadata`). Digest `s3Object` keys
    are matched to local keys from `AWSLogs/` on, so copies with or without the trail prefix work.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SourceError(f"not a directory: {self.root}")
        self._prefix = str(self.root) + os.sep

    def list(self) -> Iterator[StoredObject]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            for name in sorted(filenames):
                if name.endswith(SIDECAR_SUFFIX):
                    continue
                try:
                    size = os.stat(os.path.join(dirpath, name)).st_size
                except OSError:
                    size = -1
                yield StoredObject(prefix + name, size)

    def _path(self, key: str) -> str:
        return self._prefix + (key if os.sep == "/" else key.replace("/", os.sep))

    def read(self, key: str) -> bytes:
        # Regular files only, never more than a log file may inflate to: a FIFO or a link to
        # /dev/zero in a hostile copy must not hang or exhaust the run.
        return read_regular(self._path(key), records.largest_input())

    def metadata(self, key: str) -> dict[str, str]:
        path = Path(self._path(key + SIDECAR_SUFFIX))
        try:
            doc = orjson.loads(read_regular(path, 1 << 20))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise BadInput(f"unreadable signature metadata {path.name}: {exc}") from None
        if isinstance(doc, dict) and isinstance(doc.get("Metadata"), dict):
            doc = doc["Metadata"]
        if not isinstance(doc, dict):
            raise BadInput(f"signature metadata {path.name} is not a JSON object")
        return {str(k).lower(): v for k, v in doc.items() if isinstance(v, str)}

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))


# --- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str
    object: str | None
    account: str | None
    region: str | None
    detail: str


@dataclass(frozen=True)
class Gap:
    account: str | None
    region: str | None
    start: datetime
    end: datetime


@dataclass
class DigestResult:
    key: str
    status: str  # valid | invalid | unverifiable
    chain: str
    start: datetime | None
    end: datetime | None
    detail: str = ""


@dataclass
class LogFileResult:
    key: str
    status: str  # valid | invalid | missing | unlisted | unverifiable
    digest: str | None
    sha256: str | None
    detail: str = ""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ValidationReport:
    """The outcome of one run. `valid` is False unless at least one digest was checked and
    nothing is invalid, missing, unlisted, unverifiable (an unanchored chain proves nothing)
    or uncovered."""

    digests: list[DigestResult] = field(default_factory=list)
    log_files: list[LogFileResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    requested: tuple[datetime | None, datetime | None] = (None, None)

    def count(self, results: Iterable[DigestResult | LogFileResult], *statuses: str) -> dict:
        counts = Counter(r.status for r in results)
        return {s: counts.get(s, 0) for s in statuses}

    @property
    def digest_counts(self) -> dict[str, int]:
        return self.count(self.digests, "valid", "invalid", "unverifiable")

    @property
    def log_file_counts(self) -> dict[str, int]:
        return self.count(self.log_files, "valid", "invalid", "missing", "unlisted", "unverifiable")

    @property
    def valid(self) -> bool:
        ok = all(d.status == "valid" for d in self.digests)
        ok = ok and all(f.status == "valid" for f in self.log_files)
        return bool(self.digests) and ok and not self.problems and not self.gaps

    @property
    def found(self) -> tuple[datetime | None, datetime | None]:
        starts = [d.start for d in self.digests if d.start and d.status == "valid"]
        ends = [d.end for d in self.digests if d.end and d.status == "valid"]
        return (min(starts) if starts else None, max(ends) if ends else None)

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "digests": self.digest_counts,
            "log_files": self.log_file_counts,
            "problems": [
                {"kind": p.kind, "object": p.object, "account": p.account, "region": p.region,
                 "detail": p.detail}
                for p in self.problems
            ],
            "gaps": [
                {"account": g.account, "region": g.region, "start": _iso(g.start),
                 "end": _iso(g.end)}
                for g in self.gaps
            ],
        }


_LINES = {
    "digest_signature_invalid": ("Digest file", "INVALID: "),
    "digest_signature_missing": ("Digest file", "UNVERIFIABLE: "),
    "public_key_not_found": ("Digest file", "INVALID: "),
    "digest_malformed": ("Digest file", "INVALID: invalid format: "),
    "digest_location_mismatch": ("Digest file", "INVALID: has been moved from its original "
                                 "location: "),
    "digest_missing": ("Digest file", "INVALID: not found: "),
    "digest_chain_broken": ("Digest file", "INVALID: chain broken: "),
    "log_file_missing": ("Log file", "INVALID: not found: "),
    "log_file_modified": ("Log file", "INVALID: hash value doesn't match: "),
    "log_file_trailing_data": ("Log file", "INVALID: invalid format: "),
    "log_file_unlisted": ("Log file", "INVALID: not listed in any digest: "),
}


def format_text(report: ValidationReport, verbose: bool = False) -> str:
    """Text in the manner of `aws cloudtrail validate-logs`: file lines, then a summary."""
    lines: list[str] = []
    if verbose:  # problems are listed below; here what is valid or silently unverifiable
        reported = {p.object for p in report.problems}
        for label, results in (("Digest file", report.digests), ("Log file", report.log_files)):
            for r in results:
                if r.status == "valid":
                    lines.append(f"{label}\t{r.key}\tvalid")
                elif r.status == "unverifiable" and r.key not in reported:
                    lines.append(f"{label}\t{r.key}\tUNVERIFIABLE: {r.detail}")
    for p in report.problems:
        if p.kind == "gap":
            lines.append(f"No digest files cover account {p.account} in {p.region}: {p.detail}")
        else:
            label, prefix = _LINES[p.kind]
            lines.append(f"{label}\t{p.object}\t{prefix}{p.detail}")
    if lines:
        lines.append("")
    since, until = report.requested
    lines.append(f"Results requested for {_iso(since) or 'the first digest'} to "
                 f"{_iso(until) or 'the last digest'}")
    if not report.digests:
        lines.append("No digests found")
        return "\n".join(lines) + "\n"
    start, end = report.found
    if start is None or end is None:
        lines += ["No valid digests found in range", ""]
    else:
        lines += [f"Results found for {_iso(start)} to {_iso(end)}:", ""]
    for name, counts in (("digest", report.digest_counts), ("log", report.log_file_counts)):
        total = sum(counts.values())
        parts = [f"{counts['valid']}/{total} {name} files valid"]
        for status, value in counts.items():
            if status != "valid" and value:
                word = "INVALID" if status == "invalid" else status
                parts.append(f"{value}/{total} {name} files {word}")
        lines.append(", ".join(parts))
    if report.gaps:
        lines.append(f"periods without digest coverage: {len(report.gaps)}")
    return "\n".join(lines) + "\n"


# --- parsing ------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _compact_time(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def awslogs_suffix(key: str) -> str:
    """The part of a key from `AWSLogs/` on: what a bucket and its copies agree on."""
    match = KEY_PATTERN.search(key)
    return key[match.start():].lstrip("/") if match else key


@dataclass
class _Digest:
    key: str
    suffix: str
    base: str
    org: str | None
    account: str | None
    region: str | None
    trail: str
    home: str
    backfill: bool
    name_end: datetime | None
    sha256: str = ""
    doc: dict[str, Any] | None = None
    start: datetime | None = None
    end: datetime | None = None
    signature: str | None = None  # own, from metadata
    algorithm: str | None = None
    status: str = "unverifiable"
    detail: str = ""
    linkable: bool = False  # well-formed and where it claims to be
    successors: list[_Digest] = field(default_factory=list)
    before_missing: bool = False

    @property
    def area(self) -> tuple[str, str | None, str | None, str | None]:
        return (self.base, self.org, self.account, self.region)

    @property
    def chain(self) -> str:
        org = f"{self.org}/" if self.org else ""
        tail = "#backfill" if self.backfill else ""
        return f"{self.base + '/' if self.base else ''}AWSLogs/{org}{self.account}/" \
               f"{self.region}/{self.trail}{tail}"

    def span(self) -> tuple[datetime | None, datetime | None]:
        if self.start and self.end:
            return self.start, self.end
        return (self.name_end - HOUR if self.name_end else None), self.name_end


def _new_digest(key: str, suffix: str, area: tuple, name: str) -> _Digest:
    match = DIGEST_NAME.match(name)
    trail, home, backfill, name_end = "?", "?", name.endswith("_backfill.json.gz"), None
    if match:
        trail, home = match["trail"], match["home"]
        name_end = _compact_time(match["ts"], "%Y%m%dT%H%M%SZ")
    return _Digest(key, suffix, *area, trail, home, backfill, name_end)


def _check_doc(doc: Any) -> str | None:
    """Why a digest document cannot be used (None when it can)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    absent = [k for k in (*REQUIRED, *PREVIOUS, "logFiles") if k not in doc]
    if absent:
        return f"missing {', '.join(absent)}"
    wrong = [k for k in REQUIRED if not isinstance(doc[k], str)]
    if wrong:
        return f"not strings: {', '.join(wrong)}"
    for name in ("digestStartTime", "digestEndTime"):
        if _time(doc[name]) is None:
            return f"{name} is not a time: {doc[name]!r}"
    previous = [doc[k] for k in PREVIOUS]
    if any(v is not None for v in previous):
        if not all(isinstance(v, str) for v in previous):
            return "previousDigest* fields are partly null"
        if doc["previousDigestHashAlgorithm"] != "SHA-256":
            return f"unsupported previousDigestHashAlgorithm {doc['previousDigestHashAlgorithm']}"
    if not isinstance(doc["logFiles"], list):
        return "logFiles is not an array"
    for number, entry in enumerate(doc["logFiles"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("s3Object"), str)
                and isinstance(entry.get("hashValue"), str)):
            return f"logFiles[{number}] has no s3Object/hashValue"
        if entry.get("hashAlgorithm", "SHA-256") != "SHA-256":
            return f"logFiles[{number}]: unsupported hashAlgorithm {entry['hashAlgorithm']}"
    return None


# --- the validator ------------------------------------------------------------------------


class _Index:
    """Store keys by their `AWSLogs/...` suffix, so references resolve in copies too."""

    def __init__(self) -> None:
        self.exact: set[str] = set()
        self.by_suffix: dict[str, list[str]] = defaultdict(list)

    def add(self, key: str, suffix: str) -> None:
        self.exact.add(key)
        self.by_suffix[suffix].append(key)

    def locate(self, s3_key: str, suffix: str | None = None) -> str | None:
        if s3_key in self.exact:
            return s3_key
        candidates = self.by_suffix.get(suffix or awslogs_suffix(s3_key))
        if not candidates:
            return None
        return next((c for c in candidates if c.endswith("/" + s3_key)), candidates[0])


@dataclass
class _Log:
    key: str
    suffix: str
    area: tuple[str, str | None, str | None, str | None]

    @property
    def time(self) -> datetime | None:
        """Delivery time from the name (`..._YYYYMMDDTHHmmZ_...`), else midnight of its folder."""
        match = LOG_NAME_TIME.search(self.key)
        text = match[1] if match else ""
        try:
            return datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]),
                            int(text[11:13]), tzinfo=UTC)
        except ValueError:
            where = KEY_PATTERN.search(self.key)
            try:
                return datetime(int(where["y"]), int(where["m"]), int(where["d"]), tzinfo=UTC)
            except (TypeError, ValueError):
                return None


class _Run:
    """One validation run; `validate()` is the public entry point."""

    def __init__(self, store: ObjectStore, keys: KeyRing, filters: Filters, bucket: str | None,
                 known: Mapping[str, str], workers: int) -> None:
        self.store, self.keys, self.filters, self.bucket = store, keys, filters, bucket
        self.known = known
        self.workers = workers
        self.problems: list[tuple[Problem, datetime | None, datetime | None]] = []
        self.gaps: list[Gap] = []

    def problem(self, kind: str, obj: str | None, area: tuple, detail: str,
                start: datetime | None = None, end: datetime | None = None) -> None:
        self.problems.append((Problem(kind, obj, area[2], area[3], detail), start, end))

    def in_window(self, start: datetime | None, end: datetime | None) -> bool:
        since, until = self.filters.since, self.filters.until
        if since and end and end < since:
            return False
        return not (until and start and start > until)

    # -- listing and loading

    def scan(self) -> None:
        """One pass over the listing: index every CloudTrail object, keep digests and logs."""
        self.index = _Index()
        self.digests: list[_Digest] = []
        self.logs: list[_Log] = []
        accounts, regions = self.filters.accounts, self.filters.regions
        for obj in self.store.list():
            match = KEY_PATTERN.search(obj.key)
            if match is None or obj.key.endswith(SIDECAR_SUFFIX):
                continue
            suffix = obj.key[match.start():].lstrip("/")
            self.index.add(obj.key, suffix)
            if (accounts and match["account"] not in accounts) or \
                    (regions and match["region"] not in regions):
                continue
            area = (obj.key[: match.start()].rstrip("/"), match["org"], match["account"],
                    match["region"])
            if match["kind"] == "CloudTrail-Digest":
                self.digests.append(_new_digest(obj.key, suffix, area, match["name"]))
            elif match["kind"] == "CloudTrail":
                self.logs.append(_Log(obj.key, suffix, area))

    def load(self, digest: _Digest) -> None:
        """Read, hash and parse one digest; invalid ones get their problem here."""
        start, end = digest.span()
        try:
            text = records.decompress(self.store.read(digest.key), DIGEST_LIMIT)
        except (OSError, TrailscanError) as exc:
            return self.fail(digest, "digest_malformed", f"cannot read: {exc}", start, end)
        digest.sha256 = hashlib.sha256(text).hexdigest()
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return self.fail(digest, "digest_malformed", f"not JSON ({exc})", start, end)
        reason = _check_doc(doc)
        if reason:
            return self.fail(digest, "digest_malformed", reason, start, end)
        digest.doc = doc
        digest.start, digest.end = _time(doc["digestStartTime"]), _time(doc["digestEndTime"])
        start, end = digest.span()
        try:
            meta = self.store.metadata(digest.key)
        except (OSError, TrailscanError) as exc:
            return self.fail(digest, "digest_signature_invalid", str(exc), start, end)
        digest.signature = meta.get("signature")
        digest.algorithm = meta.get("signature-algorithm")
        claimed = awslogs_suffix(doc["digestS3Object"])
        if claimed != digest.suffix:
            return self.fail(digest, "digest_location_mismatch",
                             f"it claims to be {doc['digestS3Object']}", start, end)
        if doc["awsAccountId"] != digest.account:
            return self.fail(digest, "digest_location_mismatch",
                             f"it claims account {doc['awsAccountId']}", start, end)
        digest.linkable = True

    def fail(self, digest: _Digest, kind: str, detail: str, start: datetime | None = None,
             end: datetime | None = None) -> None:
        digest.status, digest.detail = "invalid", detail
        self.problem(kind, digest.key, digest.area, detail, start, end)

    def check_buckets(self) -> None:
        """Digests must claim the bucket they are in: `bucket` when known, else the bucket that
        most digests of the same copy (same path before `AWSLogs/`) claim."""
        expected: dict[str, str] = {}
        if self.bucket is None:
            votes: dict[str, Counter[str]] = defaultdict(Counter)
            for d in self.digests:
                if d.linkable and d.doc:
                    votes[d.base][d.doc["digestS3Bucket"]] += 1
            expected = {base: min(c, key=lambda b: (-c[b], b)) for base, c in votes.items()}
        for d in self.digests:
            if d.linkable and d.doc:
                want = self.bucket or expected[d.base]
                if d.doc["digestS3Bucket"] != want:
                    d.linkable = False
                    self.fail(d, "digest_location_mismatch",
                              f"it claims bucket {d.doc['digestS3Bucket']}, not {want}", *d.span())

    # -- chains

    def link(self) -> None:
        """Resolve previousDigestS3Object links; report missing, broken and gaps in chains."""
        by_key = {d.key: d for d in self.digests}
        groups: dict[tuple, list[_Digest]] = defaultdict(list)
        for d in self.digests:
            if d.linkable:
                groups[(*d.area, d.trail, d.backfill)].append(d)
        self.spans: dict[tuple, list[tuple[datetime, datetime]]] = defaultdict(list)
        for members in groups.values():
            members.sort(key=lambda d: (d.end, d.key))
            run_start: datetime | None = None
            older: _Digest | None = None
            for d in members:
                assert d.doc is not None and d.start and d.end
                continuous = self.link_one(d, older, by_key)
                if run_start is None or not continuous:
                    if run_start is not None and older is not None:
                        self.spans[d.area].append((run_start, older.end))
                    run_start = d.start
                older = d
            if run_start is not None and older is not None and older.end:
                self.spans[older.area].append((run_start, older.end))

    def link_one(self, d: _Digest, older: _Digest | None, by_key: dict[str, _Digest]) -> bool:
        """Link `d` to its predecessor; True when no period lies uncovered between them."""
        doc = d.doc
        assert doc is not None and d.start and d.end
        if doc["previousDigestS3Object"] is None:
            return older is None
        prev_key = self.index.locate(doc["previousDigestS3Object"])
        prev = by_key.get(prev_key) if prev_key else None
        if prev is None or not prev.linkable:
            if prev is None:
                self.report_missing(d, older)
            return True
        if prev.doc is None or prev.end is None or prev.end >= d.end:
            self.problem("digest_chain_broken", d.key, d.area,
                         f"previousDigestS3Object {doc['previousDigestS3Object']} is not an "
                         "older digest", d.start, d.end)
            return True
        prev.successors.append(d)
        if doc["previousDigestHashValue"].lower() != prev.sha256:
            self.problem("digest_chain_broken", d.key, d.area,
                         f"previousDigestHashValue {doc['previousDigestHashValue']} is not the "
                         f"SHA-256 of {prev.key} ({prev.sha256})", d.start, d.end)
        if prev.signature is not None and \
                doc["previousDigestSignature"].lower() != prev.signature.lower():
            self.problem("digest_chain_broken", d.key, d.area,
                         f"previousDigestSignature does not match the signature of {prev.key}",
                         d.start, d.end)
        if doc["previousDigestS3Bucket"] != prev.doc["digestS3Bucket"]:
            self.problem("digest_chain_broken", d.key, d.area,
                         f"previousDigestS3Bucket {doc['previousDigestS3Bucket']} is not the "
                         f"bucket of {prev.key}", d.start, d.end)
        return d.start <= prev.end

    def report_missing(self, d: _Digest, older: _Digest | None) -> None:
        """The referenced predecessor is absent; infer others deleted before it (hourly digests)."""
        doc = d.doc
        assert doc is not None
        bucket, ref = doc["previousDigestS3Bucket"], doc["previousDigestS3Object"]
        match = DIGEST_NAME.match(ref.rsplit("/", 1)[-1])
        ref_end = _compact_time(match["ts"], "%Y%m%dT%H%M%SZ") if match else d.start
        self.problem("digest_missing", f"s3://{bucket}/{ref}", d.area,
                     f"referenced by {d.key} as its previous digest",
                     (ref_end - HOUR) if ref_end else None, ref_end)
        if older is None or ref_end is None or older.end is None or older.successors:
            return
        older.before_missing = True
        extra = round((ref_end - older.end) / HOUR) - 1
        prefix = ref[: len(ref) - len(awslogs_suffix(ref))]
        for i in range(1, extra + 1):
            end = ref_end - i * HOUR
            self.problem("digest_missing", f"s3://{bucket}/{prefix}{_digest_suffix(d, end)}",
                         d.area, f"inferred: no digest remains between {_iso(older.end)} and "
                         f"{_iso(ref_end)} (deleted, or logging/validation was off)",
                         end - HOUR, end)

    # -- signatures

    def verify_all(self) -> None:
        """Newest first, so each verified digest vouches for its predecessor's signature."""
        need: dict[str, set[str]] = defaultdict(set)
        ranges: dict[str, tuple[datetime, datetime]] = {}
        for d in self.digests:
            if d.linkable and d.doc and d.region and d.end:
                need[d.region].add(d.doc["digestPublicKeyFingerprint"])
                lo, hi = ranges.get(d.region, (d.end, d.end))
                ranges[d.region] = (min(lo, d.start or d.end), max(hi, d.end))
        for region, fingerprints in sorted(need.items()):
            self.keys.prepare(region, *ranges[region], fingerprints)
        order = sorted((d for d in self.digests if d.linkable), key=lambda d: (d.end, d.key),
                       reverse=True)
        for d in order:
            self.verify(d)

    def verify(self, d: _Digest) -> None:
        doc = d.doc
        assert doc is not None and d.end is not None
        signature, source = d.signature, ""
        if signature is None:
            vouching = [s for s in d.successors if s.status == "valid"]
            if not vouching:
                d.status = "unverifiable"
                if d.before_missing:
                    d.detail = "no signature of its own and its successor is missing"
                elif d.successors:
                    d.detail = "no signature of its own and no verified successor"
                else:
                    d.detail = "no signature (S3 metadata or .metadata.json sidecar): the chain " \
                               "is unanchored"
                    self.problem("digest_signature_missing", d.key, d.area, d.detail, *d.span())
                return
            signature = vouching[0].doc["previousDigestSignature"]  # type: ignore[index]
            source = f" (signature from {vouching[0].key})"
        algorithms = {doc["digestSignatureAlgorithm"]}
        if d.signature is not None and d.algorithm is not None:
            algorithms.add(d.algorithm)
        if algorithms != {ALGORITHM}:
            odd = ", ".join(sorted(a for a in algorithms if a != ALGORITHM))
            return self.fail(d, "digest_signature_invalid",
                             f"unsupported signature algorithm {odd}", *d.span())
        fingerprint = doc["digestPublicKeyFingerprint"]
        key = self.keys.find(fingerprint, d.end)
        if key is None:
            return self.fail(d, "public_key_not_found", self.keys.explain(fingerprint, d.end),
                             *d.span())
        try:
            raw = binascii.unhexlify(signature)
        except (binascii.Error, ValueError):
            return self.fail(d, "digest_signature_invalid", f"signature is not hexadecimal{source}",
                             *d.span())
        try:
            key.key.verify(raw, string_to_sign(doc, d.sha256), padding.PKCS1v15(),
                           hashes.SHA256())
        except InvalidSignature:
            return self.fail(d, "digest_signature_invalid",
                             f"signature verification failed{source}", *d.span())
        d.status, d.detail = "valid", ""

    # -- log files

    def check_logs(self, selected: list[_Digest]) -> list[LogFileResult]:
        """Hash every log file listed by the selected digests, once, in parallel."""
        entries: dict[str, tuple[str, str, str, _Digest]] = {}  # suffix -> s3 key, hash, bucket
        vouched: dict[str, bool] = {}
        for d in selected:
            for entry in d.doc["logFiles"] if d.doc else ():
                suffix = awslogs_suffix(entry["s3Object"])
                vouched[suffix] = vouched.get(suffix, False) or d.status == "valid"
                if suffix not in entries or d.status == "valid":
                    entries[suffix] = (entry["s3Object"], entry["hashValue"].lower(),
                                       str(entry.get("s3Bucket")), d)
        items = sorted(entries.items())

        def work(batch: list[tuple[str, tuple[str, str, str, _Digest]]]) -> list[tuple]:
            return [self.hash_log(suffix, entry[0]) for suffix, entry in batch]

        # zlib and hashlib release the GIL; batches keep the pool's per-task cost negligible.
        batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
        if self.workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                hashed = [r for batch in pool.map(work, batches) for r in batch]
        else:
            hashed = work(items)
        results = []
        for (suffix, (s3_key, listed, bucket, d)), (key, sha, error) in zip(items, hashed,
                                                                            strict=True):
            obj = key or f"s3://{bucket}/{s3_key}"
            where = (d.area[0], d.org, d.account, d.region)
            start, end = d.span()
            if error == "missing":
                result = LogFileResult(obj, "missing", d.key, None, "not found")
                self.problem("log_file_missing", obj, where, f"listed in {d.key}", start, end)
            elif error:
                result = LogFileResult(obj, "invalid", d.key, None, error)
                self.problem("log_file_trailing_data" if "trailing data" in error else
                             "log_file_modified", obj, where, error, start, end)
            elif sha != listed:
                detail = f"listed in {d.key} as {listed}, is {sha}"
                result = LogFileResult(obj, "invalid", d.key, sha, detail)
                self.problem("log_file_modified", obj, where, detail, start, end)
            elif vouched[suffix]:
                result = LogFileResult(obj, "valid", d.key, sha)
            else:
                result = LogFileResult(obj, "unverifiable", d.key, sha,
                                       f"listed only in digests not verified ({d.key})")
            results.append(result)
        return results

    def hash_log(self, suffix: str, s3_key: str) -> tuple[str | None, str | None, str | None]:
        """(store key, sha256 of the uncompressed bytes, error) with one read of the file."""
        key = self.index.locate(s3_key, suffix)
        known = self.known.get(suffix)
        if known is not None:
            return key, known.lower(), None
        if key is None:
            return None, None, "missing"
        try:
            text = records.decompress(self.store.read(key))
        except FileNotFoundError:
            return key, None, "missing"
        except OSError as exc:
            return key, None, f"cannot read: {exc.strerror or exc}"
        except BadInput as exc:
            return key, None, str(exc)
        return key, hashlib.sha256(text).hexdigest(), None

    def coverage(self, listed: set[str]) -> list[LogFileResult]:
        """Unlisted log files inside chains, gaps between chains, and deleted newest digests."""
        results: list[LogFileResult] = []
        by_area: dict[tuple, list[tuple[datetime, str]]] = defaultdict(list)
        for log in self.logs:
            if log.suffix not in listed:
                time = log.time
                if time is not None:
                    by_area[log.area].append((time, log.key))
        newest: dict[tuple, _Digest] = {}
        for d in self.digests:
            if d.linkable and d.end:
                best = newest.get(d.area)
                if best is None or (not d.backfill, d.end) > (not best.backfill, best.end):
                    newest[d.area] = d
        for area in sorted(set(by_area) | set(self.spans), key=lambda a: tuple(map(str, a))):
            logs = sorted(by_area.get(area, []))
            times = [t for t, _ in logs]
            spans = _merge(self.spans.get(area, []))
            if not spans:
                if logs:
                    self.gap(area, times[0], times[-1], len(logs), logs[0][1])
                continue
            if times and times[0] < spans[0][0]:
                self.gap(area, times[0], spans[0][0], bisect_left(times, spans[0][0]), logs[0][1])
            for (_, end), (start, _) in pairwise(spans):
                files = bisect_left(times, start) - bisect_left(times, end - END_SLACK)
                after = [d.key for d in self.digests if d.area == area and d.start == start]
                self.gap(area, end, start, files, min(after) if after else None)
            for start, end in spans:
                inside = logs[bisect_left(times, start):bisect_left(times, end - END_SLACK)]
                for time, key in inside:
                    if self.in_window(time, time):
                        results.append(LogFileResult(key, "unlisted", None, None,
                                                     "not listed in any digest"))
                        self.problem("log_file_unlisted", key, area,
                                     f"delivered {_iso(time)}, inside the period of a digest "
                                     "chain", time, time)
            last_end = spans[-1][1]
            late = times[bisect_left(times, last_end - END_SLACK):]
            if late and late[-1] > last_end + HOUR + DELIVERY_SLACK and area in newest:
                d = newest[area]
                doc = d.doc or {}
                ref = doc["digestS3Object"]
                prefix = ref[: len(ref) - len(awslogs_suffix(ref))]
                obj = f"s3://{doc['digestS3Bucket']}/{prefix}{_digest_suffix(d, last_end + HOUR)}"
                self.problem("digest_missing", obj, area,
                             f"{len(late)} log files delivered from {_iso(late[0])} to "
                             f"{_iso(late[-1])} are in no digest, but the newest digest ends "
                             f"{_iso(last_end)}: the newest digest(s) were deleted, or "
                             "validation was turned off", last_end, late[-1])
        return results

    def gap(self, area: tuple, start: datetime, end: datetime, files: int, obj: str | None) -> None:
        if not self.in_window(start, end):
            return
        self.gaps.append(Gap(area[2], area[3], start, end))
        self.problem("gap", obj, area, f"{_iso(start)} to {_iso(end)} ({files} log files in "
                     "this period): logging or validation was off, or digests were deleted",
                     start, end)


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _digest_suffix(d: _Digest, end: datetime) -> str:
    """The key CloudTrail would give the digest of `d`'s chain ending at `end` (from AWSLogs/)."""
    org = f"{d.org}/" if d.org else ""
    tail = "_backfill" if d.backfill else ""
    return (f"AWSLogs/{org}{d.account}/CloudTrail-Digest/{d.region}/{end:%Y/%m/%d}/"
            f"{d.account}_CloudTrail-Digest_{d.region}_{d.trail}_{d.home}_"
            f"{end:%Y%m%dT%H%M%SZ}{tail}.json.gz")


def string_to_sign(doc: Mapping[str, Any], digest_sha256: str) -> bytes:
    """CloudTrail's signed string; a first digest signs the literal `null` as previous signature."""
    previous = doc["previousDigestSignature"]
    return (f"{doc['digestEndTime']}\n{doc['digestS3Bucket']}/{doc['digestS3Object']}\n"
            f"{digest_sha256}\n{'null' if previous is None else previous}").encode()


def validate(
    store: ObjectStore,
    keys: KeyRing,
    filters: Filters | None = None,
    *,
    known_hashes: Mapping[str, str] | None = None,
    bucket: str | None = None,
    workers: int | None = None,
) -> ValidationReport:
    """Validate every digest chain and listed log file in `store`; bad content never raises.

    Beyond the AWS CLI: previousDigestHashValue/previousDigestSignature against the predecessor,
    key validity windows, account and bucket claims, unlisted log files, coverage gaps, and
    deleted digests, of which exactly this is detectable:
    - a deleted digest with a present successor (the successor names it);
    - consecutive deleted digests: those between the successor's reference and the next older
      remaining digest of the chain, inferred from hourly delivery (approximate key names);
    - the newest digest(s) of a chain: only when the store holds log files of the same
      account/region delivered more than 1h30 after the newest remaining digest's end;
      deleting them from a quiet or truncated copy is not detectable;
    - digests deleted from the start of a chain look like validation turned on later: their
      log files are reported as a `gap`.

    `known_hashes` maps log keys to the hex SHA-256 of their uncompressed bytes computed earlier
    (ingest): those files are not read. `bucket` is the bucket the digests must claim; without
    it, the bucket most digests of the same copy claim. `valid` needs at least one digest.
    """
    filters = filters or Filters()
    known = {awslogs_suffix(k): v for k, v in (known_hashes or {}).items()}
    run = _Run(store, keys, filters, bucket, known, workers or min(8, os.cpu_count() or 1))
    run.scan()
    for digest in run.digests:
        run.load(digest)
    run.check_buckets()
    run.link()
    run.verify_all()
    selected = [d for d in run.digests if run.in_window(*d.span())]
    log_results = run.check_logs(selected)
    listed = {awslogs_suffix(e["s3Object"]) for d in run.digests if d.doc
              for e in d.doc["logFiles"]}
    log_results += run.coverage(listed)
    problems = [p for p, start, end in run.problems if run.in_window(start, end)]
    problems.sort(key=lambda p: (p.account or "", p.region or "", p.kind, p.object or ""))
    digest_results = [
        DigestResult(d.key, d.status, d.chain, *d.span(), d.detail)
        for d in sorted(selected, key=lambda d: (d.chain, d.span()[1] or datetime.min.replace(
            tzinfo=UTC), d.key))
    ]
    run.gaps.sort(key=lambda g: (g.account or "", g.region or "", g.start))
    return ValidationReport(digest_results, log_results, problems, run.gaps,
                            (filters.since, filters.until))
