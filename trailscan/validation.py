"""Integrity validation as a job: find the keys, validate a source, keep the results in the lake.

`integrity.py` holds the algorithm; this module decides where public keys come from (a file, a
`public-keys.json` at the top of the source, or AWS with a cache in the lake) and records each
log file's verdict so that every row of the `cloudtrail` view carries its integrity status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import UsageError
from .integrity import LocalStore, LogFileResult, ValidationReport, validate
from .keys import KeyRing, load_public_keys_file, online_keyring
from .lake import Lake
from .sources import Filters, source_form

SOURCE_KEYS_FILE = "public-keys.json"  # beside a copied trail, as `sample_logs/` ships it
ROW_STATUS = {"valid": "verified", "invalid": "failed", "unlisted": "failed",
              "unverifiable": "unverifiable"}


def keyring_for(source: Path | None, public_keys: str | os.PathLike[str] | None,
                lake: Lake | None, session: Any = None) -> KeyRing:
    """--public-keys FILE, else SOURCE/public-keys.json, else AWS (cached in the lake)."""
    if public_keys is not None:
        return KeyRing(load_public_keys_file(public_keys))
    beside = source / SOURCE_KEYS_FILE if source is not None else None
    if beside is not None and beside.is_file():
        return KeyRing(load_public_keys_file(beside))
    cache = lake.meta / "public-keys.json" if lake is not None else None
    return online_keyring(cache, session)


def validate_listing(listing: Any, *, public_keys: str | os.PathLike[str] | None = None,
                     filters: Filters | None = None, lake: Lake | None = None,
                     known_hashes: Mapping[str, str] | None = None,
                     aws: Any = None) -> ValidationReport:
    """Validate a listed S3 trail (s3.S3Listing): signatures from the digests' object metadata,
    public keys fetched with the same AWS session (and cached in the lake)."""
    from .s3 import DOWNLOAD_THREADS, AwsOptions, S3Store

    aws = aws or AwsOptions()
    store = S3Store(aws.client("s3"), listing.bucket, listing.objects)
    keys = keyring_for(None, public_keys, lake, aws.boto_session())
    return validate(store, keys, filters, known_hashes=known_hashes, bucket=listing.bucket,
                    workers=DOWNLOAD_THREADS)


def validate_source(source: str | os.PathLike[str], *,
                    public_keys: str | os.PathLike[str] | None = None,
                    filters: Filters | None = None, lake: Lake | None = None,
                    known_hashes: Mapping[str, str] | None = None,
                    aws: Any = None, bucket: str | None = None) -> ValidationReport:
    """Validate the digest chains and log files of a local tree or of `s3://bucket[/prefix]`.

    `bucket`: the bucket the trail delivers to (for S3, the bucket read). A local copy does not
    say which bucket it came from; without it, digests must agree with the bucket most digests
    of the copy claim, so a copy made entirely of another bucket's (genuine) digests is caught
    only with `bucket`.
    """
    if source_form(source) == "s3":
        from .s3 import AwsOptions, list_trail

        listing = list_trail(aws or AwsOptions(), str(source), filters,
                             kinds=("CloudTrail", "CloudTrail-Digest"))
        return validate_listing(listing, public_keys=public_keys, filters=filters, lake=lake,
                                known_hashes=known_hashes, aws=aws)
    if source_form(source) != "local":
        raise UsageError(f"{source}: only a directory or s3://bucket[/prefix] can be validated")
    root = Path(source)
    if not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    return validate(LocalStore(root), keyring_for(root, public_keys, lake), filters,
                    known_hashes=known_hashes, bucket=bucket)


def row_status(result: LogFileResult) -> str:
    return ROW_STATUS.get(result.status, "unverifiable")


def record(lake: Lake, root: str | os.PathLike[str], report: ValidationReport,
           object_base: str | None = None) -> int:
    """Store per-file verdicts and problems; rows of those files show them from now on.

    A row's source_object is `root/key` for a local tree, `object_base + key` for S3 (the store's
    keys are full bucket keys, the rows' sources `s3://bucket/key`)."""
    now = datetime.now(UTC).isoformat()
    if object_base is None and source_form(root) == "s3":
        from .s3 import parse_s3_uri

        object_base = f"s3://{parse_s3_uri(str(root))[0]}/"

    def uri(key: str) -> str:
        if key.startswith("s3://"):  # S3Store keys are already the rows' source_object
            return key
        return object_base + key if object_base is not None else str(Path(root) / key)

    files = [(uri(r.key), row_status(r), r.status, r.digest, r.sha256, r.detail, now)
             for r in report.log_files if r.status != "missing"]
    problems = [(p.kind, p.object, p.account, p.region, p.detail, now) for p in report.problems]
    with lake.state() as db:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT OR REPLACE INTO integrity_files VALUES (?,?,?,?,?,?,?)", files)
        db.execute("DELETE FROM integrity_problems WHERE root = ?", (str(root),))
        db.executemany("INSERT INTO integrity_problems VALUES (?,?,?,?,?,?,?)",
                       [(str(root), *p) for p in problems])
        db.execute("COMMIT")
    return len(files)
