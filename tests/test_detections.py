"""Detections: every rule folder is lint-clean and passes its own events (real ingest, real SQL);
the engine finds the synthetic trail's planted attacks and stays quiet on its benign background."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import ingest_lib, make_record, run_cli, write_records

from trailscan.detections import (
    MAX_EVENT_IDS,
    SEVERITIES,
    RuleError,
    findings_view,
    lint_rules,
    load_rules,
    queries_dir,
    rule_dirs,
    run_rules,
    test_rule,
)
from trailscan.lake import Lake
from trailscan.synth import TrailSpec, TrailSummary, write_trail

RULE_DIRS = rule_dirs()
MY_RULES = ("root_console_login", "console_login_without_mfa", "cloudtrail_stop_logging",
            "cloudtrail_delete_trail", "guardduty_detector_deleted",
            "iam_create_policy_version_privesc", "iam_set_default_policy_version",
            "iam_attach_admin_policy", "iam_create_access_key_other_user",
            "ec2_security_group_open_admin_port")
# planted scenario -> {eventName of a planted signal event: the rule that must flag it}
COVERAGE = {
    "iam_privesc_policy_version": {"CreatePolicyVersion": "iam_create_policy_version_privesc",
                                   "SetDefaultPolicyVersion": "iam_set_default_policy_version"},
    "iam_privesc_attach_admin": {"AttachUserPolicy": "iam_attach_admin_policy",
                                 "CreateAccessKey": "iam_create_access_key_other_user"},
    "cloudtrail_stop_logging": {"StopLogging": "cloudtrail_stop_logging",
                                "DeleteTrail": "cloudtrail_delete_trail",
                                "DeleteDetector": "guardduty_detector_deleted"},
    # the root session's IAM browsing after the sign-in is not what this rule is about
    "root_console_login_no_mfa": {"ConsoleLogin": "root_console_login"},
    "sg_open_admin_port": {"AuthorizeSecurityGroupIngress": "ec2_security_group_open_admin_port"},
    # the successful sign-in at the end of the brute force (the failures are another rule's)
    "console_login_bruteforce": {"ConsoleLogin:Success": "console_login_without_mfa"},
}


# --- every rule folder ----------------------------------------------------------------------


def test_rule_folders_exist_and_include_the_first_ten() -> None:
    assert queries_dir().is_dir()
    names = {p.name for p in RULE_DIRS}
    assert set(MY_RULES) <= names


@pytest.mark.parametrize("path", RULE_DIRS, ids=[p.name for p in RULE_DIRS])
def test_rule_is_lint_clean_and_passes_its_events(path: Path, tmp_path: Path) -> None:
    single = tmp_path / "rules"
    shutil.copytree(path, single / path.name)
    assert lint_rules(single) == []
    (rule,) = load_rules(single)
    assert rule.id == path.name
    assert test_rule(rule) == []


@pytest.mark.parametrize("path", RULE_DIRS, ids=[p.name for p in RULE_DIRS])
def test_rule_has_positive_and_negative_events(path: Path) -> None:
    for name in ("match.json", "nomatch.json"):
        records = json.loads((path / name).read_text())["Records"]
        assert len(records) >= 1, f"{path.name}/{name}"


def test_rule_test_reports_a_rule_that_misses_its_events(tmp_path: Path) -> None:
    broken = tmp_path / "rules" / "root_console_login"
    shutil.copytree(queries_dir() / "root_console_login", broken)
    (broken / "rule.sql").write_text("SELECT * FROM cloudtrail WHERE eventName = 'Nothing'\n")
    (match,) = [e for e in test_rule(load_rules(broken.parent)[0]) if "match.json" in e]
    assert "not matched" in match
    (broken / "rule.sql").write_text("SELECT * FROM cloudtrail\n")
    errors = test_rule(load_rules(broken.parent)[0])
    assert any("nomatch.json: matched" in e for e in errors), errors


# --- lint -----------------------------------------------------------------------------------


def _broken_rules_dir(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(queries_dir() / "cloudtrail_stop_logging", rules / "cloudtrail_stop_logging")
    bad = rules / "bad_rule"
    shutil.copytree(queries_dir() / "cloudtrail_delete_trail", bad)
    toml = (bad / "rule.toml").read_text().replace('id = "cloudtrail_delete_trail"',
                                                    'id = "bad_rule"')
    (bad / "rule.toml").write_text("\n".join(line for line in toml.splitlines()
                                             if not line.startswith("severity")) + "\n")
    (bad / "rule.sql").write_text("SELECT * FROM cloudtrail WHERE eventNme = 'DeleteTrail'\n")
    return rules


def test_lint_reports_every_problem_in_one_pass(tmp_path: Path) -> None:
    errors = lint_rules(_broken_rules_dir(tmp_path))
    assert any(e.startswith("rules/bad_rule/rule.toml:") and "severity" in e for e in errors)
    assert any(e.startswith("rules/bad_rule/rule.sql:") and "eventNme" in e for e in errors)
    assert not any("cloudtrail_stop_logging" in e for e in errors)


def test_lint_catches_id_mismatch_bad_values_and_missing_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rule = rules / "renamed"
    shutil.copytree(queries_dir() / "guardduty_detector_deleted", rule)
    text = (rule / "rule.toml").read_text().replace('severity = "high"', 'severity = "urgent"')
    (rule / "rule.toml").write_text(text)
    (rule / "nomatch.json").unlink()
    (rule / "match.json").write_text('{"Records": []}')
    errors = "\n".join(lint_rules(rules))
    assert "differs from its folder name" in errors
    assert "'urgent' is not one of" in errors
    assert "rules/renamed/nomatch.json: missing" in errors
    assert "rules/renamed/match.json: not a CloudTrail envelope" in errors


def test_cli_rules_lint_exits_1_with_both_errors(tmp_path: Path) -> None:
    result = run_cli("rules", "lint", "--rules-dir", _broken_rules_dir(tmp_path))
    assert result.exit_code == 1
    assert "bad_rule/rule.toml" in result.stderr and "bad_rule/rule.sql" in result.stderr
    clean = run_cli("rules", "lint")
    assert clean.exit_code == 0, clean.stderr


def test_loading_an_invalid_rule_is_a_clean_cli_error(tmp_path: Path) -> None:
    rules = _broken_rules_dir(tmp_path)
    with pytest.raises(RuleError, match=r"bad_rule/rule\.toml"):
        load_rules(rules)
    result = run_cli("detect", "--rules-dir", rules, "--lake", tmp_path / "nolake")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")


# --- CLI: rules list / show / test ------------------------------------------------------------


def test_cli_rules_list_show_and_test() -> None:
    listed = run_cli("rules", "list", "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {r["id"] for r in rows} >= {p.name for p in RULE_DIRS}
    assert all(r["severity"] in SEVERITIES for r in rows)
    shown = run_cli("rules", "show", "iam_attach_admin_policy")
    assert shown.exit_code == 0 and "AdministratorAccess" in shown.stdout
    assert run_cli("rules", "show", "no_such_rule").exit_code == 2
    tested = run_cli("rules", "test", "--rule", "root_console_login", "--rule",
                     "cloudtrail_stop_logging")
    assert tested.exit_code == 0, tested.stdout
    assert tested.stdout.splitlines() == ["PASS cloudtrail_stop_logging",
                                          "PASS root_console_login"]


def test_cli_rules_test_fails_on_a_broken_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(queries_dir() / "root_console_login", rules / "root_console_login")
    (rules / "root_console_login" / "rule.sql").write_text("SELECT * FROM cloudtrail\n")
    result = run_cli("rules", "test", "--rules-dir", rules)
    assert result.exit_code == 1
    assert result.stdout.startswith("FAIL root_console_login")


# --- the engine on the synthetic trail --------------------------------------------------------


@pytest.fixture(scope="module")
def attack_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrailSummary]:
    root = tmp_path_factory.mktemp("attack")
    summary = write_trail(TrailSpec(digests=False), root / "trail")
    ingest_lib([root / "trail"], root / "lake")
    return root / "lake", summary


@pytest.fixture(scope="module")
def attack_findings(attack_lake: tuple[Path, TrailSummary]) -> list[dict[str, Any]]:
    return run_rules(attack_lake[0], load_rules(), store=True).to_pylist()


@pytest.fixture(scope="module")
def benign_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("benign")
    summary = write_trail(TrailSpec(attacks=False, digests=False), root / "trail")
    assert summary.planted == []
    ingest_lib([root / "trail"], root / "lake")
    return root / "lake"


@pytest.fixture(scope="module")
def benign_findings(benign_lake: Path) -> list[dict[str, Any]]:
    return run_rules(benign_lake, load_rules()).to_pylist()


def _signal_events(lake: Path, ids: tuple[str, ...]) -> dict[str, str]:
    """eventID -> eventName (ConsoleLogin as ConsoleLogin:<result>) of planted events."""
    con = Lake.open(lake).connect()
    try:
        rows = con.execute(
            "SELECT eventID, eventName || CASE WHEN eventName = 'ConsoleLogin' THEN ':' || "
            "json_extract_string(responseElements, '$.ConsoleLogin') ELSE '' END "
            "FROM cloudtrail WHERE list_contains($1, eventID)", [list(ids)]).fetchall()
    finally:
        con.close()
    return dict(rows)


@pytest.mark.parametrize("scenario", sorted(COVERAGE))
def test_planted_attack_is_found(scenario: str, attack_lake: tuple[Path, TrailSummary],
                                 attack_findings: list[dict[str, Any]]) -> None:
    lake, summary = attack_lake
    (planted,) = [p for p in summary.planted if p.scenario == scenario]
    events = _signal_events(lake, planted.event_ids)
    assert set(events) == set(planted.event_ids)
    wanted = COVERAGE[scenario]
    checked = 0
    for event_id, name in events.items():
        rule = wanted.get(name) or wanted.get(name.split(":")[0])
        if rule is None:
            continue
        flagged = {i for f in attack_findings if f["rule_id"] == rule
                   and f["account_id"] == planted.account_id for i in f["event_ids"]}
        assert event_id in flagged, f"{rule} missed {name} {event_id} of {scenario}"
        checked += 1
    assert checked >= len(wanted)


def test_findings_have_the_documented_shape(attack_findings: list[dict[str, Any]]) -> None:
    assert attack_findings
    for f in attack_findings:
        assert f["severity"] in SEVERITIES
        assert f["first_seen"] <= f["last_seen"]
        assert 1 <= len(f["event_ids"]) <= min(f["event_count"], MAX_EVENT_IDS)
        assert f["summary"].startswith(f"{f['event_count']} x ")
        assert f["principal"] in f["summary"]
    stop = [f for f in attack_findings if f["rule_id"] == "cloudtrail_stop_logging"]
    assert [f["principal"] for f in stop] == ["arn:aws:iam::777788889999:role/DevOps"]
    assert stop[0]["source_ips"] == ["198.51.100.231"]
    assert stop[0]["tactic"] == "TA0005" and stop[0]["techniques"] == ["T1562.008"]


# Rules from another writer that, at the time of writing, flag the synthetic benign background
# above `low` (routine RunInstances with an instance profile / UpdateFunctionCode by CI): known,
# reported, not ours to edit. Non-strict, so the test turns green when they are tuned.
@pytest.mark.parametrize("path", RULE_DIRS, ids=lambda p: p.name)
def test_benign_background_gives_nothing_above_low(path: Path,
                                                   benign_findings: list[dict[str, Any]]) -> None:
    noisy = [f["summary"] for f in benign_findings if f["rule_id"] == path.name
             and SEVERITIES.index(f["severity"]) > SEVERITIES.index("low")]
    assert noisy == []


def test_findings_are_stored_and_exposed_as_a_view(
        attack_lake: tuple[Path, TrailSummary], attack_findings: list[dict[str, Any]]) -> None:
    lake = Lake.open(attack_lake[0])
    stored = pq.read_table(lake.root / "findings" / "findings.parquet")
    assert stored.num_rows == len(attack_findings)
    assert not list((lake.root / "findings").glob("*.tmp"))
    con = lake.connect()
    try:
        findings_view(con, lake)
        count = con.execute("SELECT count(*) FROM findings").fetchone()
    finally:
        con.close()
    assert count == (len(attack_findings),)


def test_findings_view_is_empty_before_any_detect_run(tmp_path: Path, lake: Path) -> None:
    ingest_lib([write_records(tmp_path / "one.json", [make_record()])], lake)
    opened = Lake.open(lake)
    con = opened.connect()
    try:
        findings_view(con, opened)
        assert con.execute("SELECT count(*) FROM findings").fetchone() == (0,)
    finally:
        con.close()


def test_since_until_and_min_severity(attack_lake: tuple[Path, TrailSummary]) -> None:
    from datetime import UTC, datetime

    rules = load_rules()
    later = run_rules(attack_lake[0], rules, since=datetime(2030, 1, 1, tzinfo=UTC))
    assert later.num_rows == 0
    earlier = run_rules(attack_lake[0], rules, until=datetime(2020, 1, 1, tzinfo=UTC))
    assert earlier.num_rows == 0
    high = run_rules(attack_lake[0], rules, min_severity="high").to_pylist()
    assert high and all(f["severity"] in ("high", "critical") for f in high)


def test_event_ids_are_capped_but_counted(tmp_path: Path, lake: Path) -> None:
    records = [make_record(eventSource="cloudtrail.amazonaws.com", eventName="StopLogging",
                           eventTime=f"2024-03-01T12:{i // 60:02d}:{i % 60:02d}Z",
                           requestParameters={"name": "audit"}, responseElements=None,
                           managementEvent=True, eventCategory="Management")
               for i in range(MAX_EVENT_IDS + 5)]
    write_records(tmp_path / "src" / "stop.json", records)
    ingest_lib([tmp_path / "src"], lake)
    rules = [r for r in load_rules() if r.id == "cloudtrail_stop_logging"]
    (finding,) = run_rules(lake, rules).to_pylist()
    assert finding["event_count"] == MAX_EVENT_IDS + 5
    assert finding["event_ids"] == [r["eventID"] for r in records][:MAX_EVENT_IDS]
    assert finding["principal"] == "arn:aws:iam::111122223333:role/Admin"


# --- CLI detect and exports ---------------------------------------------------------------------


def test_detect_exports(attack_lake: tuple[Path, TrailSummary], tmp_path: Path) -> None:
    lake = attack_lake[0]
    snapshot = tmp_path / "rules"  # rules may be added while the test runs: compare like with like
    shutil.copytree(queries_dir(), snapshot)
    as_json = run_cli("detect", "--lake", lake, "--rules-dir", snapshot, "--format", "json")
    assert as_json.exit_code == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert rows
    for key in ("rule_id", "title", "severity", "tactic", "techniques", "account_id", "region",
                "principal", "first_seen", "last_seen", "event_count", "event_ids",
                "source_ips", "summary"):
        assert key in rows[0], key

    sarif = run_cli("detect", "--lake", lake, "--rules-dir", snapshot, "--format", "sarif")
    doc = json.loads(sarif.stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    assert len(run["results"]) == len(rows)
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert {r["ruleId"] for r in run["results"]} <= rule_ids
    first = run["results"][0]
    assert first["level"] in ("note", "warning", "error")
    assert first["message"]["text"] == rows[0]["summary"]
    assert first["properties"]["event_ids"] == rows[0]["event_ids"]

    out = tmp_path / "findings.ocsf.json"
    ocsf = run_cli("detect", "--lake", lake, "--rules-dir", snapshot, "--format", "ocsf",
                   "--output", out)
    assert ocsf.exit_code == 0 and ocsf.stdout == ""
    events = json.loads(out.read_text())
    assert len(events) == len(rows)
    assert {e["class_uid"] for e in events} == {2004}
    assert {e["category_uid"] for e in events} == {2}
    assert events[0]["metadata"]["product"]["name"] == "trailscan"
    assert events[0]["finding_info"]["title"] == rows[0]["title"]
    assert 1 <= events[0]["severity_id"] <= 5
    assert events[0]["evidences"][0]["data"]["event_ids"] == rows[0]["event_ids"]

    as_csv = run_cli("detect", "--lake", lake, "--format", "csv", "--rule", "root_console_login")
    reader = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert reader[0][:3] == ["rule_id", "title", "severity"]
    assert len(reader) == 2 and reader[1][0] == "root_console_login"

    table = run_cli("detect", "--lake", lake, "--rules-dir", snapshot, "--min-severity", "high")
    assert table.exit_code == 0 and "cloudtrail_stop_logging" in table.stdout
    assert "event_ids" not in table.stdout  # the compact view

    ndjson = run_cli("detect", "--lake", lake, "--format", "ndjson", "--tag", "cloudtrail")
    assert {json.loads(line)["rule_id"] for line in ndjson.stdout.splitlines()} >= {
        "cloudtrail_stop_logging", "cloudtrail_delete_trail"}


def test_detect_fail_on(attack_lake: tuple[Path, TrailSummary], benign_lake: Path) -> None:
    hit = run_cli("detect", "--lake", attack_lake[0], "--format", "json", "--fail-on", "high")
    assert hit.exit_code == 1
    assert json.loads(hit.stdout)  # the findings are printed before the exit
    quiet = run_cli("detect", "--lake", benign_lake, "--format", "json", "--fail-on", "high")
    assert quiet.exit_code == 0, quiet.stderr
    assert (benign_lake / "findings" / "findings.parquet").exists()  # a full run stores
    assert run_cli("detect", "--lake", attack_lake[0], "--rule", "nope").exit_code == 2
    assert run_cli("detect", "--lake", attack_lake[0], "--fail-on", "urgent").exit_code == 2
