"""The HTML report: self-contained, escaped, and drawn by a real browser (headless Chromium)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ingest_lib, query, run_cli
from cryptography.hazmat.primitives.asymmetric import rsa
from scenarios import HOP2_ARN, XSS_UA

from trailscan.report import build_report
from trailscan.synth import TrailSpec, public_keys_document, write_trail

ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def report(investigation_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = run_cli("report", "--lake", investigation_lake, "--output", out)
    assert result.exit_code == 0, result.stderr
    return out


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Nothing is fetched: no external URL in src/href, no stylesheet links, no CSS url(), and a
    # CSP that forbids any fetch should one slip in.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text
    assert text.count("<script") == 1


def test_report_escapes_log_values(report: Path) -> None:
    text = report.read_text()
    assert XSS_UA not in text
    assert "<script>document.title" not in text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in text


def test_report_content(report: Path, investigation_lake: Path) -> None:
    text = report.read_text()
    for section in ('id="overview"', 'id="integrity"', 'id="findings"', 'id="activity"',
                    'id="top"'):
        assert section in text
    findings = query(investigation_lake, "SELECT severity, count(*) FROM findings GROUP BY 1")
    assert text.count('<details class="finding') == sum(n for _, n in findings) > 0
    for severity, n in findings:
        assert f'<div class="card sev-{severity}"><div class="v">{n}</div>' in text
    # Evidence: the denied CreateUser of the role chain is shown under its finding.
    event_id = query(investigation_lake, "SELECT eventID FROM cloudtrail WHERE eventName = "
                     "'CreateUser' AND userIdentity.arn = ?", HOP2_ARN)[0][0]
    assert f"<td>{event_id}</td>" in text
    assert ("trailscan investigate --principal arn:aws:iam::777788889999:role/DeployRole"
            in text)
    total = query(investigation_lake, "SELECT count(*) FROM cloudtrail")[0][0]
    assert f'<div class="v">{total}</div><div class="k">events</div>' in text
    # Integrity: sample rows verified, scenario rows unchecked, no problems.
    unchecked = query(investigation_lake, "SELECT count(*) FROM cloudtrail WHERE "
                      "integrity_status = 'unchecked'")[0][0]
    assert unchecked > 20
    assert f"no problems; {unchecked} events not verified" in text
    assert "<td>verified</td>" in text and "<td>unchecked</td>" in text
    # Charts: one activity chart and six top-N charts, each with bars.
    assert text.count('<svg class="chart') == 7
    assert text.count('class="bar"') > 60


def _signed_trail(root: Path, seed: int, days: float, events: int) -> TrailSpec:
    """One account and region, signed with a fresh key whose public half lies beside it,
    valid from two days before the trail."""
    spec = TrailSpec(seed=seed, days=days, events=events, accounts=("111122223333",),
                     regions=("us-east-1",), attacks=False, insights=False, duplicates=False)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_trail(spec, root, signing_key=key)
    (root / "public-keys.json").write_text(json.dumps(public_keys_document(
        key, spec.start - timedelta(days=2), spec.start + timedelta(days=30))))
    return spec


def test_report_lists_integrity_problems(tmp_path: Path) -> None:
    root = tmp_path / "trail"
    _signed_trail(root, seed=5, days=0.3, events=300)
    logs = sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail/" in str(p))
    victim = logs[0]
    victim.write_bytes(gzip.compress(gzip.decompress(victim.read_bytes()).replace(
        b'"eventName":"', b'"eventName":"X', 1)))
    digests = sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail-Digest/" in str(p))
    middle = digests[len(digests) // 2]
    middle.unlink()
    Path(f"{middle}.metadata.json").unlink(missing_ok=True)
    lake = tmp_path / "lake"
    ingest_lib([root], lake, validate=True)
    problems = query(lake, "SELECT kind FROM integrity_problems")
    out = build_report(lake, tmp_path / "r.html")
    text = out.read_text()
    assert f'<span class="badge bad">{len(problems)} problems, 0 gaps</span>' in text
    assert text.count("<td>log_file_unlisted</td>") == problems.count(("log_file_unlisted",)) > 0
    assert "<td>digest_missing</td>" in text and middle.name in text
    assert "<td>log_file_modified</td>" in text
    assert f"{victim.name}</td>" in text
    assert "<td>failed</td>" in text


def test_report_shows_coverage_gaps(tmp_path: Path) -> None:
    """A log file delivered where no digest covers it (here: a day before the chain starts, as
    when validation was turned on late or digests were deleted) is a gap, listed as one."""
    root = tmp_path / "trail"
    spec = _signed_trail(root, seed=7, days=0.2, events=200)
    first = sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail/" in str(p))[0]
    day = spec.start.strftime("%Y/%m/%d")
    earlier = (spec.start - timedelta(days=1)).strftime("%Y/%m/%d")
    stamp = re.search(r"_(\d{8}T\d{4}Z)_", first.name).group(1)
    before = (spec.start - timedelta(days=1)).strftime("%Y%m%dT%H%MZ")
    orphan = Path(str(first.parent).replace(day, earlier)) / first.name.replace(stamp, before)
    orphan.parent.mkdir(parents=True)
    shutil.copy(first, orphan)
    lake = tmp_path / "lake"
    ingest_lib([root], lake, validate=True)
    assert query(lake, "SELECT kind, object FROM integrity_problems") == [
        ("gap", orphan.relative_to(root).as_posix())]
    text = build_report(lake, tmp_path / "r.html").read_text()
    assert '<span class="badge bad">1 problems, 1 gaps</span>' in text
    assert "<h3>Problems and gaps</h3>" in text
    row = re.search(r"<tr><td>gap</td><td>111122223333</td><td>us-east-1</td>(.*?)</tr>", text)
    assert row is not None and orphan.name in row.group(1)


def test_report_on_empty_lake(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    ingest_lib([tmp_path / "empty"], tmp_path / "lake")
    text = build_report(tmp_path / "lake", tmp_path / "r.html").read_text()
    assert "No events." in text and "No findings stored" in text


def test_report_needs_a_lake(tmp_path: Path) -> None:
    result = run_cli("report", "--lake", tmp_path / "nope", "--output", tmp_path / "r.html")
    assert result.exit_code == 2 and result.stderr.startswith("Error: no trailscan lake")


def _chromium() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=180, check=False)


def test_report_drawn_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium found (.ci/run installs Debian's `chromium`; tried "
                    + ", ".join(BROWSERS) + ")")
    url = report.resolve().as_uri()
    dom = _browser(binary, tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None, dom.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs["data-ready"] == "1"  # the inline script ran to the end
    assert attrs["data-charts-drawn"] == "7"  # every chart has a box and bars after layout
    assert int(attrs["data-tables"]) == report.read_text().count("<table")
    assert "<title>trailscan report</title>" in dom.stdout  # the userAgent did not run
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom.stdout).group(1)
    assert "&lt;script&gt;document.title" in dom.stdout

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    result = _browser(binary, tmp_path / "profile", "--window-size=1400,2400",
                      f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000
    print(f"report screenshot: {shot}")
