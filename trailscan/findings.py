"""Findings exports: the row formats of `output`, plus SARIF 2.1.0 and OCSF Detection Finding."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from . import __version__
from .detections import SEVERITIES, Rule
from .errors import UsageError
from .output import emit

EXPORT_FORMATS = ("table", "json", "ndjson", "csv", "sarif", "ocsf")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"info": "note", "low": "note", "medium": "warning", "high": "error",
                "critical": "error"}
_SECURITY_SEVERITY = {"info": "0.0", "low": "3.0", "medium": "5.5", "high": "8.0",
                      "critical": "9.5"}
# OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical
_OCSF_SEVERITY = {name: (i + 1, name.capitalize() if name != "info" else "Informational")
                  for i, name in enumerate(SEVERITIES)}
OCSF_VERSION = "1.3.0"
TABLE_COLUMNS = ("severity", "rule_id", "account_id", "region", "principal", "event_count",
                 "first_seen", "last_seen")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value else None


def to_sarif(findings: pa.Table, rules: list[Rule]) -> dict[str, Any]:
    """One SARIF 2.1.0 log: the rules as `tool.driver.rules`, one result per finding."""
    used = set(findings.column("rule_id").to_pylist())
    driver_rules = [{
        "id": rule.id, "name": rule.title,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description},
        "help": {"text": f"{rule.runbook}\n\nFalse positives: {rule.false_positives}"},
        "helpUri": rule.references[0] if rule.references else None,
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        "properties": {"severity": rule.severity, "tags": [*rule.tags, *rule.tactics,
                                                           *rule.techniques],
                       "security-severity": _SECURITY_SEVERITY[rule.severity]},
    } for rule in rules if rule.id in used or not used]
    for entry in driver_rules:
        if entry["helpUri"] is None:
            del entry["helpUri"]
    index = {entry["id"]: i for i, entry in enumerate(driver_rules)}
    results = []
    for row in findings.to_pylist():
        result: dict[str, Any] = {
            "ruleId": row["rule_id"], "level": _SARIF_LEVEL[row["severity"]],
            "message": {"text": row["summary"]},
            "locations": [{"logicalLocations": [{
                "name": row["principal"], "kind": "principal",
                "fullyQualifiedName": f"{row['account_id']}/{row['region']}/{row['principal']}",
            }]}],
            "partialFingerprints": {"trailscan/v1": f"{row['rule_id']}|{row['account_id']}|"
                                                    f"{row['principal']}"},
            "properties": {"severity": row["severity"], "account_id": row["account_id"],
                           "region": row["region"], "principal": row["principal"],
                           "first_seen": _iso(row["first_seen"]),
                           "last_seen": _iso(row["last_seen"]),
                           "event_count": row["event_count"], "event_ids": row["event_ids"],
                           "source_ips": row["source_ips"]},
        }
        if row["rule_id"] in index:
            result["ruleIndex"] = index[row["rule_id"]]
        results.append(result)
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "trailscan", "version": __version__,
                            "informationUri": "https://github.com/trailscan/trailscan",
                            "rules": driver_rules}},
        "results": results,
    }]}


def to_ocsf(findings: pa.Table, rules: list[Rule]) -> list[dict[str, Any]]:
    """OCSF Detection Finding (class_uid 2004) events, one per finding."""
    by_id = {rule.id: rule for rule in rules}
    out = []
    for row in findings.to_pylist():
        rule = by_id.get(row["rule_id"])
        severity_id, severity = _OCSF_SEVERITY[row["severity"]]
        uid = f"{row['rule_id']}:{row['account_id']}:{row['principal']}:" \
              f"{_ms(row['first_seen'])}"
        out.append({
            "class_uid": 2004, "class_name": "Detection Finding",
            "category_uid": 2, "category_name": "Findings",
            "activity_id": 1, "activity_name": "Create", "type_uid": 200401,
            "severity_id": severity_id, "severity": severity,
            "status_id": 1, "status": "New",
            "time": _ms(row["last_seen"]),
            "message": row["summary"],
            "metadata": {"version": OCSF_VERSION,
                         "product": {"name": "trailscan", "vendor_name": "trailscan",
                                     "version": __version__}},
            "finding_info": {
                "title": row["title"], "uid": uid, "types": [row["rule_id"]],
                "desc": rule.description if rule else None,
                "first_seen_time": _ms(row["first_seen"]),
                "last_seen_time": _ms(row["last_seen"]),
                "analytic": {"uid": row["rule_id"], "name": row["title"], "type_id": 1,
                             "type": "Rule"},
                "attacks": [{"tactic": {"uid": t}} for t in row["tactic"].split(",") if t]
                + [{"technique": {"uid": t}} for t in row["techniques"]],
            },
            "cloud": {"provider": "AWS", "account": {"uid": row["account_id"]},
                      "region": row["region"]},
            "actor": {"user": {"uid": row["principal"], "name": row["principal"]}},
            "evidences": [{"data": {"event_ids": row["event_ids"],
                                    "event_count": row["event_count"]},
                           "src_endpoint": {"ip": ip}} for ip in row["source_ips"][:1]]
            or [{"data": {"event_ids": row["event_ids"], "event_count": row["event_count"]}}],
            "observables": [{"name": "cloudtrail.eventID", "type_id": 99, "type": "Other",
                             "value": event_id} for event_id in row["event_ids"]]
            + [{"name": "src_endpoint.ip", "type_id": 2, "type": "IP Address", "value": ip}
               for ip in row["source_ips"]],
            "unmapped": {"event_ids": row["event_ids"]},
        })
    return out


def export(findings: pa.Table, rules: list[Rule], fmt: str, output: str | None) -> None:
    """Write findings in `fmt` (see EXPORT_FORMATS) to `output` or stdout."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})")
    if fmt == "table":  # a terminal view; the other formats carry every column
        emit(findings.select(TABLE_COLUMNS), fmt, output)
        return
    if fmt not in ("sarif", "ocsf"):
        emit(findings, fmt, output)
        return
    doc: Any = to_sarif(findings, rules) if fmt == "sarif" else to_ocsf(findings, rules)
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if output:
        try:
            Path(output).write_bytes(data)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
