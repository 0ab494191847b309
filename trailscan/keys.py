"""CloudTrail's public keys: load them from `aws cloudtrail list-public-keys` JSON or fetch them
with boto3, cache them in the lake so later runs work offline, and look them up by fingerprint
and validity window (fail closed: a key outside its window verifies nothing).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import SourceError, UsageError

# A digest is signed when it is delivered, shortly after its end time; the AWS CLI asks for the
# keys of [start, end + 2h] for the same reason. A key is usable when its window meets that span.
SIGNING_SLACK = timedelta(hours=2)


@dataclass(frozen=True)
class PublicKey:
    """One CloudTrail signing key; `start`/`end` None means the window is open on that side."""

    fingerprint: str
    der: bytes
    key: RSAPublicKey = field(repr=False, compare=False)
    start: datetime | None = None
    end: datetime | None = None

    def usable_for(self, digest_end: datetime) -> bool:
        """True when the key was valid at some moment the digest could have been signed."""
        if self.start is not None and self.start > digest_end + SIGNING_SLACK:
            return False
        return not (self.end is not None and self.end < digest_end)


def load_rsa_der(der: bytes) -> RSAPublicKey:
    """Load DER in SubjectPublicKeyInfo or PKCS#1 RSAPublicKey form; raise ValueError otherwise."""
    try:
        try:
            key = serialization.load_der_public_key(der)
        except ValueError:
            # Older `cryptography` releases read only SPKI from DER; PEM "RSA PUBLIC KEY" is PKCS#1.
            pem = b"-----BEGIN RSA PUBLIC KEY-----\n"
            pem += base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
            key = serialization.load_pem_public_key(pem)
    except UnsupportedAlgorithm as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"not an RSA key ({type(key).__name__})")
    return key


def _time(value: Any) -> datetime | None:
    """The CLI prints ISO strings or epoch seconds (cli_timestamp_format); boto3 gives datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                value = float(value)  # epoch seconds as text
            except ValueError:
                raise ValueError(f"not a time: {value!r}") from None
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"time out of range: {value!r}") from None
    raise ValueError(f"not a time: {value!r}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_from_entry(entry: Any, *, raw_der: bool = False) -> PublicKey:
    """One `PublicKeyList[]` item; `Value` is base64 text (CLI JSON) or raw DER bytes (boto3)."""
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    fingerprint, value = entry.get("Fingerprint"), entry.get("Value")
    if not isinstance(fingerprint, str) or not fingerprint:
        raise ValueError("no Fingerprint")
    if raw_der and isinstance(value, bytes | bytearray):
        der = bytes(value)
    elif isinstance(value, str):
        try:
            der = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(f"key {fingerprint}: Value is not base64") from None
    else:
        raise ValueError(f"key {fingerprint}: no Value")
    try:
        rsa_key = load_rsa_der(der)
    except ValueError as exc:
        raise ValueError(f"key {fingerprint}: not an RSA public key in DER ({exc})") from None
    start, end = _time(entry.get("ValidityStartTime")), _time(entry.get("ValidityEndTime"))
    return PublicKey(fingerprint, der, rsa_key, start, end)


def parse_public_keys(doc: Any, source: str = "public keys") -> list[PublicKey]:
    """Parse the `list-public-keys` JSON shape (a bare list of entries is accepted too)."""
    entries = doc.get("PublicKeyList") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise UsageError(f"{source}: expected a JSON object with a PublicKeyList array")
    keys = []
    for number, entry in enumerate(entries):
        try:
            keys.append(key_from_entry(entry))
        except ValueError as exc:
            raise UsageError(f"{source}: PublicKeyList[{number}]: {exc}") from None
    return keys


def load_public_keys_file(path: str | Path) -> list[PublicKey]:
    """Read the JSON printed by `aws cloudtrail list-public-keys` (also our cache format)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read public keys ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"{path}: public keys file is not JSON ({exc})") from None
    return parse_public_keys(doc, str(path))


def load_cache(path: str | Path) -> list[PublicKey]:
    """The lake's key cache; an absent cache is empty, a corrupt one is an error (never ignored)."""
    return load_public_keys_file(path) if Path(path).exists() else []


def save_cache(path: str | Path, keys: Iterable[PublicKey]) -> None:
    """Write keys in the `list-public-keys` JSON shape, atomically (rename over the old cache)."""
    unique = {(k.fingerprint, k.der): k for k in keys}
    doc = {
        "PublicKeyList": [
            {
                "Value": base64.b64encode(k.der).decode("ascii"),
                "ValidityStartTime": _iso(k.start),
                "ValidityEndTime": _iso(k.end),
                "Fingerprint": k.fingerprint,
            }
            for k in sorted(unique.values(), key=lambda k: (_iso(k.start) or "", k.fingerprint))
        ]
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def fetch_public_keys(
    region: str, start: datetime, end: datetime, session: Any = None
) -> list[PublicKey]:
    """`cloudtrail:ListPublicKeys` for one region over [start, end + 2h], all pages."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = (session or boto3.session.Session()).client("cloudtrail", region_name=region)
    args: dict[str, Any] = {"StartTime": start, "EndTime": end + SIGNING_SLACK}
    keys: list[PublicKey] = []
    try:
        while True:
            page = client.list_public_keys(**args)
            for entry in page.get("PublicKeyList", []):
                try:
                    keys.append(key_from_entry(entry, raw_der=True))
                except ValueError as exc:
                    raise SourceError(f"ListPublicKeys in {region}: {exc}") from None
            token = page.get("NextToken")
            if not token:
                return keys
            args["NextToken"] = token
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"cannot list CloudTrail public keys in {region}: {exc}") from None


Fetcher = Callable[[str, datetime, datetime], Iterable[PublicKey]]


class KeyRing:
    """Public keys by fingerprint; optionally fetches unknown fingerprints and saves a cache."""

    def __init__(
        self,
        keys: Iterable[PublicKey] = (),
        *,
        fetch: Fetcher | None = None,
        cache_path: str | Path | None = None,
    ) -> None:
        self._by_fingerprint: dict[str, list[PublicKey]] = {}
        self._fetch = fetch
        self._cache_path = cache_path
        self._fetched: set[str] = set()
        self.add(keys)

    def add(self, keys: Iterable[PublicKey]) -> None:
        for key in keys:
            known = self._by_fingerprint.setdefault(key.fingerprint, [])
            if key not in known:
                known.append(key)

    @property
    def keys(self) -> list[PublicKey]:
        return [k for ks in self._by_fingerprint.values() for k in ks]

    def prepare(
        self, region: str, start: datetime, end: datetime, fingerprints: Iterable[str]
    ) -> None:
        """Fetch the region's keys once when a needed fingerprint is unknown; update the cache."""
        missing = set(fingerprints) - self._by_fingerprint.keys()
        if not missing or self._fetch is None or region in self._fetched:
            return
        self._fetched.add(region)
        self.add(self._fetch(region, start, end))
        if self._cache_path is not None:
            save_cache(self._cache_path, self.keys)

    def find(self, fingerprint: str, at: datetime) -> PublicKey | None:
        """The key with this fingerprint usable for a digest ending at `at`, else None."""
        for key in self._by_fingerprint.get(fingerprint, ()):
            if key.usable_for(at):
                return key
        return None

    def explain(self, fingerprint: str, at: datetime) -> str:
        """Why `find` returned None, in one line."""
        candidates = self._by_fingerprint.get(fingerprint)
        if not candidates:
            return f"public key not found for fingerprint {fingerprint}"
        windows = ", ".join(f"{_iso(k.start) or '-'} to {_iso(k.end) or '-'}" for k in candidates)
        return (
            f"public key {fingerprint} is outside its validity window ({windows}) "
            f"for a digest ending {_iso(at)}"
        )


def online_keyring(cache_path: str | Path | None, session: Any = None) -> KeyRing:
    """Cached keys first; fingerprints missing from the cache are fetched with boto3."""

    def fetch(region: str, start: datetime, end: datetime) -> list[PublicKey]:
        return fetch_public_keys(region, start, end, session)

    cached = load_cache(cache_path) if cache_path is not None else []
    return KeyRing(cached, fetch=fetch, cache_path=cache_path)
