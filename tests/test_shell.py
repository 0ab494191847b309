"""`trailscan shell`: statements, dialects, formats and errors through the real prompt loop."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner
from conftest import query
from scenarios import HOP2_ARN

from trailscan.cli import cli


def shell(lake: Path, script: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["shell", "--lake", str(lake), *args], input=script)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout


def test_statements_dialects_and_formats(investigation_lake: Path) -> None:
    code, out = shell(investigation_lake, (
        ".format csv\n"
        "SELECT count(*) AS n\n  FROM cloudtrail;\n"
        ".dialect athena\n"
        "SELECT eventtime, json_extract_scalar(requestparameters, '$.bucketName') AS bucket\n"
        f"FROM cloudtrail_logs WHERE useridentity.arn = '{HOP2_ARN}'\n"
        "  AND eventname = 'PutBucketPolicy';\n"
        "CREATE TEMP TABLE t AS SELECT 7 AS seven; SELECT seven FROM t;\n"))
    assert code == 0
    total = query(investigation_lake, "SELECT count(*) FROM cloudtrail")[0][0]
    lines = out.splitlines()
    assert lines[:3] == ["format csv", "n", str(total)]
    assert lines[3] == "dialect athena"
    assert list(csv.reader(io.StringIO("\n".join(lines[4:6])))) == [
        ["eventtime", "bucket"], ["2026-03-03T10:07:00Z", "acme-prod-secrets"]]
    assert lines[6:] == ["seven", "7"]  # one connection: the temp table lives on


def test_errors_do_not_end_the_session(investigation_lake: Path) -> None:
    code, out = shell(investigation_lake, (
        "SELECT nosuch FROM cloudtrail;\n"
        ".dialect athena\nSELECT (eventname FROM cloudtrail_logs;\n"
        ".nonsense\n.tables\n.format csv\nSELECT 1 AS ok;\n.quit\nSELECT 2 AS never;\n"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Error: SQL error: ") and "nosuch" in lines[0]
    assert lines[1] == "dialect athena"
    assert lines[2].startswith("Error: cannot parse Athena SQL at line 1")
    assert lines[3] == "Error: unknown command '.nonsense' (.help lists them)"
    assert lines[4].split() == ["cloudtrail", "cloudtrail_logs", "findings", "integrity",
                                "integrity_problems", "manifest", "quarantine"]
    assert lines[5:] == ["format csv", "ok", "1"]


def test_shell_needs_a_lake(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["shell", "--lake", str(tmp_path / "none")], input="")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no trailscan lake")
