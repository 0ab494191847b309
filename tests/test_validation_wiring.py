"""Integrity validation wired into the CLI and ingest: verdicts reach every row."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import check_invariant, query, run_cli, scalar
from cryptography.hazmat.primitives.asymmetric import rsa

from trailscan.synth import TrailSpec, public_keys_document, write_trail

SPEC = TrailSpec(seed=3, days=0.25, events=400, accounts=("111122223333",),
                 regions=("us-east-1", "eu-west-1"), attacks=False, insights=False,
                 duplicates=False)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def trail(tmp_path: Path, key: rsa.RSAPrivateKey) -> Path:
    root = tmp_path / "trail"
    write_trail(SPEC, root, signing_key=key)
    doc = public_keys_document(key, SPEC.start - timedelta(days=1),
                               SPEC.start + timedelta(days=30))
    (tmp_path / "keys.json").write_text(json.dumps(doc))
    return root


def _log_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail/" in str(p))


def test_validate_cli_valid_then_tampered(trail: Path, tmp_path: Path) -> None:
    keys = str(tmp_path / "keys.json")
    ok = run_cli("validate", trail, "--public-keys", keys, "--json")
    assert ok.exit_code == 0
    report = json.loads(ok.stdout)
    assert report["valid"] is True
    assert report["log_files"]["valid"] == len(_log_files(trail))
    assert report["problems"] == []

    victim = _log_files(trail)[0]
    text = gzip.decompress(victim.read_bytes()).replace(b'"eventName":"', b'"eventName":"X', 1)
    victim.write_bytes(gzip.compress(text))
    bad = run_cli("validate", trail, "--public-keys", keys, "--json")
    assert bad.exit_code == 1
    kinds = {(p["kind"], Path(p["object"]).name) for p in json.loads(bad.stdout)["problems"]}
    assert ("log_file_modified", victim.name) in kinds
    text_out = run_cli("validate", trail, "--public-keys", keys)
    assert "INVALID: hash value doesn't match" in text_out.stdout
    assert "Traceback" not in text_out.stderr


def test_validate_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("validate", tmp_path / "nope").exit_code == 2
    (tmp_path / "t").mkdir()
    bad_keys = tmp_path / "k.json"
    bad_keys.write_text("{not json")
    result = run_cli("validate", tmp_path / "t", "--public-keys", bad_keys)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")


def test_ingest_validate_marks_rows_and_reads_no_file_twice(trail: Path, tmp_path: Path,
                                                            lake: Path) -> None:
    victim = _log_files(trail)[1]
    text = gzip.decompress(victim.read_bytes())
    records = json.loads(text)["Records"]
    victim.write_bytes(gzip.compress(text.replace(b'"eventName":"', b'"eventName":"Z', 1)))
    result = run_cli("ingest", trail, "--lake", lake, "--validate", "--workers", "1",
                     "--public-keys", tmp_path / "keys.json", "--json")
    assert result.exit_code == 0
    stats = check_invariant(json.loads(result.stdout))
    [report] = stats["integrity"]
    assert report["valid"] is False
    assert [p["kind"] for p in report["problems"]] == ["log_file_modified"]
    failed = scalar(lake, "SELECT count(*) FROM cloudtrail WHERE integrity_status = 'failed'")
    assert failed == len(records)
    assert scalar(lake, "SELECT count(DISTINCT source_object) FROM cloudtrail WHERE "
                        "integrity_status = 'failed'") == 1
    total = scalar(lake, "SELECT count(*) FROM cloudtrail")
    verified = scalar(lake, "SELECT count(*) FROM cloudtrail WHERE integrity_status = "
                            "'verified' AND covering_digest LIKE '%CloudTrail-Digest%'")
    assert verified == total - failed
    assert query(lake, "SELECT kind FROM integrity_problems") == [("log_file_modified",)]


def test_scan_validates_when_digests_are_present(trail: Path, tmp_path: Path,
                                                 lake: Path) -> None:
    (trail / "public-keys.json").write_text((tmp_path / "keys.json").read_text())
    result = run_cli("scan", trail, "--lake", lake, "--workers", "1")
    assert result.exit_code == 0
    assert "integrity of" in result.stdout and "VALID" in result.stdout
    assert scalar(lake, "SELECT count(*) FROM cloudtrail WHERE integrity_status <> "
                        "'verified'") == 0


def test_plain_ingest_leaves_rows_unchecked(trail: Path, lake: Path) -> None:
    assert run_cli("ingest", trail, "--lake", lake, "--workers", "1").exit_code == 0
    assert query(lake, "SELECT DISTINCT integrity_status FROM cloudtrail") == [("unchecked",)]
