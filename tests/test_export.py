"""`trailscan rules export`: every rule as SQL for another engine, self-contained and faithful."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import duckdb_finding_keys, run_cli

from trailscan.detections import load_rules
from trailscan.export import DIALECTS, export_rule, export_rules

RULES = load_rules()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_rule_exports_or_says_why(dialect: str) -> None:
    exported = export_rules(RULES, dialect)
    assert [e.rule.id for e in exported] == [r.id for r in RULES]
    for item in exported:
        assert item.ok or item.reason, item.rule.id
        if item.ok:
            assert item.sql is not None
            assert item.sql.startswith(f"-- trailscan rule {item.rule.id} ({dialect})\n")
            lowered = item.sql.lower()
            for leftover in ("getvariable", "ts_principal", "ts_is_caller", "ts_ip_prefix",
                             "ts_ua_family", "ts_is_ip"):
                assert leftover not in lowered, (item.rule.id, leftover)
            if dialect != "duckdb":
                assert "materialized" not in lowered and "group by all" not in lowered


def test_exported_duckdb_sql_finds_what_the_rule_finds(planted_lake: Path) -> None:
    """Parameters inlined and macros expanded: the same findings as the rule itself, for every
    rule (run on the planted lake, where they fire)."""
    fired = 0
    for rule in RULES:
        exported = export_rule(rule, "duckdb")
        assert exported.sql is not None
        expected = duckdb_finding_keys(planted_lake, rule)
        assert duckdb_finding_keys(planted_lake, rule, exported.sql) == expected, rule.id
        fired += bool(expected)
    assert fired >= len(RULES) - 5  # the lake gives (almost) every rule something to find


def test_cli_writes_one_file_per_rule(tmp_path: Path) -> None:
    result = run_cli("rules", "export", "--dialect", "spark", "--output", tmp_path / "out")
    assert result.exit_code == 0, result.stderr
    files = sorted(p.stem for p in (tmp_path / "out").glob("*.sql"))
    assert files == [r.id for r in RULES]
    text = (tmp_path / "out" / "s3_access_spike.sql").read_text()
    assert text.startswith("-- trailscan rule s3_access_spike (spark)\n-- title: ")
    assert "-- params: baseline_days=" in text and text.endswith(";\n")
    assert f"{len(RULES)} rules exported for spark" in result.stderr


def test_cli_prints_selected_rules_to_stdout() -> None:
    result = run_cli("rules", "export", "--dialect", "trino", "--rule", "cis_root_usage",
                     "--rule", "unusual_hour")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("-- trailscan rule ") == 2
    assert "(trino)" in result.stdout and result.stdout.rstrip().endswith(";")
    assert "2 rules exported for trino, 0 not expressible" in result.stderr


def test_cli_writes_overridden_parameters() -> None:
    result = run_cli("rules", "export", "--dialect", "spark", "--rule", "s3_access_spike",
                     "--param", "s3_access_spike.floor=7", "--baseline-days", "30")
    assert result.exit_code == 0, result.stderr
    assert "floor=7" in result.stdout and "baseline_days=30" in result.stdout
    assert "INTERVAL '720' HOUR PRECEDING" in result.stdout  # 30 days, in the frame's unit
    bad = run_cli("rules", "export", "--dialect", "spark", "--param", "nope.x=1")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: --param nope.x")


def test_cli_reports_a_rule_that_cannot_be_expressed(tmp_path: Path) -> None:
    rule = tmp_path / "rules" / "needs_duckdb"
    rule.mkdir(parents=True)
    (rule / "rule.toml").write_text('id = "needs_duckdb"\ntitle = "t"\nseverity = "low"\n')
    (rule / "rule.sql").write_text("SELECT * FROM cloudtrail WHERE list_distinct([1]) = [1]\n"
                                   "AND getvariable('nope') IS NULL")
    result = run_cli("rules", "export", "--dialect", "spark", "--rules-dir", tmp_path / "rules")
    assert result.exit_code == 1
    assert "not exported: needs_duckdb: getvariable('nope') names no parameter" in result.stderr
    assert "0 rules exported for spark, 1 not expressible" in result.stderr
    assert result.stdout == ""


def test_exports_parse_back_in_their_dialect() -> None:
    """Not proof that Trino/Athena run them (no engine here; Spark is proven in test_spark),
    but every file is valid SQL of its dialect."""
    import sqlglot

    for dialect in ("spark", "trino", "athena"):
        for item in export_rules(RULES, dialect):
            assert item.sql is not None
            sqlglot.parse_one(item.sql, read=dialect)
