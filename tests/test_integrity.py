"""Digest-chain validation over real gzip files and real RSA signatures built here (no synth)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailscan import integrity, keys
from trailscan.errors import UsageError
from trailscan.integrity import Gap, LocalStore, format_text, validate
from trailscan.keys import KeyRing, load_public_keys_file
from trailscan.sources import Filters

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
H = timedelta(hours=1)
BUCKET = "trail-bucket"
A1, A2 = "111111111111", "222222222222"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def der_of(key: rsa.RSAPrivateKey, fmt: serialization.PublicFormat) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, fmt)


def keys_doc(entries: list[tuple[bytes, Any, Any]]) -> dict:
    return {"PublicKeyList": [
        {"Value": base64.b64encode(der).decode(), "ValidityStartTime": start,
         "ValidityEndTime": end, "Fingerprint": hashlib.md5(der).hexdigest()}
        for der, start, end in entries
    ]}


@dataclass
class Digest:
    key: str  # S3 key, with the trail prefix
    path: Path
    doc: dict
    raw: bytes
    signature: str


class Bucket:
    """Writes what CloudTrail would deliver: log files, hourly signed digests, sidecars."""

    def __init__(self, root: Path, key: rsa.RSAPrivateKey, prefix: str = "",
                 copy_prefix: bool = True, fmt=serialization.PublicFormat.PKCS1) -> None:
        self.root, self.key, self.prefix, self.copy_prefix = root, key, prefix, copy_prefix
        self.der = der_of(key, fmt)
        self.fingerprint = hashlib.md5(self.der).hexdigest()
        self.rng = random.Random(7)
        self.logs: dict[str, bytes] = {}  # s3 key -> uncompressed bytes

    def path(self, s3_key: str) -> Path:
        rel = s3_key if self.copy_prefix else s3_key[len(self.prefix):]
        return self.root / rel

    def keys_file(self, start: Any = "2020-01-01T00:00:00Z", end: Any = None) -> Path:
        path = self.root.parent / f"keys-{self.root.name}.json"
        path.write_text(json.dumps(keys_doc([(self.der, start, end)])))
        return path

    def ring(self) -> KeyRing:
        return KeyRing(load_public_keys_file(self.keys_file()))

    def write_log(self, account: str, region: str, when: datetime, org: str | None = None,
                  listed: bool = True) -> tuple[str, str]:
        suffix = "".join(self.rng.choice("abcdefghijkLMNOP0123456789") for _ in range(16))
        org_part = f"{org}/" if org else ""
        key = (f"{self.prefix}AWSLogs/{org_part}{account}/CloudTrail/{region}/"
               f"{when:%Y/%m/%d}/{account}_CloudTrail_{region}_{when:%Y%m%dT%H%MZ}_{suffix}.json.gz")
        event = {"eventVersion": "1.08", "eventID": f"{suffix}", "eventTime": iso(when),
                 "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com",
                 "awsRegion": region, "recipientAccountId": account}
        text = json.dumps({"Records": [event]}).encode()
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(text))
        self.logs[key] = text
        return key, hashlib.sha256(text).hexdigest()

    def digest_key(self, account: str, region: str, end: datetime, trail: str, home: str,
                   org: str | None, backfill: bool) -> str:
        org_part = f"{org}/" if org else ""
        tail = "_backfill" if backfill else ""
        return (f"{self.prefix}AWSLogs/{org_part}{account}/CloudTrail-Digest/{region}/"
                f"{end:%Y/%m/%d}/{account}_CloudTrail-Digest_{region}_{trail}_{home}_"
                f"{end:%Y%m%dT%H%M%SZ}{tail}.json.gz")

    def sign(self, doc: dict, raw: bytes, key: rsa.RSAPrivateKey | None = None) -> str:
        prev = doc["previousDigestSignature"]
        text = (f"{doc['digestEndTime']}\n{doc['digestS3Bucket']}/{doc['digestS3Object']}\n"
                f"{hashlib.sha256(raw).hexdigest()}\n{'null' if prev is None else prev}")
        return (key or self.key).sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()

    def write(self, key: str, doc: dict, *, sidecar: bool = True, resign: bool = True,
              signature: str | None = None) -> Digest:
        raw = json.dumps(doc, separators=(",", ":")).replace("/", "\\/").encode()
        signature = signature or (self.sign(doc, raw) if resign else "")
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(raw))
        meta = path.with_name(path.name + ".metadata.json")
        if sidecar:
            meta.write_text(json.dumps({"signature": signature,
                                        "signature-algorithm": "SHA256withRSA"}))
        elif meta.exists():
            meta.unlink()
        return Digest(key, path, doc, raw, signature)

    def chain(self, account: str, region: str, *, start: datetime = T0, hours: int = 3,
              trail: str = "main", home: str = "us-east-1", org: str | None = None,
              backfill: bool = False, logs: int = 2, sidecars: str = "all",
              bucket: str = BUCKET) -> list[Digest]:
        """`hours` hourly digests over `logs` log files per hour; sidecars: all|newest|none."""
        out: list[Digest] = []
        for i in range(hours):
            s, e = start + i * H, start + (i + 1) * H
            files = [self.write_log(account, region, s + timedelta(minutes=5 + 20 * j), org)
                     for j in range(logs)]
            key = self.digest_key(account, region, e, trail, home, org, backfill)
            prev = out[-1] if out else None
            doc = {
                "awsAccountId": account, "digestStartTime": iso(s), "digestEndTime": iso(e),
                "digestS3Bucket": bucket, "digestS3Object": key,
                "digestPublicKeyFingerprint": self.fingerprint,
                "digestSignatureAlgorithm": "SHA256withRSA",
                "newestEventTime": iso(s) if files else None,
                "oldestEventTime": iso(s) if files else None,
                "previousDigestS3Bucket": bucket if prev else None,
                "previousDigestS3Object": prev.key if prev else None,
                "previousDigestHashValue": hashlib.sha256(prev.raw).hexdigest() if prev else None,
                "previousDigestHashAlgorithm": "SHA-256" if prev else None,
                "previousDigestSignature": prev.signature if prev else None,
                "logFiles": [{"s3Bucket": bucket, "s3Object": k, "hashValue": h,
                              "hashAlgorithm": "SHA-256", "newestEventTime": iso(s),
                              "oldestEventTime": iso(s)} for k, h in files],
            }
            newest = i == hours - 1
            sidecar = sidecars == "all" or (sidecars == "newest" and newest)
            out.append(self.write(key, doc, sidecar=sidecar))
        return out

    def rewrite(self, digest: Digest, change, *, resign: bool = False) -> Digest:
        """Edit a delivered digest; `resign` simulates a genuine digest with that content."""
        doc = json.loads(json.dumps(digest.doc))
        change(doc)
        return self.write(digest.key, doc, resign=resign,
                          signature=None if resign else digest.signature)


@pytest.fixture()
def bucket(tmp_path: Path, private_key) -> Bucket:
    return Bucket(tmp_path / "copy", private_key)


def run(b: Bucket, **kwargs) -> integrity.ValidationReport:
    ring = kwargs.pop("ring", None) or b.ring()
    return validate(LocalStore(b.root), ring, **kwargs)


def kinds(report) -> Counter:
    return Counter(p.kind for p in report.problems)


def objects(report, kind: str) -> list[str]:
    return sorted(p.object for p in report.problems if p.kind == kind)


def remove(digest: Digest) -> None:
    digest.path.unlink()
    digest.path.with_name(digest.path.name + ".metadata.json").unlink(missing_ok=True)


# --- an independent implementation of the check ------------------------------------------------


def independent_verify(digest_gz: Path, keys_json: Path) -> bool:
    """Written from the AWS documentation only, sharing no code with trailscan."""
    raw = gzip.decompress(digest_gz.read_bytes())
    doc = json.loads(raw)
    meta = json.loads(digest_gz.with_name(digest_gz.name + ".metadata.json").read_text())
    assert meta["signature-algorithm"] == "SHA256withRSA"
    entry = next(e for e in json.loads(keys_json.read_text())["PublicKeyList"]
                 if e["Fingerprint"] == doc["digestPublicKeyFingerprint"])
    public = serialization.load_der_public_key(base64.b64decode(entry["Value"]))
    previous = doc["previousDigestSignature"] or "null"
    message = "\n".join([doc["digestEndTime"], doc["digestS3Bucket"] + "/" + doc["digestS3Object"],
                         hashlib.sha256(raw).hexdigest(), previous]).encode("utf-8")
    try:
        public.verify(bytes.fromhex(meta["signature"]), message, padding.PKCS1v15(),
                      hashes.SHA256())
    except Exception:
        return False
    return True


def test_independent_implementation_agrees(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    keys_json = bucket.keys_file()
    assert all(independent_verify(d.path, keys_json) for d in chain)
    bucket.rewrite(chain[1], lambda doc: doc["logFiles"][0].update(hashValue="0" * 64))
    assert [independent_verify(d.path, keys_json) for d in chain] == [True, False, True]
    report = run(bucket)
    by_key = {d.key: d.status for d in report.digests}
    assert [by_key[d.key] for d in chain] == ["valid", "invalid", "valid"]
    sha = hashlib.sha256(chain[0].raw).hexdigest()
    assert integrity.string_to_sign(chain[0].doc, sha) == \
        f"{iso(T0 + H)}\n{BUCKET}/{chain[0].key}\n{sha}\nnull".encode()


# --- clean trees --------------------------------------------------------------------------------


def test_clean_multi_account_org_tree_is_valid(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", org="o-abcd1234", hours=3)
    bucket.chain(A1, "eu-west-1", org="o-abcd1234", hours=2)
    bucket.chain(A2, "us-east-1", org="o-abcd1234", hours=4, logs=1)
    report = run(bucket)
    assert report.problems == [] and report.gaps == []
    assert report.valid
    doc = report.to_json()
    assert doc == {"valid": True,
                   "digests": {"valid": 9, "invalid": 0, "unverifiable": 0},
                   "log_files": {"valid": 14, "invalid": 0, "missing": 0, "unlisted": 0,
                                 "unverifiable": 0},
                   "problems": [], "gaps": []}
    assert len({d.chain for d in report.digests}) == 3
    text = format_text(report, verbose=True)
    assert "9/9 digest files valid" in text and "14/14 log files valid" in text
    assert f"Results found for {iso(T0)} to {iso(T0 + 4 * H)}:" in text
    assert text.count("Digest file\t") == 9 and "\tvalid" in text


def test_spki_keys_and_prefixed_bucket_copied_without_prefix(tmp_path, private_key) -> None:
    b = Bucket(tmp_path / "copy", private_key, prefix="trails/prod/", copy_prefix=False,
               fmt=serialization.PublicFormat.SubjectPublicKeyInfo)
    b.chain(A1, "us-east-1", hours=2)
    assert not (tmp_path / "copy" / "trails").exists()
    report = run(b)
    assert report.valid, report.problems
    c = Bucket(tmp_path / "copy2", private_key, prefix="trails/prod/")
    c.chain(A1, "us-east-1", hours=2)
    assert run(c).valid


def test_newest_signature_anchors_the_chain(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=4, sidecars="newest")
    report = run(bucket)
    assert report.valid, report.problems
    assert report.digest_counts == {"valid": 4, "invalid": 0, "unverifiable": 0}


def test_unanchored_chain_is_unverifiable_and_not_valid(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3, sidecars="none")
    report = run(bucket)
    assert report.digest_counts == {"valid": 0, "invalid": 0, "unverifiable": 3}
    assert report.log_file_counts["unverifiable"] == 6 and report.log_file_counts["valid"] == 0
    assert objects(report, "digest_signature_missing") == [str(chain[-1].key)]
    assert not report.valid
    text = format_text(report, verbose=True)
    assert text.count("UNVERIFIABLE") == 3 + 6 and "No valid digests found in range" in text


def test_missing_sidecar_on_newest_only(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    chain[-1].path.with_name(chain[-1].path.name + ".metadata.json").unlink()
    report = run(bucket)
    assert [d.status for d in report.digests] == ["valid", "valid", "unverifiable"]
    assert kinds(report) == Counter({"digest_signature_missing": 1})
    assert not report.valid


# --- each problem alone -------------------------------------------------------------------------


def test_modified_log_file(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1")
    target = chain[1].doc["logFiles"][0]["s3Object"]
    bucket.path(target).write_bytes(gzip.compress(bucket.logs[target].replace(b"List", b"Lost")))
    report = run(bucket)
    assert kinds(report) == Counter({"log_file_modified": 1})
    assert objects(report, "log_file_modified") == [target]
    assert report.log_file_counts == {"valid": 5, "invalid": 1, "missing": 0, "unlisted": 0,
                                      "unverifiable": 0}
    assert f"Log file\t{target}\tINVALID: hash value doesn't match" in format_text(report)


def test_missing_log_file(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1")
    target = chain[0].doc["logFiles"][1]["s3Object"]
    bucket.path(target).unlink()
    report = run(bucket)
    assert kinds(report) == Counter({"log_file_missing": 1})
    assert objects(report, "log_file_missing") == [f"s3://{BUCKET}/{target}"]
    assert report.log_file_counts["missing"] == 1


def test_log_file_with_trailing_data(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1")
    target = chain[2].doc["logFiles"][0]["s3Object"]
    with open(bucket.path(target), "ab") as handle:
        handle.write(b"appended")
    report = run(bucket)
    assert kinds(report) == Counter({"log_file_trailing_data": 1})


def test_unlisted_log_file(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1")
    planted, _ = bucket.write_log(A1, "us-east-1", T0 + H + timedelta(minutes=40))
    report = run(bucket)
    assert kinds(report) == Counter({"log_file_unlisted": 1})
    assert objects(report, "log_file_unlisted") == [planted]
    assert report.log_file_counts["unlisted"] == 1


def test_log_files_at_the_edges_are_not_unlisted(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    bucket.write_log(A1, "us-east-1", T0 + 2 * H - timedelta(minutes=3))  # in the next digest
    bucket.write_log(A1, "us-east-1", T0 + 2 * H + timedelta(minutes=50))  # not digested yet
    assert run(bucket).valid


def test_tampered_digest_content(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=4)
    bucket.rewrite(chain[1], lambda doc: doc["logFiles"][0].update(hashValue="1" * 64))
    report = run(bucket)
    assert kinds(report) == Counter({"digest_signature_invalid": 1, "digest_chain_broken": 1,
                                     "log_file_modified": 1})
    assert objects(report, "digest_signature_invalid") == [chain[1].key]
    assert objects(report, "digest_chain_broken") == [chain[2].key]
    broken = next(p for p in report.problems if p.kind == "digest_chain_broken")
    assert "previousDigestHashValue" in broken.detail


def test_tampered_unsigned_middle_digest_fails_through_successor(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3, sidecars="newest")
    bucket.write(chain[1].key, {**chain[1].doc, "newestEventTime": iso(T0)}, sidecar=False,
                 resign=False)
    report = run(bucket)
    statuses = {d.key: d.status for d in report.digests}
    assert statuses[chain[1].key] == "invalid" and statuses[chain[0].key] == "unverifiable"
    assert kinds(report) == Counter({"digest_signature_invalid": 1, "digest_chain_broken": 1})


def test_previous_signature_mismatch(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    bucket.rewrite(chain[2], lambda doc: doc.update(previousDigestSignature="ab" * 256),
                   resign=True)
    report = run(bucket)
    assert kinds(report) == Counter({"digest_chain_broken": 1})
    assert "previousDigestSignature" in report.problems[0].detail
    assert report.problems[0].object == chain[2].key


def test_unknown_fingerprint(bucket: Bucket, other_key) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    path = bucket.root.parent / "other.json"
    path.write_text(json.dumps(keys_doc([(der_of(other_key, serialization.PublicFormat.PKCS1),
                                          None, None)])))
    report = run(bucket, ring=KeyRing(load_public_keys_file(path)))
    assert kinds(report) == Counter({"public_key_not_found": 2})
    assert report.digest_counts["invalid"] == 2
    assert "public key not found for fingerprint" in report.problems[0].detail


def test_key_outside_validity_window(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    path = bucket.keys_file("2020-01-01T00:00:00Z", "2024-02-01T00:00:00Z")
    report = run(bucket, ring=KeyRing(load_public_keys_file(path)))
    assert kinds(report) == Counter({"public_key_not_found": 2})
    assert "outside its validity window" in report.problems[0].detail
    later = bucket.keys_file("2024-03-02T00:00:00Z", None)
    assert kinds(run(bucket, ring=KeyRing(load_public_keys_file(later)))) == \
        Counter({"public_key_not_found": 2})


def test_wrong_key_signature_is_invalid(bucket: Bucket, other_key) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2)
    forged = bucket.sign(chain[1].doc, chain[1].raw, other_key)
    bucket.write(chain[1].key, chain[1].doc, signature=forged)
    report = run(bucket)
    assert kinds(report) == Counter({"digest_signature_invalid": 1})
    assert "signature verification failed" in report.problems[0].detail


@pytest.mark.parametrize("meta, expected", [
    ({"signature": "zz", "signature-algorithm": "SHA256withRSA"}, "not hexadecimal"),
    ({"signature": "ab", "signature-algorithm": "SHA1withRSA"}, "unsupported signature"),
    ("not json", "unreadable signature metadata"),
])
def test_bad_signature_metadata(bucket: Bucket, meta, expected) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2)
    sidecar = chain[1].path.with_name(chain[1].path.name + ".metadata.json")
    sidecar.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    report = run(bucket)
    assert kinds(report) == Counter({"digest_signature_invalid": 1})
    assert expected in report.problems[0].detail
    assert report.digest_counts == {"valid": 1, "invalid": 1, "unverifiable": 0}


def test_unknown_algorithm_in_digest(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2)
    bucket.rewrite(chain[1], lambda doc: doc.update(digestSignatureAlgorithm="SHA512withRSA"),
                   resign=True)
    assert kinds(run(bucket)) == Counter({"digest_signature_invalid": 1})


def test_digest_moved_to_another_key(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    moved = chain[1].path.with_name(chain[1].path.name.replace("T120000Z", "T123000Z"))
    shutil.move(chain[1].path, moved)
    report = run(bucket)
    assert kinds(report) == Counter({"digest_location_mismatch": 1, "digest_missing": 1})
    assert objects(report, "digest_missing") == [f"s3://{BUCKET}/{chain[1].key}"]
    mismatch = next(p for p in report.problems if p.kind == "digest_location_mismatch")
    assert mismatch.object.endswith("T123000Z.json.gz") and chain[1].key in mismatch.detail


@pytest.mark.parametrize("field, value", [("digestS3Bucket", "other-bucket"),
                                          ("awsAccountId", "999999999999")])
def test_digest_claiming_another_bucket_or_account(bucket: Bucket, field, value) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    bucket.rewrite(chain[1], lambda doc: doc.update({field: value}), resign=True)
    report = run(bucket)
    assert kinds(report) == Counter({"digest_location_mismatch": 1})
    assert value in report.problems[0].detail
    assert not report.valid


def test_expected_bucket_is_enforced(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    assert run(bucket, bucket=BUCKET).valid
    assert kinds(run(bucket, bucket="elsewhere")) == Counter({"digest_location_mismatch": 2})


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b"{}"])
def test_malformed_digest(bucket: Bucket, content: bytes) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    chain[1].path.write_bytes(gzip.compress(content))
    report = run(bucket)
    assert kinds(report) == Counter({"digest_malformed": 1, "log_file_unlisted": 2})
    assert objects(report, "digest_malformed") == [chain[1].key]


def test_digest_missing_a_required_field(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2)
    bucket.rewrite(chain[0], lambda doc: doc.pop("digestEndTime"), resign=False)
    report = run(bucket)
    assert kinds(report)["digest_malformed"] == 1
    assert "digestEndTime" in report.problems[0].detail


def test_truncated_gzip_digest(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2)
    chain[0].path.write_bytes(chain[0].path.read_bytes()[:30])
    assert kinds(run(bucket))["digest_malformed"] == 1


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
FIELDS = ["awsAccountId", "digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object",
          "digestPublicKeyFingerprint", "digestSignatureAlgorithm", "previousDigestS3Bucket",
          "previousDigestS3Object", "previousDigestHashValue", "previousDigestHashAlgorithm",
          "previousDigestSignature", "logFiles"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FIELDS), value=JSON, resign=st.booleans())
def test_any_field_value_is_a_problem_never_an_exception(tmp_path_factory, private_key, name,
                                                        value, resign) -> None:
    b = Bucket(tmp_path_factory.mktemp("fuzz") / "copy", private_key)
    chain = b.chain(A1, "us-east-1", hours=2, logs=1)
    b.rewrite(chain[1], lambda doc: doc.update({name: value}), resign=resign)
    report = run(b)
    statuses = {d.key: d.status for d in report.digests}
    if value != chain[1].doc[name] and not resign:
        assert statuses.get(chain[1].key) != "valid"
        assert not report.valid


def test_sidecar_in_head_object_shape_and_odd_names(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=2, sidecars="newest")
    sidecar = chain[1].path.with_name(chain[1].path.name + ".metadata.json")
    sidecar.write_text(json.dumps({"ContentType": "application/json",
                                   "Metadata": json.loads(sidecar.read_text())}))
    assert run(bucket).valid
    odd = bucket.path(chain[0].doc["logFiles"][0]["s3Object"]).with_name(f"{A1}_odd.json.gz")
    odd.write_bytes(gzip.compress(b"{}"))  # no time in its name: placed by its folder's date
    stray = chain[0].path.with_name("not-a-digest-name.json.gz")
    stray.write_bytes(gzip.compress(b"{}"))
    report = run(bucket)
    assert kinds(report) == Counter({"digest_malformed": 1, "gap": 1})


def test_key_window_allows_signing_at_delivery(private_key) -> None:
    der = der_of(private_key, serialization.PublicFormat.PKCS1)
    end = datetime(2024, 3, 1, 12, tzinfo=UTC)
    key = keys.PublicKey("f", der, private_key.public_key(), end + timedelta(minutes=30), None)
    assert key.usable_for(end)  # rotated in just before the digest was delivered
    assert not key.usable_for(end - 3 * H)
    old = keys.PublicKey("f", der, private_key.public_key(), None, end - timedelta(seconds=1))
    assert not old.usable_for(end)


# --- deleted digests and gaps -------------------------------------------------------------------


def test_deleted_middle_digest(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=4)
    remove(chain[1])
    report = run(bucket)
    assert objects(report, "digest_missing") == [f"s3://{BUCKET}/{chain[1].key}"]
    # its log files are now vouched for by no digest
    assert kinds(report) == Counter({"digest_missing": 1, "log_file_unlisted": 2})
    assert report.gaps == []


def test_two_consecutive_deleted_digests_are_both_reported(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=5)
    remove(chain[1])
    remove(chain[2])
    report = run(bucket)
    assert objects(report, "digest_missing") == sorted(
        f"s3://{BUCKET}/{d.key}" for d in chain[1:3])
    assert report.digest_counts == {"valid": 3, "invalid": 0, "unverifiable": 0}


def test_deleted_digests_with_unsigned_predecessor(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=4, sidecars="newest")
    remove(chain[2])
    report = run(bucket)
    statuses = [d.status for d in report.digests]
    assert statuses == ["unverifiable", "unverifiable", "valid"]
    assert kinds(report) == Counter({"digest_missing": 1, "log_file_unlisted": 2})


def test_deleted_newest_digest(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=4)
    # delivered after the newest digest's period; its own digest is not due yet
    for minutes in (5, 25, 45):
        bucket.write_log(A1, "us-east-1", T0 + 4 * H + timedelta(minutes=minutes))
    assert run(bucket).valid
    remove(chain[-1])
    report = run(bucket)
    assert kinds(report) == Counter({"digest_missing": 1})
    assert objects(report, "digest_missing") == [f"s3://{BUCKET}/{chain[-1].key}"]
    assert "newest digest" in report.problems[0].detail


def test_gap_where_logging_was_off(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    later = bucket.chain(A1, "us-east-1", start=T0 + 5 * H, hours=2)
    report = run(bucket)
    assert report.gaps == [Gap(A1, "us-east-1", T0 + 2 * H, T0 + 5 * H)]
    assert kinds(report) == Counter({"gap": 1})
    assert objects(report, "gap") == [later[0].key]
    assert report.to_json()["gaps"] == [{"account": A1, "region": "us-east-1",
                                         "start": iso(T0 + 2 * H), "end": iso(T0 + 5 * H)}]
    assert not report.valid


def test_linked_digest_starting_late_is_a_gap(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=3)
    late = T0 + 2 * H + timedelta(minutes=20)
    bucket.rewrite(chain[2], lambda doc: doc.update(digestStartTime=iso(late)), resign=True)
    report = run(bucket)
    assert report.gaps == [Gap(A1, "us-east-1", T0 + 2 * H, late)]
    assert kinds(report) == Counter({"gap": 1})


def test_validation_off_leaves_uncovered_log_files(bucket: Bucket) -> None:
    bucket.write_log(A1, "us-east-1", T0 - H)
    bucket.chain(A1, "us-east-1", hours=2)
    bucket.write_log(A2, "us-east-1", T0)  # an account with no digest at all
    report = run(bucket)
    assert kinds(report) == Counter({"gap": 2})
    assert Gap(A1, "us-east-1", T0 - H, T0) in report.gaps


def test_backfill_chain_fills_a_gap(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    bucket.chain(A1, "us-east-1", start=T0 + 2 * H, hours=2, backfill=True)
    bucket.chain(A1, "us-east-1", start=T0 + 4 * H, hours=1)
    report = run(bucket)
    assert report.valid, report.problems
    assert report.digest_counts["valid"] == 5
    assert sorted({d.chain for d in report.digests}) == [
        f"AWSLogs/{A1}/us-east-1/main", f"AWSLogs/{A1}/us-east-1/main#backfill"]


# --- combined -----------------------------------------------------------------------------------


def test_combined_tampers_are_all_reported(bucket: Bucket) -> None:
    a = bucket.chain(A1, "us-east-1", hours=4)
    b = bucket.chain(A2, "eu-west-1", hours=5, org="o-zzzz9999")
    c = bucket.chain(A1, "ap-south-1", hours=3)
    modified = a[0].doc["logFiles"][0]["s3Object"]
    bucket.path(modified).write_bytes(gzip.compress(b"{}"))
    missing = a[3].doc["logFiles"][1]["s3Object"]
    bucket.path(missing).unlink()
    trailing = b[0].doc["logFiles"][0]["s3Object"]
    with open(bucket.path(trailing), "ab") as handle:
        handle.write(b"\0\0")
    bucket.write_log(A2, "eu-west-1", T0 + 2 * H + timedelta(minutes=33), org="o-zzzz9999")
    remove(b[2])
    remove(b[3])
    bucket.rewrite(c[1], lambda doc: doc.update(digestEndTime=iso(T0 + 2 * H + timedelta(1))))
    report = run(bucket)
    assert kinds(report) == Counter({
        "log_file_modified": 1, "log_file_missing": 1, "log_file_trailing_data": 1,
        "log_file_unlisted": 5,  # the planted file + the 4 of the two deleted digests
        "digest_missing": 2, "digest_signature_invalid": 1, "digest_chain_broken": 1,
    })
    assert not report.valid
    text = format_text(report)
    assert "INVALID: not found" in text and "INVALID: signature verification failed" in text


# --- filters and known hashes -------------------------------------------------------------------


def test_time_and_account_filters(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=5, sidecars="newest")
    bucket.chain(A2, "us-east-1", hours=5)
    since, until = T0 + 2 * H + timedelta(minutes=30), T0 + 3 * H + timedelta(minutes=30)
    report = run(bucket, filters=Filters(since=since, until=until, accounts=frozenset({A1})))
    assert report.valid, report.problems
    assert report.digest_counts["valid"] == 2 and report.log_file_counts["valid"] == 4
    assert {d.key.split("/")[1] for d in report.digests} == {A1}
    assert f"Results requested for {iso(since)} to {iso(until)}" in format_text(report)
    region = run(bucket, filters=Filters(regions=frozenset({"eu-west-1"})))
    assert region.digests == [] and not region.valid
    assert "No digests found" in format_text(region)


def test_problems_outside_the_window_are_not_reported(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=4)
    bucket.path(chain[0].doc["logFiles"][0]["s3Object"]).unlink()
    assert kinds(run(bucket)) == Counter({"log_file_missing": 1})
    assert run(bucket, filters=Filters(since=T0 + 2 * H + timedelta(minutes=1))).valid


class CountingStore(LocalStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read(key)


def test_known_hashes_avoid_reading_log_files(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=2, org="o-abcd1234")
    known = {k: hashlib.sha256(t).hexdigest() for k, t in bucket.logs.items()}
    store = CountingStore(bucket.root)
    report = validate(store, bucket.ring(), known_hashes=known)
    assert report.valid and report.log_file_counts["valid"] == 4
    assert all("CloudTrail-Digest" in key for key in store.reads)
    victim = sorted(known)[0]
    for key in bucket.logs:
        bucket.path(key).unlink()  # hashed during ingest, gone since: not read again
    assert validate(LocalStore(bucket.root), bucket.ring(), known_hashes=known).valid
    wrong = {**known, victim: "f" * 64}
    report = validate(LocalStore(bucket.root), bucket.ring(), known_hashes=wrong)
    assert objects(report, "log_file_modified") == [f"s3://{BUCKET}/{victim}"]


def test_threaded_hashing_matches_serial(bucket: Bucket) -> None:
    chain = bucket.chain(A1, "us-east-1", hours=12, logs=3)
    bucket.path(chain[5].doc["logFiles"][1]["s3Object"]).write_bytes(gzip.compress(b"x"))
    serial = validate(LocalStore(bucket.root), bucket.ring(), workers=1)
    threaded = validate(LocalStore(bucket.root), bucket.ring(), workers=4)
    assert serial == threaded
    assert kinds(threaded) == Counter({"log_file_modified": 1})
    assert threaded.log_file_counts["valid"] == 35
    assert LocalStore(bucket.root).exists(chain[0].key)


def test_each_file_is_read_once(bucket: Bucket) -> None:
    bucket.chain(A1, "us-east-1", hours=3)
    store = CountingStore(bucket.root)
    validate(store, bucket.ring())
    assert len(store.reads) == len(set(store.reads)) == 3 + 6


def test_real_digest_parses(tmp_path: Path) -> None:
    real = Path(__file__).resolve().parents[2] / "shared/corpus/real/real-digest-unsigned.json"
    if not real.exists():
        pytest.skip("shared corpus not available")
    raw = real.read_bytes()
    doc = json.loads(raw)
    path = tmp_path / doc["digestS3Object"]
    path.parent.mkdir(parents=True)
    path.write_bytes(raw)  # stored inflated, as with Content-Encoding: gzip
    report = validate(LocalStore(tmp_path), KeyRing())
    assert [d.status for d in report.digests] == ["unverifiable"]
    assert kinds(report)["digest_signature_missing"] == 1
    assert "digest_malformed" not in kinds(report)
    assert "digest_location_mismatch" not in kinds(report)


# --- keys ---------------------------------------------------------------------------------------


def test_key_files_pkcs1_spki_and_epoch_times(tmp_path: Path, private_key) -> None:
    pkcs1 = der_of(private_key, serialization.PublicFormat.PKCS1)
    spki = der_of(private_key, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(keys_doc([(pkcs1, 1700000000.0, "2030-01-01T00:00:00Z"),
                                         (spki, "2020-01-01T00:00:00+00:00", None)])))
    loaded = load_public_keys_file(path)
    assert [k.der for k in loaded] == [pkcs1, spki]
    assert loaded[0].start == datetime.fromtimestamp(1700000000, UTC)
    assert loaded[0].key.public_numbers() == private_key.public_key().public_numbers()
    ring = KeyRing(loaded)
    assert ring.find(loaded[0].fingerprint, datetime(2025, 1, 1, tzinfo=UTC)) is loaded[0]
    assert ring.find(loaded[0].fingerprint, datetime(2031, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize("doc, message", [
    ({"PublicKeyList": [{"Fingerprint": "x", "Value": "***"}]}, "not base64"),
    ({"PublicKeyList": [{"Fingerprint": "x", "Value": "AAAA"}]}, "not an RSA public key"),
    ({"Keys": []}, "PublicKeyList"),
])
def test_bad_key_files(tmp_path: Path, doc, message) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match=message):
        load_public_keys_file(path)


def test_ec_key_is_refused(tmp_path: Path) -> None:
    der = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = tmp_path / "k.json"
    path.write_text(json.dumps(keys_doc([(der, None, None)])))
    with pytest.raises(UsageError, match="not an RSA"):
        load_public_keys_file(path)


class FakeClient:
    def __init__(self, pages: list[dict]) -> None:
        self.pages, self.calls = pages, []

    def list_public_keys(self, **kwargs):
        self.calls.append(kwargs)
        return self.pages[len(self.calls) - 1]


class FakeSession:
    def __init__(self, client: FakeClient) -> None:
        self._client, self.regions = client, []

    def client(self, service: str, region_name: str) -> FakeClient:
        assert service == "cloudtrail"
        self.regions.append(region_name)
        return self._client


def test_fetch_paginates_and_cache_makes_later_runs_offline(bucket: Bucket, tmp_path) -> None:
    bucket.chain(A1, "us-east-1", hours=2)
    entry = {"Value": bucket.der, "Fingerprint": bucket.fingerprint,
             "ValidityStartTime": datetime(2020, 1, 1, tzinfo=UTC), "ValidityEndTime": None}
    client = FakeClient([{"PublicKeyList": [], "NextToken": "t1"}, {"PublicKeyList": [entry]}])
    session = FakeSession(client)
    cache = tmp_path / "lake" / "public-keys.json"
    ring = keys.online_keyring(cache, session)
    assert run(bucket, ring=ring).valid
    assert session.regions == ["us-east-1"] and len(client.calls) == 2
    assert client.calls[1]["NextToken"] == "t1"
    assert client.calls[0]["EndTime"] - client.calls[0]["StartTime"] >= 3 * H
    assert [k.fingerprint for k in keys.load_cache(cache)] == [bucket.fingerprint]
    offline = keys.online_keyring(cache, FakeSession(FakeClient([])))
    assert run(bucket, ring=offline).valid  # no call: FakeClient([]) would fail


def test_save_and_load_cache_round_trip(tmp_path: Path, private_key) -> None:
    der = der_of(private_key, serialization.PublicFormat.PKCS1)
    original = keys.parse_public_keys(keys_doc([(der, "2021-05-01T00:00:00Z", None)]))
    path = tmp_path / "cache.json"
    assert keys.load_cache(path) == []
    keys.save_cache(path, original + original)
    again = keys.load_cache(path)
    assert again == original
    assert json.loads(path.read_text())["PublicKeyList"][0]["ValidityStartTime"] == \
        "2021-05-01T00:00:00Z"
