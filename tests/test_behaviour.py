"""Behavioural detections over a 14-day synthetic trail: every planted anomaly is found with the
right principal, the benign-only variant gives nothing at medium or above, baselines are read
before --since, and parameters are bound and overridable."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import ingest_lib, run_cli

from trailscan.detections import (
    MAX_EVENT_IDS,
    SEVERITIES,
    lint_rules,
    load_rules,
    run_rules,
    select_rules,
)
from trailscan.errors import UsageError
from trailscan.rule_params import apply_overrides, parse_overrides
from trailscan.synth_behaviour import START, Anomaly, kinds, write_behaviour_trail

BACKGROUND = 20_000


@pytest.fixture(scope="module")
def behaviour_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Anomaly]]:
    root = tmp_path_factory.mktemp("behaviour")
    _, planted = write_behaviour_trail(root / "trail", background_events=BACKGROUND)
    ingest_lib([root / "trail"], root / "lake")
    return root / "lake", planted


@pytest.fixture(scope="module")
def behaviour_findings(behaviour_lake: tuple[Path, list[Anomaly]]) -> list[dict[str, Any]]:
    return run_rules(behaviour_lake[0], load_rules()).to_pylist()


@pytest.fixture(scope="module")
def benign_findings(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("behaviour-benign")
    _, planted = write_behaviour_trail(root / "trail", background_events=BACKGROUND,
                                       anomalies=False)
    assert planted == []
    ingest_lib([root / "trail"], root / "lake")
    return run_rules(root / "lake", load_rules()).to_pylist()


def _behaviour_rules() -> list[str]:
    return sorted(r.id for r in load_rules() if "behaviour" in r.tags)


def test_every_behavioural_rule_has_a_planted_anomaly() -> None:
    assert kinds() == _behaviour_rules()
    assert len(kinds()) >= 20


@pytest.mark.parametrize("kind", kinds())
def test_planted_anomaly_is_found_with_its_principal(
        kind: str, behaviour_lake: tuple[Path, list[Anomaly]],
        behaviour_findings: list[dict[str, Any]]) -> None:
    _, planted = behaviour_lake
    for anomaly in (a for a in planted if a.kind == kind):
        hits = [f for f in behaviour_findings if f["rule_id"] == kind
                and f["principal"] == anomaly.principal and f["account_id"] == anomaly.account_id]
        assert hits, f"{kind} missed {anomaly.description} ({anomaly.principal})"
        flagged = {i for f in hits for i in f["event_ids"]}
        count = sum(f["event_count"] for f in hits)
        assert count >= len(anomaly.event_ids)
        if count <= MAX_EVENT_IDS:  # every signal event listed (ids are capped per finding)
            assert set(anomaly.event_ids) <= flagged
        else:
            assert set(anomaly.event_ids) & flagged
        summary = " ".join(f["summary"] for f in hits)
        assert anomaly.principal in summary


def test_findings_carry_baseline_and_observed_values(
        behaviour_findings: list[dict[str, Any]]) -> None:
    spikes = [f for f in behaviour_findings if f["rule_id"] == "s3_access_spike"
              and f["principal"].endswith(":role/etl-role")]
    assert len(spikes) == 1
    assert "300 x GetObject on s3://acme-lake-111122223333" in spikes[0]["summary"]
    assert "baseline over 14 days: median" in spikes[0]["summary"]
    rate = [f for f in behaviour_findings if f["rule_id"] == "api_call_rate_spike"
            and f["principal"].endswith(":role/batch-role")]
    assert rate and "400 of them by this principal (" in rate[0]["summary"]


def test_benign_variant_gives_no_behavioural_finding_at_medium_or_above(
        benign_findings: list[dict[str, Any]]) -> None:
    mine = set(_behaviour_rules())
    loud = [f"{f['rule_id']}: {f['summary']}" for f in benign_findings
            if f["rule_id"] in mine and SEVERITIES.index(f["severity"]) >= 2]
    assert loud == []


def test_since_reads_the_baseline_before_the_window(
        behaviour_lake: tuple[Path, list[Anomaly]]) -> None:
    lake, planted = behaviour_lake
    rules = select_rules(load_rules(), ("s3_access_spike", "first_seen_region",
                                        "cloudtrail_stop_logging"))
    since = START + timedelta(days=10)
    findings = run_rules(lake, rules, since=since).to_pylist()
    etl = [f for f in findings if f["principal"].endswith(":role/etl-role")]
    assert len(etl) == 1 and etl[0]["rule_id"] == "s3_access_spike"
    assert all(f["first_seen"] >= since for f in findings)
    hank = next(a for a in planted if a.kind == "first_seen_region")
    assert any(f["principal"] == hank.principal for f in findings)
    # without the history a first-seen rule would flag every principal's first day in the window
    assert not any(f["rule_id"] == "first_seen_region" and f["principal"] != hank.principal
                   for f in findings)


def test_overrides_change_what_fires(behaviour_lake: tuple[Path, list[Anomaly]]) -> None:
    lake, _ = behaviour_lake
    (rule,) = select_rules(load_rules(), ("s3_access_spike",))
    quiet = apply_overrides([rule], parse_overrides(["s3_access_spike.floor=100000",
                                                     "s3_access_spike.bytes_floor=1e15"]))
    assert quiet[0].params["floor"] == 100000 and rule.params["floor"] == 100
    assert run_rules(lake, quiet).num_rows == 0
    # a 1-day baseline still sees the spikes (they are far above any hour of the day before)
    short = apply_overrides([rule], baseline_days=1)
    assert short[0].params["baseline_days"] == 1
    assert run_rules(lake, short).num_rows >= 3


def test_bad_overrides_are_usage_errors() -> None:
    rules = load_rules()
    for items, message in ((["s3_access_spike.nope=1"], "unknown parameter"),
                           (["no_such_rule.k=1"], "no such"),
                           (["s3_access_spike.floor=abc"], "is not a number"),
                           (["floor=1"], "expected RULE_ID.NAME=VALUE")):
        with pytest.raises(UsageError, match=message):
            apply_overrides(rules, parse_overrides(items))
    with pytest.raises(UsageError, match="at least 1"):
        apply_overrides(rules, baseline_days=0)


def test_cli_detect_param_and_baseline_days(behaviour_lake: tuple[Path, list[Anomaly]]) -> None:
    lake, _ = behaviour_lake
    result = run_cli("detect", "--lake", lake, "--rule", "s3_access_spike", "--format", "json",
                     "--param", "s3_access_spike.floor=250", "--baseline-days", "7")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["principal"].rsplit(":", 1)[1] for r in rows} == {"role/etl-role"}
    bad = run_cli("detect", "--lake", lake, "--param", "s3_access_spike.floor=x")
    assert bad.exit_code == 2 and "Error: --param s3_access_spike.floor" in bad.output


def test_lint_rejects_bad_params(tmp_path: Path) -> None:
    src = load_rules()[0].path.parent / "s3_access_spike"
    dst = tmp_path / "s3_access_spike"
    dst.mkdir()
    for name in ("rule.sql", "match.json", "nomatch.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    toml = (src / "rule.toml").read_text().replace("baseline_days = 14", "baseline_days = 0")
    (dst / "rule.toml").write_text(toml + "window_start = 1\n")
    errors = "\n".join(lint_rules(tmp_path))
    assert "params.baseline_days: 0 is less than the minimum of 1" in errors
    assert "window_start" in errors
