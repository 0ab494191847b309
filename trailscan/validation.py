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

from .errors import UsageError
from .integrity import LocalStore, LogFileResult, ValidationReport, validate
from .keys import KeyRing, load_public_keys_file, online_keyring
from .lake import Lake
from .sources import Filters

SOURCE_KEYS_FILE = "public-keys.json"  # beside a copied trail, as `sample_logs/` ships it
ROW_STATUS = {"valid": "verified", "invalid": "failed", "unlisted": "failed",
              "unverifiable": "unverifiable"}


def keyring_for(source: Path, public_keys: str | os.PathLike[str] | None,
                lake: Lake | None) -> KeyRing:
    """--public-keys FILE, else SOURCE/public-keys.json, else AWS (cached in the lake)."""
    if public_keys is not None:
        return KeyRing(load_public_keys_file(public_keys))
    beside = source / SOURCE_KEYS_FILE
    if beside.is_file():
        return KeyRing(load_public_keys_file(beside))
    cache = lake.meta / "public-keys.json" if lake is not None else None
    return online_keyring(cache)


def validate_source(source: str | os.PathLike[str], *,
                    public_keys: str | os.PathLike[str] | None = None,
                    filters: Filters | None = None, lake: Lake | None = None,
                    known_hashes: Mapping[str, str] | None = None) -> ValidationReport:
    """Validate the digest chains and log files of a local tree."""
    root = Path(source)
    if not root.is_dir():
        raise UsageError(f"not a directory: {root}")
    return validate(LocalStore(root), keyring_for(root, public_keys, lake), filters,
                    known_hashes=known_hashes)


def row_status(result: LogFileResult) -> str:
    return ROW_STATUS.get(result.status, "unverifiable")


def record(lake: Lake, root: str | os.PathLike[str], report: ValidationReport) -> int:
    """Store per-file verdicts and problems; rows of those files show them from now on."""
    now = datetime.now(UTC).isoformat()
    files = [(str(Path(root) / r.key), row_status(r), r.status, r.digest, r.sha256, r.detail, now)
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
