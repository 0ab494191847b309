"""Integrity is fail-closed: whatever cannot be proven is a problem and the run is not valid.

Complements test_integrity.py (which covers an unknown fingerprint, a key outside its window on
either side, SHA1withRSA in a sidecar, SHA512withRSA in a digest, and bucket/account claims)
with the remaining ways a check could fail open, and the same through the CLI (exit 1)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import run_cli
from cryptography.hazmat.primitives.asymmetric import rsa
from test_integrity import A1, BUCKET, Bucket, keys_doc, run

from trailscan.keys import KeyRing, PublicKey, load_public_keys_file


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def copy(tmp_path: Path, key) -> Bucket:
    return Bucket(tmp_path / "copy", key)


def kinds(report) -> Counter:
    return Counter(p.kind for p in report.problems)


def _cli(copy: Bucket, *extra: str) -> tuple[int, dict]:
    result = run_cli("validate", copy.root, "--public-keys", copy.keys_file(), "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def test_unknown_algorithm_on_a_digest_vouched_for_by_its_successor(copy: Bucket) -> None:
    """No sidecar of its own: its signature comes from the next digest, but its algorithm is
    still its own claim and must be one trailscan can check."""
    chain = copy.chain(A1, "us-east-1", hours=3, sidecars="newest")
    edited = copy.rewrite(chain[0], lambda d: d.update(digestSignatureAlgorithm="MD5withRSA"),
                          resign=True)
    for i in (1, 2):  # re-link the successors so that only the algorithm is wrong
        prev = edited
        edited = copy.rewrite(chain[i], lambda d, prev=prev: d.update(
            previousDigestHashValue=hashlib.sha256(prev.raw).hexdigest(),
            previousDigestSignature=prev.signature), resign=True)
        _drop_sidecar(prev)
    report = run(copy)
    statuses = {d.key: d.status for d in report.digests}
    assert statuses[chain[1].key] == statuses[chain[2].key] == "valid"  # the chain holds
    assert statuses[chain[0].key] == "invalid"
    assert any("unsupported signature algorithm MD5withRSA" in p.detail
               for p in report.problems)
    assert not report.valid


def _drop_sidecar(digest) -> None:
    digest.path.with_name(digest.path.name + ".metadata.json").unlink()


@pytest.mark.parametrize("algorithm", ["sha256withrsa", "SHA256withRSA ", "", "RSASSA-PSS"])
def test_sidecar_algorithm_must_be_exactly_the_one_checked(copy: Bucket, algorithm) -> None:
    chain = copy.chain(A1, "us-east-1", hours=2)
    sidecar = chain[1].path.with_name(chain[1].path.name + ".metadata.json")
    meta = json.loads(sidecar.read_text()) | {"signature-algorithm": algorithm}
    sidecar.write_text(json.dumps(meta))
    report = run(copy)
    assert kinds(report)["digest_signature_invalid"] == 1
    assert not report.valid


def test_key_with_an_inverted_window_verifies_nothing(copy: Bucket) -> None:
    copy.chain(A1, "us-east-1", hours=2)
    path = copy.keys_file("2024-04-01T00:00:00Z", "2024-02-01T00:00:00Z")
    report = run(copy, ring=KeyRing(load_public_keys_file(path)))
    assert kinds(report) == Counter({"public_key_not_found": 2})
    assert report.digest_counts["valid"] == 0 and not report.valid


def test_fingerprint_fetched_online_but_absent_is_not_found(copy: Bucket, key) -> None:
    """The online key ring asks AWS once; a fingerprint AWS does not list stays unknown."""
    copy.chain(A1, "us-east-1", hours=2)
    asked: list[str] = []

    def fetch(region: str, start: datetime, end: datetime) -> list[PublicKey]:
        asked.append(region)
        return []  # AWS knows no such key

    report = run(copy, ring=KeyRing(fetch=fetch))
    assert asked == ["us-east-1"]
    assert kinds(report) == Counter({"public_key_not_found": 2}) and not report.valid


def test_fingerprint_case_or_spacing_does_not_match(copy: Bucket) -> None:
    chain = copy.chain(A1, "us-east-1", hours=2)
    copy.rewrite(chain[1], lambda d: d.update(
        digestPublicKeyFingerprint=d["digestPublicKeyFingerprint"].upper() + " "), resign=True)
    report = run(copy)
    assert kinds(report)["public_key_not_found"] == 1 and not report.valid


def test_key_valid_only_before_the_digest_with_the_cli(copy: Bucket) -> None:
    copy.chain(A1, "us-east-1", hours=2)
    keys = copy.root.parent / "old-keys.json"
    keys.write_text(json.dumps(keys_doc([(copy.der, "2020-01-01T00:00:00Z",
                                          "2024-01-01T00:00:00Z")])))
    result = run_cli("validate", copy.root, "--public-keys", keys, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["digests"]["valid"] == 0
    assert {p["kind"] for p in report["problems"]} == {"public_key_not_found"}


def test_a_copy_made_of_another_buckets_digests(copy: Bucket) -> None:
    """Every digest (genuinely signed) claims another bucket: the copy agrees with itself, so
    only the expected bucket can tell; `validate --bucket` says it."""
    copy.chain(A1, "us-east-1", hours=2, bucket="attacker-bucket")
    code, report = _cli(copy)
    assert code == 0 and report["valid"]  # nothing to compare with: documented limitation
    code, report = _cli(copy, "--bucket", BUCKET)
    assert code == 1 and not report["valid"]
    problems = Counter(p["kind"] for p in report["problems"])
    assert problems["digest_location_mismatch"] == 2
    assert report["digests"]["valid"] == 0
    code, report = _cli(copy, "--bucket", "attacker-bucket")
    assert code == 0 and report["valid"]


def test_one_digest_claiming_another_bucket_through_the_cli(copy: Bucket) -> None:
    chain = copy.chain(A1, "us-east-1", hours=3)
    copy.rewrite(chain[1], lambda d: d.update(digestS3Bucket="elsewhere"), resign=True)
    code, report = _cli(copy)
    assert code == 1 and not report["valid"]
    assert [p["kind"] for p in report["problems"]].count("digest_location_mismatch") == 1
    assert report["digests"]["valid"] < 3


def test_no_digest_at_all_is_not_valid(tmp_path: Path, copy: Bucket) -> None:
    copy.write_log(A1, "us-east-1", datetime(2024, 3, 1, 10, 5, tzinfo=UTC))
    code, report = _cli(copy)
    assert code == 1 and report["valid"] is False


def test_fifo_and_device_in_a_hostile_copy_are_problems_not_a_hang(copy: Bucket) -> None:
    """A log file replaced by a FIFO, another by a link to /dev/zero, and a FIFO for a digest's
    signature sidecar: validation finishes, reports each, and is not valid."""
    chain = copy.chain(A1, "us-east-1", hours=3, logs=2)
    logs = sorted(p for p in copy.root.rglob("*.json.gz") if "/CloudTrail/" in str(p))
    logs[0].unlink()
    os.mkfifo(logs[0])
    logs[1].unlink()
    logs[1].symlink_to("/dev/zero")
    sidecar = chain[1].path.with_name(chain[1].path.name + ".metadata.json")
    sidecar.unlink()
    os.mkfifo(sidecar)
    result = subprocess.run(
        [sys.executable, "-m", "trailscan.cli", "validate", str(copy.root), "--public-keys",
         str(copy.keys_file()), "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert not report["valid"]
    details = {p["object"]: p["detail"] for p in report["problems"]}
    for path in logs[:2]:
        key = str(path.relative_to(copy.root))
        assert "not a regular file" in details[key], details
    assert report["log_files"]["invalid"] >= 2
    assert any(p["kind"] == "digest_signature_invalid" and p["object"] == chain[1].key
               for p in report["problems"])
