"""Shared test helpers: no AWS, real files in tmp_path, a CLI runner, the ingest invariant."""

from __future__ import annotations

import copy
import gzip
import itertools
import json
import os
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import trailscan
from trailscan.cli import cli
from trailscan.ingest import IngestStats, ingest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / ".." / "shared" / "corpus" / "real"

#: What `trailscan ingest --json` must always report.
STAT_KEYS = ("files_seen", "files_ingested", "files_skipped", "files_quarantined", "events_read",
             "events_written", "events_duplicate", "events_quarantined", "conflicting_event_ids")


@pytest.fixture(autouse=True)
def _no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach AWS (no credentials, no region) or an ambient lake."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("TRAILSCAN_LAKE", raising=False)


# --- records and files ----------------------------------------------------------------------

_ids = itertools.count(1)


def make_record(**overrides: Any) -> dict[str, Any]:
    """A realistic CloudTrail data event (S3 GetObject by an assumed role); override any field.

    Each call gets a fresh eventID/requestID. `None` overrides set the field to null; use
    `drop_fields` to remove fields.
    """
    n = next(_ids)
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLEROLEID0001:alice",
            "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLEKEY000001",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": "AROAEXAMPLEROLEID0001",
                    "arn": "arn:aws:iam::111122223333:role/Admin",
                    "accountId": "111122223333",
                    "userName": "Admin",
                },
                "attributes": {"creationDate": "2024-03-01T11:00:00Z",
                               "mfaAuthenticated": "true"},
            },
        },
        "eventTime": "2024-03-01T12:00:00Z",
        "eventSource": "s3.amazonaws.com",
        "eventName": "GetObject",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64",
        "requestParameters": {"bucketName": "audit-bucket", "key": f"reports/{n}.csv",
                              "Host": "audit-bucket.s3.us-east-1.amazonaws.com"},
        "responseElements": None,
        "additionalEventData": {"bytesTransferredIn": 0, "bytesTransferredOut": 1024,
                                "x-amz-id-2": "abc/def="},
        "requestID": f"REQ{n:013d}",
        "eventID": f"{n:08x}-1111-4222-8333-444455556666",
        "readOnly": True,
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::audit-bucket/reports/{n}.csv"},
            {"accountId": "111122223333", "type": "AWS::S3::Bucket",
             "ARN": "arn:aws:s3:::audit-bucket"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": "111122223333",
        "eventCategory": "Data",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": "audit-bucket.s3.us-east-1.amazonaws.com"},
    }
    record.update(copy.deepcopy(overrides))
    return record


def drop_fields(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in names}


def make_insight(**overrides: Any) -> dict[str, Any]:
    """An Insight event for trails, shaped as AWS documents it: no userIdentity, and no top-level
    eventSource/eventName (they live in insightDetails)."""
    n = next(_ids)
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": "2024-03-01T13:00:00Z",
        "awsRegion": "us-east-1",
        "eventID": f"{n:08x}-aaaa-4bbb-8ccc-dddddddddddd",
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": "111122223333",
        "sharedEventID": "12345678-90ab-4cde-8f01-234567890abc",
        "insightDetails": {
            "state": "Start",
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "insightType": "ApiCallRateInsight",
            "insightContext": {
                "statistics": {"baseline": {"average": 0.0138},
                               "insight": {"average": 5.0}, "insightDuration": 1},
                "attributions": [{"attribute": "userIdentityArn",
                                  "insight": [{"value": "arn:aws:iam::111122223333:user/bob",
                                               "average": 5.0}],
                                  "baseline": []}],
            },
        },
        "eventCategory": "Insight",
    }
    record.update(copy.deepcopy(overrides))
    return record


def encode(records: list[Any], fmt: str = "records") -> bytes:
    """Serialise records in one of the container formats trailscan reads."""
    if fmt == "records":
        return json.dumps({"Records": records}).encode()
    if fmt == "array":
        return json.dumps(records, indent=2).encode()
    if fmt == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    if fmt == "lookup":
        return json.dumps({"Events": [_lookup_item(r) for r in records],
                           "NextToken": "token=="}, indent=4).encode()
    if fmt == "lookup-lines":
        return "\n".join(json.dumps(_lookup_item(r)) for r in records).encode()
    raise ValueError(fmt)


def _lookup_item(record: dict[str, Any]) -> dict[str, Any]:
    return {"EventId": record.get("eventID"), "EventName": record.get("eventName"),
            "ReadOnly": "true", "EventTime": "2024-03-01T23:00:00+11:00",
            "EventSource": record.get("eventSource"), "Resources": [],
            "CloudTrailEvent": json.dumps(record)}


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_records(path: Path, records: list[Any], fmt: str = "records",
                  compress: bool | None = None) -> Path:
    """Write records in `fmt`; gzip (real gzip module) when `compress`, default: name ends .gz."""
    data = encode(records, fmt)
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data)
    return write_bytes(path, data)


def ct_path(root: Path, name: str, *, account: str = "111122223333",
            region: str = "us-east-1", day: str = "2024/03/01",
            kind: str = "CloudTrail") -> Path:
    """Where CloudTrail delivers an object: AWSLogs/<account>/<kind>/<region>/<y>/<m>/<d>/name."""
    return root / "AWSLogs" / account / kind / region / day / name


# --- ingest and the invariant ----------------------------------------------------------------


def check_invariant(stats: Mapping[str, Any] | IngestStats) -> dict[str, Any]:
    """`events_read == written + duplicate + quarantined + filtered`, for every ingest."""
    data = stats.as_dict() if isinstance(stats, IngestStats) else dict(stats)
    for key in STAT_KEYS:
        assert key in data, f"ingest stats lack {key!r}: {sorted(data)}"
    accounted = (data["events_written"] + data["events_duplicate"]
                 + data["events_quarantined"] + data.get("events_filtered", 0))
    assert data["events_read"] == accounted, data
    assert data["files_seen"] >= (data["files_ingested"] + data["files_skipped"]
                                  + data["files_quarantined"]), data
    return data


def ingest_lib(sources: Iterable[Path | str], lake: Path, **kwargs: Any) -> dict[str, Any]:
    """Library ingest (one worker unless told) with the invariant checked."""
    kwargs.setdefault("workers", 1)
    return check_invariant(ingest([str(s) for s in sources], str(lake), **kwargs))


def run_cli(*args: Any) -> Result:
    """Invoke the click app in-process; stdout and stderr are separate (click >= 8.2).

    An exception that escapes the CLI (i.e. would print a traceback) fails the test.
    """
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        trace = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
        pytest.fail(f"trailscan {' '.join(map(str, args))} raised instead of exiting "
                    f"cleanly:\n{trace}")
    assert "Traceback" not in result.stderr
    return result


def ingest_cli(*args: Any, workers: int = 1) -> dict[str, Any]:
    """`trailscan ingest ... --json`: exit 0, stdout exactly one JSON object, invariant holds."""
    result = run_cli("ingest", *args, "--workers", workers, "--json")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    stats = json.loads(lines[0])
    assert isinstance(stats, dict)
    return check_invariant(stats)


def query(lake: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Rows as tuples, converted through Arrow (DuckDB's own fetchall() needs pytz for
    TIMESTAMPTZ values; that path is tested on its own in test_cli.py)."""
    con = trailscan.open_lake(str(lake))
    try:
        table = con.sql(sql, params=list(params) or None).to_arrow_table()
        return [tuple(row.values()) for row in table.to_pylist()]
    finally:
        con.close()


def scalar(lake: Path, sql: str, *params: Any) -> Any:
    return query(lake, sql, *params)[0][0]


def quarantine_list(lake: Path) -> list[dict[str, Any]]:
    """`trailscan quarantine --format json`, parsed."""
    result = run_cli("quarantine", "--lake", lake, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "src"
    path.mkdir()
    return path


# --- investigations, Athena SQL and the HTML report ---------------------------------------------


@pytest.fixture(scope="session")
def investigation_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled-style sample trail (validated digests) plus the identity scenarios of
    tests/scenarios.py in a second tree, with a full detect run stored. Read-only for tests."""
    from scenarios import all_records

    from trailscan.detections import load_rules, run_rules
    from trailscan.synth import write_sample_logs

    root = tmp_path_factory.mktemp("investigation")
    write_sample_logs(root / "trail")
    write_records(ct_path(root / "extra", "111122223333_CloudTrail_us-east-1_20260303T1000Z_"
                          "scenario.json.gz", day="2026/03/03"), all_records())
    lake = root / "lake"
    ingest_lib([root / "trail"], lake, validate=True)
    ingest_lib([root / "extra"], lake)
    run_rules(str(lake), load_rules(), store=True)
    return lake


# --- detections exported to other engines -----------------------------------------------------

#: (account, principal, sorted event ids): one finding as `detect` groups it, engine-neutral.
FindingKey = tuple[str, str, tuple[str, ...]]


@pytest.fixture(scope="session")
def planted_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every rule's chance to fire: the 14-day behavioural trail with its planted anomalies
    (small background) plus every rule's match.json and nomatch.json events."""
    import shutil

    from trailscan.detections import rule_dirs
    from trailscan.synth_behaviour import write_behaviour_trail

    root = tmp_path_factory.mktemp("planted")
    write_behaviour_trail(root / "trail", background_events=3_000)
    for path in rule_dirs():
        for name in ("match.json", "nomatch.json"):
            target = root / "rules" / f"{path.name}-{name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path / name, target)
    ingest_lib([root / "trail", root / "rules"], root / "lake")
    return root / "lake"


def finding_keys(rows: Iterable[Mapping[str, Any]]) -> set[FindingKey]:
    """Rows of (eventID, account_id, principal) grouped as `detect` groups its findings."""
    groups: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        groups.setdefault((row["account_id"], row["principal"]), set()).add(row["eventID"])
    return {(account, principal, tuple(sorted(ids))) for (account, principal), ids
            in groups.items()}


def duckdb_finding_keys(lake: Path, rule: Any, sql: str | None = None) -> set[FindingKey]:
    """What `rule` (or `sql` in its place, with the rule's parameters bound) finds on `lake`."""
    from trailscan import rule_params
    from trailscan.detections import OPTIONAL_COLUMNS
    from trailscan.lake import Lake

    body = (sql if sql is not None else rule.sql).strip().rstrip(";")
    con = Lake.open(lake).connect()
    try:
        rule_params.prepare(con)
        rule_params.bind(con, rule.params)
        columns = set(con.sql(f"SELECT * FROM ({body}\n) LIMIT 0").columns)
        principal = "ts_principal(userIdentity)"
        if "finding_principal" in columns & set(OPTIONAL_COLUMNS):
            principal = f"coalesce(finding_principal, {principal})"
        rows = con.sql(f"SELECT eventID, coalesce(recipientAccountId, userIdentity.accountId, "
                       f"'') AS account_id, {principal} AS principal FROM ({body}\n)"
                       ).to_arrow_table().to_pylist()
    finally:
        con.close()
    return finding_keys(rows)
