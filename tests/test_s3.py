"""S3 and AWS sources against a real S3 endpoint over HTTP (moto's server); APIs moto lacks
(ListPublicKeys, LookupEvents) through botocore's Stubber."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import check_invariant, query, run_cli, scalar
from s3_helpers import Proxy, moto_server, s3_client, upload_tree

from trailscan.event_history import pages
from trailscan.ingest import ingest
from trailscan.s3 import AwsOptions, bounded_map, date_prefixes, list_trail, trail_root
from trailscan.sources import Filters, parse_time
from trailscan.sync import safe_target, sync
from trailscan.synth import TrailSpec, derive_test_key, public_keys_document, write_trail
from trailscan.validation import validate_source

ACCOUNTS = ("111122223333", "444455556666", "777788889999")
REGIONS = ("us-east-1", "eu-west-1")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def creds(_no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials through boto3's standard chain (environment variables)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def aws(endpoint: str, creds: None) -> AwsOptions:
    return AwsOptions(endpoint_url=endpoint)


@pytest.fixture(scope="module")
def key() -> Any:
    return derive_test_key(7)


def new_bucket(endpoint: str) -> str:
    name = f"trail-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


class Trail:
    """A signed organization trail on disk (`root`) and in a bucket of the moto server."""

    def __init__(self, endpoint: str, tmp: Path, key: Any, **spec: Any) -> None:
        self.bucket = new_bucket(endpoint)
        self.spec = TrailSpec(**({"seed": 5, "days": 0.5, "events": 700, "accounts": ACCOUNTS,
                                  "regions": REGIONS, "attacks": False, "insights": True,
                                  "duplicates": False, "bucket": self.bucket} | spec))
        self.root = tmp / "local" / self.bucket
        self.summary = write_trail(self.spec, self.root, signing_key=key)
        self.keys_file = tmp / "keys.json"
        self.keys_file.write_text(json.dumps(public_keys_document(
            key, self.spec.start - timedelta(days=1), self.spec.start + timedelta(days=30))))
        self.client = s3_client(endpoint)
        self.objects = upload_tree(self.client, self.bucket, self.root)
        self.uri = f"s3://{self.bucket}"

    def names(self, kind: str = "/CloudTrail/") -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*.json.gz")
                      if kind in p.as_posix())


@pytest.fixture
def trail(endpoint: str, tmp_path: Path, key: Any, creds: None) -> Trail:
    """A fresh trail, for tests that tamper with it."""
    return Trail(endpoint, tmp_path, key)


@pytest.fixture(scope="module")
def shared(endpoint: str, tmp_path_factory: pytest.TempPathFactory, key: Any) -> Trail:
    """One trail for the tests that only read it."""
    return Trail(endpoint, tmp_path_factory.mktemp("shared"), key)


def counting_session(counts: dict[str, int]) -> Any:
    """A boto3 Session that counts the API calls of every client made from it."""
    session = boto3.session.Session()

    def count(model: Any, **_: Any) -> None:
        counts[model.name] = counts.get(model.name, 0) + 1

    session.events.register("before-call.*.*", count)
    return session


# --- pure functions ----------------------------------------------------------------------------


def test_date_prefixes_are_the_fewest_that_cover_the_range() -> None:
    assert date_prefixes(date(2024, 3, 1), date(2024, 3, 3)) == [
        "2024/03/01/", "2024/03/02/", "2024/03/03/"]
    assert date_prefixes(date(2023, 12, 31), date(2025, 2, 1)) == [
        "2023/12/31/", "2024/", "2025/01/", "2025/02/01/"]
    assert date_prefixes(date(2024, 2, 1), date(2024, 2, 29)) == ["2024/02/"]


def test_trail_root() -> None:
    assert trail_root("") == ("AWSLogs/", True)
    assert trail_root("team/") == ("team/AWSLogs/", True)
    assert trail_root("team/AWSLogs") == ("team/AWSLogs/", True)
    assert trail_root("AWSLogs/o-abcd1234/111122223333") == (
        "AWSLogs/o-abcd1234/111122223333/", False)


@pytest.mark.parametrize("key", [
    "../escape.json.gz", "/etc/passwd", "AWSLogs/a/../../x", "AWSLogs//x", "a/./b", "a\x00b",
    "a\\..\\b", "AWSLogs/" + "n" * 256, "x/" * 600, "a/b.json.gz.metadata.json",
])
def test_safe_target_refuses_hostile_keys(tmp_path: Path, key: str) -> None:
    assert safe_target(tmp_path.resolve(), key) is None


def test_safe_target_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "AWSLogs").symlink_to(tmp_path)
    assert safe_target(root.resolve(), "AWSLogs/x.json.gz") is None
    assert safe_target(root.resolve(), "other/x.json.gz") == root.resolve() / "other" / "x.json.gz"


def test_bounded_map_never_runs_more_than_ahead_items_in_advance() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    started: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> int:
        with lock:
            started.append(n)
        return n * n

    with ThreadPoolExecutor(8) as pool:
        for consumed, (n, result) in enumerate(bounded_map(work, range(200), pool, 16), 1):
            assert result == n * n and n == consumed - 1  # input order
            assert len(started) <= consumed + 16  # the look-ahead is bounded
    assert len(started) == 200


# --- ingest ------------------------------------------------------------------------------------


def test_ingest_from_s3_equals_ingest_from_disk_and_skips_known_objects(
        trail: Trail, aws: AwsOptions, tmp_path: Path) -> None:
    counts: dict[str, int] = {}
    options = AwsOptions(endpoint_url=aws.endpoint_url, session=counting_session(counts))
    from_s3 = check_invariant(ingest([trail.uri], tmp_path / "a", workers=2, aws=options))
    from_disk = check_invariant(ingest([trail.root], tmp_path / "b", workers=1))
    logs = len(trail.names()) + len(trail.names("/CloudTrail-Insight/"))
    assert from_s3["files_ingested"] == from_disk["files_ingested"] == logs
    assert from_s3["files_digest"] == trail.summary.digest_files
    assert from_s3["events_written"] == from_disk["events_written"]
    assert from_s3["events_written"] == trail.summary.unique_events + 2  # + the insight pair
    assert counts["GetObject"] == logs  # digests are counted from the listing, not read
    ids = "SELECT eventID FROM cloudtrail ORDER BY eventID"
    assert query(tmp_path / "a", ids) == query(tmp_path / "b", ids)
    sources = query(tmp_path / "a", "SELECT DISTINCT source_object FROM cloudtrail")
    assert all(s.startswith(f"s3://{trail.bucket}/AWSLogs/o-") for (s,) in sources)
    etag = scalar(tmp_path / "a", "SELECT version FROM manifest LIMIT 1")
    assert len(etag) == 32 and '"' not in etag

    counts.clear()
    again = check_invariant(ingest([trail.uri], tmp_path / "a", workers=1, aws=options))
    assert again["files_skipped"] == logs and again["files_ingested"] == 0
    assert "GetObject" not in counts  # same key, size and ETag: not downloaded again

    victim = trail.names()[3]
    body = gzip.decompress(trail.client.get_object(Bucket=trail.bucket, Key=victim)["Body"].read())
    trail.client.put_object(Bucket=trail.bucket, Key=victim, Body=gzip.compress(body + b" "))
    counts.clear()
    changed = check_invariant(ingest([trail.uri], tmp_path / "a", workers=1, aws=options))
    assert changed["files_ingested"] == 1 and counts["GetObject"] == 1
    assert changed["events_written"] == 0 and changed["events_duplicate"] > 0


def test_object_over_the_size_limit_is_quarantined_without_downloading_it(
        trail: Trail, aws: AwsOptions, tmp_path: Path) -> None:
    victim = trail.names()[0]
    key = victim.replace(".json.gz", "-huge.json.gz")  # same day and layout, so it is listed
    blob = gzip.compress(os.urandom(640_000))  # incompressible: 640 KB even gzipped
    trail.client.put_object(Bucket=trail.bucket, Key=key, Body=blob)
    counts: dict[str, int] = {}
    options = AwsOptions(endpoint_url=aws.endpoint_url, session=counting_session(counts))
    limit = 64 * 1024  # the object is ~10x over it even before decompression
    stats = check_invariant(ingest([trail.uri], tmp_path / "lake", workers=1, aws=options,
                                   limit=limit))
    logs = len(trail.names()) + len(trail.names("/CloudTrail-Insight/"))
    assert stats["files_quarantined"] == 1
    assert counts["GetObject"] == logs  # every real log file; the huge one never
    (reason,) = query(tmp_path / "lake", "SELECT reason FROM quarantine")[0]
    assert f"file is {len(blob)} bytes, larger than the limit of {limit} bytes" in reason
    (source,) = query(tmp_path / "lake", "SELECT source FROM quarantine")[0]
    assert source == f"s3://{trail.bucket}/{key}"


def test_cli_ingest_scan_with_endpoint_and_filters(shared: Trail, endpoint: str, creds: None,
                                                   tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = run_cli("ingest", shared.uri, "--lake", lake, "--endpoint-url", endpoint, "--json",
                     "--account", ACCOUNTS[1], "--region", "eu-west-1", "--workers", 1)
    assert result.exit_code == 0, result.stderr
    stats = check_invariant(json.loads(result.stdout))
    expected = [k for k in shared.names() if f"/{ACCOUNTS[1]}/CloudTrail/eu-west-1/" in k]
    assert stats["files_ingested"] == len(expected)
    assert query(lake, "SELECT DISTINCT recipientAccountId, awsRegion FROM cloudtrail") == [
        (ACCOUNTS[1], "eu-west-1")]

    scan = run_cli("scan", shared.uri, "--lake", tmp_path / "lake2", "--endpoint-url", endpoint,
                   "--public-keys", shared.keys_file, "--json", "--workers", 1)
    assert scan.exit_code == 0, scan.stderr
    report = json.loads(scan.stdout)["ingest"]["integrity"]
    assert [r["source"] for r in report] == [shared.uri] and report[0]["valid"] is True
    assert report[0]["log_files"]["valid"] == len(shared.names())
    # verdicts reach the rows read from the bucket (same s3://bucket/key identity)
    assert scalar(tmp_path / "lake2", "SELECT count(*) FROM cloudtrail WHERE integrity_status "
                  "<> 'verified' AND eventType <> 'AwsCloudTrailInsight'") == 0


# --- listing cost ------------------------------------------------------------------------------


def _bucket_of_days(endpoint: str, days: list[date]) -> str:
    """One tiny object per day per account/region (2 x 2), organization layout."""
    from concurrent.futures import ThreadPoolExecutor

    bucket, client = new_bucket(endpoint), s3_client(endpoint)
    keys = [f"AWSLogs/o-abcd1234/{acct}/CloudTrail/{region}/{d:%Y/%m/%d}/"
            f"{acct}_CloudTrail_{region}_{d:%Y%m%d}T0005Z_abc.json.gz"
            for d in days for acct in ACCOUNTS[:2] for region in REGIONS]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    return bucket


def test_one_day_costs_list_calls_per_account_and_region_not_per_bucket_size(
        endpoint: str, aws: AwsOptions) -> None:
    one_day = Filters(since=parse_time("2024-06-10"), until=parse_time("2024-06-10", end=True))
    year = [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]
    results = {}
    for name, days in (("year", year), ("four days", year[160:164])):
        bucket = _bucket_of_days(endpoint, days)
        counts: dict[str, int] = {}
        options = AwsOptions(endpoint_url=endpoint, session=counting_session(counts))
        listing = list_trail(options, f"s3://{bucket}", one_day)
        assert counts["ListObjectsV2"] == listing.calls  # counted by botocore, not by us
        results[name] = listing
        days_listed = {k.key.split("/CloudTrail/")[1][10:20] for k in listing.objects}
        assert days_listed == {"2024/06/09", "2024/06/10", "2024/06/11", "2024/06/12"}
        assert len(listing.objects) == 2 * 2 * 4
    # 1 (org ids) + 1 (accounts) + 2 accounts x 3 kinds (regions) + 2 x 2 regions x 4 day prefixes
    assert results["year"].calls == results["four days"].calls == 1 + 1 + 6 + 16
    full = list_trail(aws, f"s3://{bucket}")  # no range: one listing per account/kind/region
    assert len(full.objects) == 4 * 4 and full.calls == 1 + 1 + 6 + 4
    narrow = list_trail(aws, f"s3://{bucket}", Filters(until=parse_time("2024-06-09"),
                                                       regions=frozenset({"eu-west-1"}),
                                                       accounts=frozenset({ACCOUNTS[0]})))
    # account and region given: no discovery below the org id; until only: one year discovery
    # per kind, then from the first year found to until + 2 (2024-06-11) where CloudTrail has
    # data: 5 month prefixes and 11 day prefixes
    assert narrow.calls == 1 + 3 + 5 + 11 and len(narrow.objects) == 3


# --- validation --------------------------------------------------------------------------------


def test_validate_s3_signatures_from_metadata_then_tampering(trail: Trail, endpoint: str,
                                                             creds: None) -> None:
    args = ("validate", trail.uri, "--endpoint-url", endpoint, "--public-keys", trail.keys_file,
            "--json")
    ok = run_cli(*args)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    report = json.loads(ok.stdout)
    assert report["valid"] is True
    assert report["digests"]["valid"] == trail.summary.digest_files
    assert report["log_files"]["valid"] == len(trail.names())

    log = trail.names()[5]
    body = gzip.decompress(trail.client.get_object(Bucket=trail.bucket, Key=log)["Body"].read())
    trail.client.put_object(Bucket=trail.bucket, Key=log, Body=gzip.compress(
        body.replace(b'"eventName":"', b'"eventName":"X', 1)))
    digest = trail.names("/CloudTrail-Digest/")[-1]
    old = trail.client.head_object(Bucket=trail.bucket, Key=digest)["Metadata"]
    trail.client.copy_object(Bucket=trail.bucket, Key=digest, MetadataDirective="REPLACE",
                             CopySource={"Bucket": trail.bucket, "Key": digest},
                             Metadata=old | {"signature": "ab" * 256})
    bad = run_cli(*args)
    assert bad.exit_code == 1
    kinds = {(p["kind"], p["object"]) for p in json.loads(bad.stdout)["problems"]}
    assert ("log_file_modified", f"{trail.uri}/{log}") in kinds  # named as the AWS CLI does
    assert ("digest_signature_invalid", f"{trail.uri}/{digest}") in kinds
    text = run_cli(*args[:-1]).stdout
    assert f"Log file\t{trail.uri}/{log}\tINVALID: hash value doesn't match" in text


def test_validate_s3_time_range_and_account(shared: Trail, endpoint: str, creds: None) -> None:
    result = run_cli("validate", shared.uri, "--endpoint-url", endpoint, "--public-keys",
                     shared.keys_file, "--json", "--since", "2026-03-02T03:00:00Z", "--until",
                     "2026-03-02T06:00:00Z", "--account", ACCOUNTS[0])
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["valid"] is True and report["problems"] == []
    per_chain = shared.summary.digest_files // (len(ACCOUNTS) * len(REGIONS))
    assert 2 * 3 <= report["digests"]["valid"] < 2 * per_chain  # 2 regions, about 3-4 hours


def test_prefixed_non_org_trail_and_prefix_inside_the_layout(endpoint: str, creds: None,
                                                             tmp_path: Path, key: Any) -> None:
    trail = Trail(endpoint, tmp_path, key, prefix="team/ct", org_id=None, accounts=ACCOUNTS[:2],
                  days=0.25, events=300, insights=False)
    args = ("--endpoint-url", endpoint, "--public-keys", trail.keys_file, "--json")
    valid = run_cli("validate", f"{trail.uri}/team/ct/", *args)
    assert valid.exit_code == 0 and json.loads(valid.stdout)["valid"] is True
    inside = f"{trail.uri}/team/ct/AWSLogs/{ACCOUNTS[1]}/CloudTrail/eu-west-1"
    result = run_cli("ingest", inside, "--lake", tmp_path / "lake", "--json", "--workers", 1,
                     *args[:2])
    assert result.exit_code == 0, result.stderr
    expected = [k for k in trail.names() if f"/{ACCOUNTS[1]}/CloudTrail/eu-west-1/" in k]
    assert json.loads(result.stdout)["files_ingested"] == len(expected) > 0
    assert all(k.startswith("team/ct/AWSLogs/") for k in expected)


def test_validate_s3_fetches_public_keys_once_and_caches_them(
        shared: Trail, aws: AwsOptions, key: Any, tmp_path: Path) -> None:
    from trailscan.lake import Lake

    real = boto3.session.Session()
    cloudtrail = real.client("cloudtrail", region_name="us-east-1")
    stub = Stubber(cloudtrail)
    doc = public_keys_document(key, shared.spec.start - timedelta(days=1),
                               shared.spec.start + timedelta(days=30))
    entry = doc["PublicKeyList"][0]
    import base64

    # One ListPublicKeys: the first region's answer holds the key the other region needs too.
    stub.add_response("list_public_keys", {"PublicKeyList": [{
        "Value": base64.b64decode(entry["Value"]), "Fingerprint": entry["Fingerprint"],
        "ValidityStartTime": parse_time(entry["ValidityStartTime"]),
        "ValidityEndTime": parse_time(entry["ValidityEndTime"])}]})
    stub.activate()

    class Session:
        def client(self, service: str, **kwargs: Any) -> Any:
            return cloudtrail if service == "cloudtrail" else real.client(service, **kwargs)

    options = AwsOptions(endpoint_url=aws.endpoint_url, session=Session())
    lake = Lake.open(tmp_path / "lake", create=True)
    report = validate_source(shared.uri, lake=lake, aws=options)
    assert report.valid, report.to_json()["problems"][:3]
    stub.assert_no_pending_responses()
    assert (lake.meta / "public-keys.json").is_file()
    again = validate_source(shared.uri, lake=lake, aws=options)  # the stub has nothing left
    assert again.valid


# --- sync --------------------------------------------------------------------------------------


def test_sync_mirrors_with_sidecars_and_validates_offline(shared: Trail, endpoint: str,
                                                          creds: None, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    dry = run_cli("sync", shared.uri, mirror, "--endpoint-url", endpoint, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    plan = json.loads(dry.stdout)
    sizes = sum(p.stat().st_size for p in shared.root.rglob("*.json.gz"))
    assert plan["objects_to_fetch"] == shared.objects and plan["bytes_to_fetch"] == sizes
    assert not mirror.exists()
    text = run_cli("sync", shared.uri, mirror, "--endpoint-url", endpoint, "--dry-run")
    assert f"would fetch {shared.objects} objects, {sizes} bytes" in text.stdout

    done = run_cli("sync", shared.uri, mirror, "--endpoint-url", endpoint, "--json")
    assert done.exit_code == 0, done.stderr
    stats = json.loads(done.stdout)
    assert stats["objects_fetched"] == shared.objects and stats["failed"] == 0
    assert stats["sidecars_written"] == shared.summary.digest_files
    copied = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file())
    original = sorted(p.relative_to(shared.root).as_posix() for p in shared.root.rglob("*")
                      if p.is_file() and p.name != "public-keys.json")
    assert copied == original  # same keys; sidecars byte-identical to the generator's below
    for name in original:
        assert (mirror / name).read_bytes() == (shared.root / name).read_bytes(), name
    offline = run_cli("validate", mirror, "--public-keys", shared.keys_file, "--json")
    assert offline.exit_code == 0 and json.loads(offline.stdout)["valid"] is True

    again = run_cli("sync", shared.uri, mirror, "--endpoint-url", endpoint, "--json")
    assert json.loads(again.stdout)["objects_present"] == shared.objects
    assert json.loads(again.stdout)["objects_fetched"] == 0


def test_sync_never_writes_outside_target(endpoint: str, aws: AwsOptions, tmp_path: Path) -> None:
    bucket, client = new_bucket(endpoint), s3_client(endpoint)
    day = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/"
    good = day + "111122223333_CloudTrail_us-east-1_20240301T0005Z_ok.json.gz"
    hostile = [day + "../../../../../../../../escape.json.gz",
               day + "../../../../../../../../../../tmp/evil.json.gz",
               day + "a//b.json.gz", day + "./dot.json.gz", day + "n" * 300 + ".json.gz",
               day + "x.json.gz.metadata.json"]
    for name in [good, *hostile]:
        client.put_object(Bucket=bucket, Key=name, Body=gzip.compress(b'{"Records":[]}'))
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert set(hostile) <= listed  # the server kept the keys as given
    before = {p for p in tmp_path.rglob("*")}
    mirror = tmp_path / "deep" / "mirror"
    stats = sync(f"s3://{bucket}", mirror, aws=aws)
    assert stats.objects_fetched == 1 and stats.skipped_unsafe == len(hostile)
    assert (mirror / good).is_file()
    after = {p for p in tmp_path.rglob("*")} - before
    assert all(p == mirror.parent or mirror in (p, *p.parents) for p in after), after
    assert not list(mirror.rglob(".trailscan-*"))


# --- failures ----------------------------------------------------------------------------------


@pytest.fixture
def proxy(endpoint: str) -> Iterator[Proxy]:
    p = Proxy(endpoint)
    yield p
    p.close()


def test_interrupted_downloads_are_retried_or_reported_never_half_used(
        shared: Trail, proxy: Proxy, creds: None, tmp_path: Path) -> None:
    options = AwsOptions(endpoint_url=proxy.url)
    flaky, dead = shared.names()[1], shared.names()[2]
    proxy.cut = {flaky.rsplit("/", 1)[1]: 2, dead.rsplit("/", 1)[1]: -1}
    stats = check_invariant(ingest([shared.uri], tmp_path / "lake", workers=1, aws=options))
    logs = len(shared.names()) + len(shared.names("/CloudTrail-Insight/"))
    assert stats["files_failed"] == 1 and stats["files_ingested"] == logs - 1
    assert proxy.cuts_done >= 2 + 4
    assert any(dead in p and "incomplete after 4 attempts" in p for p in stats["problems"])
    lake = tmp_path / "lake"
    uris = {u for (u,) in query(lake, "SELECT uri FROM manifest")}
    assert f"s3://{shared.bucket}/{flaky}" in uris and f"s3://{shared.bucket}/{dead}" not in uris
    assert scalar(lake, "SELECT count(*) FROM cloudtrail WHERE source_object = ?",
                  f"s3://{shared.bucket}/{dead}") == 0
    flaky_events = len(json.loads(gzip.decompress((shared.root / flaky).read_bytes()))["Records"])
    assert scalar(lake, "SELECT count(*) FROM cloudtrail WHERE source_object = ?",
                  f"s3://{shared.bucket}/{flaky}") == flaky_events

    proxy.cut = {}
    rerun = check_invariant(ingest([shared.uri], lake, workers=1, aws=options))
    assert rerun["files_ingested"] == 1 and rerun["files_failed"] == 0  # only the failed one

    mirror = tmp_path / "mirror"
    proxy.cut = {dead.rsplit("/", 1)[1]: -1}
    result = sync(shared.uri, mirror, aws=options)
    assert result.failed == 1 and result.objects_fetched == shared.objects - 1
    assert not (mirror / dead).exists()
    assert not [p for p in mirror.rglob("*") if p.name.startswith(".trailscan-")]
    proxy.cut = {}
    assert sync(shared.uri, mirror, aws=options).objects_fetched == 1
    assert (mirror / dead).read_bytes() == (shared.root / dead).read_bytes()


def test_errors_are_one_line(shared: Trail, creds: None, proxy: Proxy, endpoint: str,
                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake"
    missing = run_cli("ingest", "s3://no-such-bucket-here", "--lake", lake, "--endpoint-url",
                      endpoint)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == "Error: s3://no-such-bucket-here/AWSLogs/: no such bucket"

    empty = run_cli("validate", f"{shared.uri}/elsewhere", "--endpoint-url", endpoint)
    assert empty.exit_code == 1
    assert empty.stderr.strip() == f"Error: {shared.uri}/elsewhere/AWSLogs/: no CloudTrail logs " \
        "under this prefix (expected AWSLogs/[o-id/]<account>/CloudTrail/...)"

    proxy.deny = True
    denied = run_cli("validate", f"{shared.uri}/team", "--endpoint-url", proxy.url)
    assert denied.exit_code == 1
    assert denied.stderr.strip() == \
        f"Error: s3://{shared.bucket}/team/AWSLogs/: access denied (AccessDenied)"

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    nocreds = run_cli("ingest", shared.uri, "--lake", lake, "--endpoint-url", endpoint)
    assert nocreds.exit_code == 1
    assert nocreds.stderr.startswith(f"Error: s3://{shared.bucket}/AWSLogs/: no AWS credentials")
    noprofile = run_cli("ingest", shared.uri, "--lake", lake, "--profile", "nope")
    assert noprofile.exit_code == 2 and "AWS profile not found: nope" in noprofile.stderr


def test_objects_denied_are_failed_named_and_retried_later(shared: Trail, proxy: Proxy,
                                                           creds: None, tmp_path: Path) -> None:
    proxy.deny_get = True
    result = run_cli("ingest", shared.uri, "--lake", tmp_path / "lake", "--endpoint-url",
                     proxy.url, "--account", ACCOUNTS[0], "--region", "us-east-1")
    assert result.exit_code == 1
    expected = [k for k in shared.names() if f"/{ACCOUNTS[0]}/CloudTrail/us-east-1/" in k]
    assert f"{len(expected)} FAILED to download" in result.stdout
    assert "access denied (AccessDenied)" in result.stderr
    proxy.deny_get = False
    again = run_cli("ingest", shared.uri, "--lake", tmp_path / "lake", "--endpoint-url",
                    proxy.url, "--account", ACCOUNTS[0], "--region", "us-east-1", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["files_ingested"] == len(expected)


def test_profile_option_uses_that_profile(shared: Trail, endpoint: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, _no_aws: None) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[audit]\naws_access_key_id = testing\n"
                           "aws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = ("sync", shared.uri, tmp_path / "m", "--endpoint-url", endpoint, "--dry-run",
            "--json", "--account", ACCOUNTS[2], "--region", "eu-west-1")
    without = run_cli(*args)
    assert without.exit_code == 1 and "no AWS credentials" in without.stderr
    result = run_cli(*args, "--profile", "audit", "--aws-region", "eu-west-1")
    assert result.exit_code == 0, result.stderr
    wanted = [k for k in shared.names("") if f"/{ACCOUNTS[2]}/" in k and "/eu-west-1/" in k]
    assert json.loads(result.stdout)["objects_to_fetch"] == len(wanted) > 0


def test_unreachable_endpoint(creds: None, tmp_path: Path) -> None:
    from s3_helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("ingest", "s3://bucket", "--lake", tmp_path / "lake", "--endpoint-url", url)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: s3://bucket/AWSLogs/: cannot connect to {url}")
    assert len(result.stderr.strip().splitlines()) == 1


# --- event history -----------------------------------------------------------------------------


def _history_event(n: int, when: datetime) -> dict[str, Any]:
    from conftest import make_record

    record = make_record(eventTime=when.strftime("%Y-%m-%dT%H:%M:%SZ"), eventName="DescribeVpcs",
                         eventSource="ec2.amazonaws.com", eventID=f"{n:08d}-0000-4000-8000-"
                         "000000000000", eventCategory="Management", managementEvent=True)
    return {"EventId": record["eventID"], "EventName": "DescribeVpcs", "ReadOnly": "true",
            "EventTime": when, "EventSource": "ec2.amazonaws.com", "Resources": [],
            "CloudTrailEvent": json.dumps(record)}


def test_event_history_pages_into_the_lake(tmp_path: Path) -> None:
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x").client(
        "cloudtrail", region_name="eu-west-1")
    stub = Stubber(client)
    now = datetime.now(UTC).replace(microsecond=0)
    events = [_history_event(n, now - timedelta(hours=n)) for n in range(120)]
    for _ in range(2):  # two runs
        stub.add_response("lookup_events", {"Events": events[:50], "NextToken": "t1"})
        stub.add_response("lookup_events", {"Events": events[50:100], "NextToken": "t2"},
                          {"MaxResults": 50, "StartTime": stub_any(), "EndTime": stub_any(),
                           "NextToken": "t1"})
        stub.add_response("lookup_events", {"Events": events[100:]})
    stub.activate()

    class Session:
        def client(self, service: str, **kwargs: Any) -> Any:
            assert service == "cloudtrail" and kwargs["region_name"] == "eu-west-1"
            return client

    options = AwsOptions(session=Session())
    first = check_invariant(ingest(["aws-event-history://eu-west-1"], tmp_path / "lake",
                                   aws=options))
    assert first["files_ingested"] == 3 and first["events_written"] == 120
    second = check_invariant(ingest(["aws-event-history://eu-west-1"], tmp_path / "lake",
                                    aws=options))
    assert second["files_skipped"] == 3 and second["events_written"] == 0  # same pages
    stub.assert_no_pending_responses()
    assert scalar(tmp_path / "lake", "SELECT count(DISTINCT eventID) FROM cloudtrail") == 120
    source = scalar(tmp_path / "lake", "SELECT min(source_object) FROM cloudtrail")
    assert source.startswith("aws-event-history://eu-west-1/")

    bad = run_cli("ingest", "aws-event-history://nowhere", "--lake", tmp_path / "lake")
    assert bad.exit_code == 2 and "aws-event-history://<region>" in bad.stderr


def stub_any() -> Any:
    from botocore.stub import ANY

    return ANY


def test_event_history_range_is_clipped_to_90_days() -> None:
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x").client(
        "cloudtrail", region_name="us-east-1")
    seen: list[dict[str, Any]] = []
    client.meta.events.register("provide-client-params.cloudtrail.LookupEvents",
                                lambda params, **_: seen.append(dict(params)))
    stub = Stubber(client)
    stub.add_response("lookup_events", {"Events": []})
    stub.activate()
    since = datetime(2000, 1, 1, tzinfo=UTC)
    assert list(pages("us-east-1", Filters(since=since), client=client)) == []
    start = seen[0]["StartTime"]
    assert datetime.now(UTC) - start < timedelta(days=90, minutes=1)


def test_clients_retry_adaptively(endpoint: str, creds: None) -> None:
    """Throttled listings of a big bucket back off client-side instead of failing the run."""
    client = AwsOptions(endpoint_url=endpoint).client("s3")
    retries = client.meta.config.retries
    # botocore counts max_attempts=8 as 8 retries: 9 attempts in all
    assert retries["mode"] == "adaptive" and retries["total_max_attempts"] == 9
    assert client.meta.endpoint_url == endpoint
