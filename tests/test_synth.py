"""The synthetic trail generator: determinism, AWS layout, a digest chain that an independent
validator accepts, planted attacks that are exactly where the summary says, benchmark shape."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from trailscan.synth import (
    TrailSpec,
    TrailSummary,
    derive_test_key,
    iter_records,
    public_key_fingerprint,
    public_keys_document,
    sign_digest,
    write_bench_trail,
    write_sample_logs,
    write_trail,
)

REAL_DIGEST = Path(__file__).resolve().parents[2] / "shared/corpus/real/real-digest-unsigned.json"
SMALL = TrailSpec(days=0.5, events=400)

_BASE = r"^(?:(?P<prefix>.+)/)?AWSLogs/(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<acct>\d{12})/"
LOG_KEY = re.compile(
    _BASE + r"CloudTrail/(?P<region>[a-z]{2}-[a-z]+-\d)/(?P<y>\d{4})/(?P<m>\d\d)/(?P<d>\d\d)/"
    r"(?P=acct)_CloudTrail_(?P=region)_(?P<ts>(?P=y)(?P=m)(?P=d)T\d{4}Z)_[A-Za-z0-9]{16}\.json\.gz$")
DIGEST_KEY = re.compile(
    _BASE + r"CloudTrail-Digest/(?P<region>[a-z]{2}-[a-z]+-\d)/(?P<y>\d{4})/(?P<m>\d\d)/"
    r"(?P<d>\d\d)/"
    r"(?P=acct)_CloudTrail-Digest_(?P=region)_(?P<trail>[\w-]+)_(?P<home>[a-z]{2}-[a-z]+-\d)_"
    r"(?P<ts>(?P=y)(?P=m)(?P=d)T\d{6}Z)\.json\.gz$")
INSIGHT_KEY = re.compile(
    _BASE + r"CloudTrail-Insight/(?P<region>[a-z]{2}-[a-z]+-\d)/\d{4}/\d\d/\d\d/"
    r"(?P=acct)_CloudTrail-Insight_(?P=region)_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$")
GLOBAL_SOURCES = {"iam.amazonaws.com", "signin.amazonaws.com"}


def rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def log_files(root: Path) -> dict[str, list[dict]]:
    """Key -> records of every log file under root."""
    return {rel(root, p): json.loads(gzip.decompress(p.read_bytes()))["Records"]
            for p in sorted(root.rglob("*.json.gz")) if "/CloudTrail/" in p.as_posix()}


def file_hashes(root: Path) -> dict[str, str]:
    return {rel(root, p): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def key_time(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrailSummary]:
    root = tmp_path_factory.mktemp("sample")
    return root, write_sample_logs(root)


@pytest.fixture(scope="module")
def sample_logs(sample: tuple[Path, TrailSummary]) -> dict[str, list[dict]]:
    return log_files(sample[0])


# --- determinism -----------------------------------------------------------------------------


def test_same_spec_gives_identical_bytes(tmp_path: Path) -> None:
    key = derive_test_key(7)
    first = write_trail(SMALL, tmp_path / "a", signing_key=key)
    second = write_trail(SMALL, tmp_path / "b", signing_key=key)
    assert first == second
    hashes_a, hashes_b = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert hashes_a == hashes_b
    assert len(hashes_a) == first.log_files + 2 * first.digest_files + first.insight_files
    other = write_trail(TrailSpec(seed=8, days=0.5, events=400), tmp_path / "c")
    assert set(file_hashes(tmp_path / "c").values()).isdisjoint(hashes_a.values())
    assert other.events > 0


def test_iter_records_is_what_write_trail_writes(sample: tuple[Path, TrailSummary],
                                                 sample_logs: dict[str, list[dict]]) -> None:
    _, summary = sample
    written = {r["eventID"]: r for recs in sample_logs.values() for r in recs}
    streamed = list(iter_records(TrailSpec()))
    assert len(streamed) == summary.unique_events == len(written)
    assert all(r == written[r["eventID"]] for r in streamed)
    times = [r["eventTime"] for r in streamed]
    assert times == sorted(times)


# --- layout and records ----------------------------------------------------------------------


def test_org_layout_and_record_placement(sample: tuple[Path, TrailSummary],
                                         sample_logs: dict[str, list[dict]]) -> None:
    _, summary = sample
    assert len(sample_logs) == summary.log_files
    assert sum(map(len, sample_logs.values())) == summary.events
    late = 0
    for key, records in sample_logs.items():
        m = LOG_KEY.match(key)
        assert m, key
        assert m["org"] == "o-a1b2c3d4e5" and m["prefix"] is None
        assert 0 < len(records) <= 250
        delivered = key_time(m["ts"])
        for r in records:
            assert r["recipientAccountId"] == m["acct"]
            assert r["awsRegion"] == m["region"]
            if r["eventSource"] in GLOBAL_SOURCES:
                assert m["region"] == "us-east-1"
            if r.get("userIdentity", {}).get("accountId"):
                assert r["userIdentity"]["accountId"] == m["acct"]
            when = parse_time(r["eventTime"])
            assert when < delivered + timedelta(minutes=1), (key, r["eventTime"])
            late += when < delivered - timedelta(minutes=5)
    assert late > 0  # some events arrive in a later file, as in real trails
    sizes = [len(json.dumps(r, separators=(",", ":"))) for recs in sample_logs.values()
             for r in recs]
    assert 1000 <= sum(sizes) / len(sizes) <= 1500


def test_non_org_layout_with_prefix(tmp_path: Path) -> None:
    spec = TrailSpec(org_id=None, prefix="team/trails", days=0.25, events=200, attacks=False,
                     accounts=("123456789012",), regions=("eu-west-1",))
    summary = write_trail(spec, tmp_path)
    logs = log_files(tmp_path)
    assert len(logs) == summary.log_files > 0
    regions = set()
    for key in logs:
        m = LOG_KEY.match(key)
        assert m and m["org"] is None and m["prefix"] == "team/trails"
        assert m["acct"] == "123456789012"
        regions.add(m["region"])
    assert regions == {"eu-west-1", "us-east-1"}  # global services log into us-east-1
    digests = [rel(tmp_path, p) for p in tmp_path.rglob("*.json.gz") if "Digest" in p.name]
    assert digests and all(DIGEST_KEY.match(k)["org"] is None for k in digests)  # type: ignore[index]


def test_records_look_like_cloudtrail(sample_logs: dict[str, list[dict]]) -> None:
    records = [r for recs in sample_logs.values() for r in recs]
    types = Counter(r["userIdentity"].get("type") for r in records)
    assert {"IAMUser", "AssumedRole", "AWSService", "Root"} <= set(types)
    event_types = {r["eventType"] for r in records}
    assert {"AwsApiCall", "AwsServiceEvent", "AwsConsoleSignIn"} <= event_types
    assert {"Management", "Data"} == {r["eventCategory"] for r in records}
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            r["eventID"]) for r in records)
    assert all(isinstance(r["readOnly"], bool) and isinstance(r["managementEvent"], bool)
               for r in records)
    for r in records:
        ident = r["userIdentity"]
        if ident.get("type") == "AssumedRole":
            issuer = ident["sessionContext"]["sessionIssuer"]
            assert ident["arn"].startswith(f"arn:aws:sts::{ident['accountId']}:assumed-role/"
                                           f"{issuer['userName']}/")
            assert ident["accessKeyId"].startswith("ASIA")
            assert ident["sessionContext"]["attributes"]["mfaAuthenticated"] in ("true", "false")
        if r.get("sessionCredentialFromConsole"):
            assert r["sessionCredentialFromConsole"] == "true"
        if r["eventCategory"] == "Data":
            assert {"bytesTransferredIn", "bytesTransferredOut"} <= set(r["additionalEventData"])
            assert {x["type"] for x in r["resources"]} == {"AWS::S3::Object", "AWS::S3::Bucket"}
    # Session attribution: every ASIA key of a user-initiated AssumeRole signs later calls.
    issued = {r["responseElements"]["credentials"]["accessKeyId"] for r in records
              if r["eventName"] == "AssumeRole"}
    used = {r["userIdentity"].get("accessKeyId") for r in records
            if r["userIdentity"].get("type") == "AssumedRole"}
    assert len(issued & used) > 50
    errors = [r for r in records if "errorCode" in r]
    assert errors and {"AccessDenied", "Client.UnauthorizedOperation"} <= {
        r["errorCode"] for r in errors}
    assert all(r["responseElements"] is None for r in errors)


# --- digests: an independent validator -------------------------------------------------------


def test_digest_chains_validate(sample: tuple[Path, TrailSummary],
                                sample_logs: dict[str, list[dict]]) -> None:
    root, summary = sample
    keys = json.loads((root / "public-keys.json").read_text())["PublicKeyList"]
    public = {}
    for k in keys:
        der = base64.b64decode(k["Value"])
        assert k["Fingerprint"] == hashlib.md5(der).hexdigest()
        public[k["Fingerprint"]] = serialization.load_der_public_key(der)
    chains: dict[tuple[str, str], list[tuple[dict, bytes, str, str]]] = {}
    for path in root.rglob("*.json.gz"):
        key = rel(root, path)
        if not (m := DIGEST_KEY.match(key)):
            continue
        raw = gzip.decompress(path.read_bytes())
        assert b"\\/" in raw and b"/" not in raw.replace(b"\\/", b"")  # escaped like AWS
        digest = json.loads(raw)
        sidecar = json.loads(path.with_name(path.name + ".metadata.json").read_text())
        assert sidecar["signature-algorithm"] == "SHA256withRSA"
        assert (m["trail"], m["home"]) == ("org-trail", "us-east-1")
        assert digest["digestS3Bucket"] == "acme-org-trail" and digest["digestS3Object"] == key
        assert digest["awsAccountId"] == m["acct"]
        assert parse_time(digest["digestEndTime"]).strftime("%Y%m%dT%H%M%SZ") == m["ts"]
        chains.setdefault((m["acct"], m["region"]), []).append(
            (digest, raw, key, sidecar["signature"]))
    assert sum(map(len, chains.values())) == summary.digest_files
    assert len(chains) == 9

    listed: Counter[str] = Counter()
    empty = 0
    for (acct, region), chain in chains.items():
        chain.sort(key=lambda c: c[0]["digestEndTime"])
        for i, (digest, raw, key, signature) in enumerate(chain):
            prev = chain[i - 1] if i else None
            start, end = parse_time(digest["digestStartTime"]), parse_time(digest["digestEndTime"])
            previous = [digest[f] for f in ("previousDigestS3Bucket", "previousDigestS3Object",
                                            "previousDigestHashValue",
                                            "previousDigestHashAlgorithm",
                                            "previousDigestSignature")]
            if prev is None:
                assert previous == [None] * 5
            else:
                assert previous == ["acme-org-trail", prev[2], hashlib.sha256(prev[1]).hexdigest(),
                                    "SHA-256", prev[3]]
                assert digest["digestStartTime"] == prev[0]["digestEndTime"]  # no gap
                assert end - start == timedelta(hours=1)
            message = (f"{digest['digestEndTime']}\nacme-org-trail/{key}\n"
                       f"{hashlib.sha256(raw).hexdigest()}\n"
                       f"{digest['previousDigestSignature'] or 'null'}")
            public[digest["digestPublicKeyFingerprint"]].verify(  # type: ignore[union-attr]
                bytes.fromhex(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())
            if not digest["logFiles"]:
                empty += 1
                assert digest["newestEventTime"] is None and digest["oldestEventTime"] is None
            for entry in digest["logFiles"]:
                m = LOG_KEY.match(entry["s3Object"])
                assert m and (m["acct"], m["region"]) == (acct, region)
                assert start <= key_time(m["ts"]) < end
                raw_log = gzip.decompress((root / entry["s3Object"]).read_bytes())
                assert entry["hashValue"] == hashlib.sha256(raw_log).hexdigest()
                times = [r["eventTime"] for r in json.loads(raw_log)["Records"]]
                assert (entry["oldestEventTime"], entry["newestEventTime"]) == (min(times),
                                                                                 max(times))
                listed[entry["s3Object"]] += 1
    assert listed.keys() == sample_logs.keys() and set(listed.values()) == {1}
    assert empty > 0  # quiet hours still get a digest


def test_digest_fields_in_the_real_order(sample: tuple[Path, TrailSummary]) -> None:
    if not REAL_DIGEST.exists():
        pytest.skip("shared corpus not available")
    root, _ = sample
    path = next(p for p in root.rglob("*.json.gz") if "CloudTrail-Digest" in p.name)
    ours = json.loads(gzip.decompress(path.read_bytes()))
    real = json.loads(REAL_DIGEST.read_text())
    assert list(ours) == list(real)
    assert list(ours["logFiles"][0] if ours["logFiles"] else real["logFiles"][0]) == list(
        real["logFiles"][0])


def test_unsigned_trail_has_no_sidecars(tmp_path: Path) -> None:
    summary = write_trail(TrailSpec(days=0.2, events=100, attacks=False), tmp_path)
    assert summary.digest_files > 0 and not list(tmp_path.rglob("*.metadata.json"))


# --- planted attacks, duplicates, insights ---------------------------------------------------


def _rp(r: dict) -> dict:
    return r.get("requestParameters") or {}


#: What a detection for each scenario looks at; the benign background must never match.
PATTERNS: dict[str, Callable[[dict], Any]] = {
    "iam_privesc_policy_version": lambda r: r["eventName"] in (
        "CreatePolicyVersion", "SetDefaultPolicyVersion"),
    "iam_privesc_attach_admin": lambda r: (
        r["eventName"].startswith("Attach") and _rp(r).get("policyArn", "").endswith(
            "/AdministratorAccess")) or (r["eventName"] == "CreateAccessKey" and _rp(r).get(
                "userName") != r["userIdentity"].get("userName")),
    "cloudtrail_stop_logging": lambda r: r["eventName"] in (
        "StopLogging", "DeleteTrail", "DeleteDetector"),
    "s3_exfil_burst": lambda r: r["eventName"] == "GetObject"
    and r["additionalEventData"]["bytesTransferredOut"] >= 8 << 20,
    "root_console_login_no_mfa": lambda r: r["userIdentity"].get("type") == "Root",
    "offensive_user_agent": lambda r: re.search("kali|pacu", r["userAgent"], re.I),
    "sg_open_admin_port": lambda r: r["eventName"] == "AuthorizeSecurityGroupIngress"
    and "0.0.0.0/0" in json.dumps(r["requestParameters"]),
    "passrole_lambda_privesc": lambda r: r["eventName"].startswith("CreateFunction")
    or r["eventName"] == "AttachRolePolicy",
    "console_login_bruteforce": lambda r: r["eventName"] == "ConsoleLogin"
    and r["userIdentity"]["type"] == "IAMUser"
    and ("errorMessage" in r or r["additionalEventData"]["MFAUsed"] != "Yes"),
    "snapshot_shared_public": lambda r: r["eventName"] == "ModifySnapshotAttribute",
}


def test_planted_attacks_are_exactly_the_signal(sample: tuple[Path, TrailSummary],
                                                sample_logs: dict[str, list[dict]]) -> None:
    _, summary = sample
    records = {r["eventID"]: r for recs in sample_logs.values() for r in recs}
    assert {p.scenario for p in summary.planted} == set(PATTERNS)
    starts = []
    for p in summary.planted:
        assert p.event_ids and set(p.event_ids) <= records.keys()
        matching = {i for i, r in records.items() if PATTERNS[p.scenario](r)}
        assert matching == set(p.event_ids), p.scenario
        assert {records[i]["recipientAccountId"] for i in p.event_ids} == {p.account_id}
        starts.append(min(records[i]["eventTime"] for i in p.event_ids))
    assert len({s[:10] for s in starts}) == 3  # spread over the three days
    exfil = next(p for p in summary.planted if p.scenario == "s3_exfil_burst")
    times = sorted(parse_time(records[i]["eventTime"]) for i in exfil.event_ids)
    assert len(times) >= 200 and times[-1] - times[0] < timedelta(hours=1)
    assert len({records[i]["userIdentity"]["arn"] for i in exfil.event_ids}) == 1


def test_benign_background_has_no_attack_pattern() -> None:
    hits = Counter(name for r in iter_records(TrailSpec(attacks=False))
                   for name, match in PATTERNS.items() if match(r))
    assert not hits


def test_duplicates_are_later_byte_identical_redeliveries(
        sample: tuple[Path, TrailSummary], sample_logs: dict[str, list[dict]]) -> None:
    _, summary = sample
    seen: dict[str, list[tuple[str, dict]]] = {}
    for key, records in sample_logs.items():
        ids = [r["eventID"] for r in records]
        assert len(ids) == len(set(ids)), key  # never twice in one file
        for r in records:
            seen.setdefault(r["eventID"], []).append((key, r))
    copies = {i: c for i, c in seen.items() if len(c) > 1}
    assert 5 <= summary.duplicate_records == len(copies) <= 20
    assert summary.events - summary.unique_events == summary.duplicate_records
    for (first_key, first), (second_key, second) in copies.values():
        m1, m2 = LOG_KEY.match(first_key), LOG_KEY.match(second_key)
        assert m1 and m2 and (m1["acct"], m1["region"]) == (m2["acct"], m2["region"])
        assert key_time(m1["ts"]) < key_time(m2["ts"])
        assert json.dumps(first) == json.dumps(second)


def test_insight_file(sample: tuple[Path, TrailSummary]) -> None:
    root, summary = sample
    paths = [p for p in root.rglob("*.json.gz") if "/CloudTrail-Insight/" in p.as_posix()]
    assert len(paths) == summary.insight_files == 1
    assert INSIGHT_KEY.match(rel(root, paths[0]))
    start, end = json.loads(gzip.decompress(paths[0].read_bytes()))["Records"]
    assert (start["insightDetails"]["state"], end["insightDetails"]["state"]) == ("Start", "End")
    assert start["sharedEventID"] == end["sharedEventID"]
    assert {start["eventCategory"], end["eventCategory"]} == {"Insight"}
    assert "userIdentity" not in start and start["eventType"] == "AwsCloudTrailInsight"


# --- benchmarks and keys ---------------------------------------------------------------------


def test_bench_trail_shape(tmp_path: Path) -> None:
    summary = write_bench_trail(tmp_path, 20_000)
    assert abs(summary.events - 20_000) <= 1000
    assert summary.duplicate_records == summary.digest_files == summary.insight_files == 0
    assert not summary.planted
    assert 1000 <= summary.bytes_uncompressed / summary.events <= 1400
    logs = log_files(tmp_path)
    counts = [len(r) for r in logs.values()]
    assert max(counts) <= 250 and sum(counts) / len(counts) >= 120
    assert {LOG_KEY.match(k)["acct"] for k in logs} == {  # type: ignore[index]
        "111122223333", "444455556666"}


def test_derived_key_is_deterministic_and_signs() -> None:
    key = derive_test_key(7)
    again = derive_test_key.__wrapped__(7)  # bypass the cache
    assert key.key_size == 2048
    assert key.public_key().public_numbers() == again.public_key().public_numbers()
    assert derive_test_key(8, 1024).public_key().public_numbers().n != key.public_key(
    ).public_numbers().n
    sig = sign_digest(key, "2026-03-02T01:00:00Z", "b", "k.json.gz", b"{}", None)
    message = f"2026-03-02T01:00:00Z\nb/k.json.gz\n{hashlib.sha256(b'{}').hexdigest()}\nnull"
    key.public_key().verify(bytes.fromhex(sig), message.encode(), padding.PKCS1v15(),
                            hashes.SHA256())
    start = datetime(2026, 3, 1, tzinfo=UTC)
    doc = public_keys_document(key, start, start + timedelta(days=40))["PublicKeyList"][0]
    assert doc["Fingerprint"] == public_key_fingerprint(key.public_key())
    assert doc["ValidityStartTime"] == "2026-03-01T00:00:00+00:00"
    loaded = serialization.load_der_public_key(base64.b64decode(doc["Value"]))
    assert loaded.public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
