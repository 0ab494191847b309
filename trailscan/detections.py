"""Detections: load the rules in `queries/<id>/`, lint and test them, run them over the lake.

A rule is a folder with `rule.toml` (metadata), `rule.sql` (a DuckDB query over the `cloudtrail`
view returning the matching events) and `match.json`/`nomatch.json` (test events). Findings group
the matching events per (rule, account, principal) and are stored in
`<lake>/findings/findings.parquet`, which `findings_view` exposes as the view `findings`.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import rule_params
from .errors import TrailscanError, UsageError
from .lake import Lake

SEVERITIES = ("info", "low", "medium", "high", "critical")
MAX_EVENT_IDS = 100
FINDINGS_FILE = Path("findings") / "findings.parquet"
RULE_FILES = ("rule.toml", "rule.sql", "match.json", "nomatch.json")
_SCHEMA_PATH = Path(__file__).with_name("rule.schema.json")
# Optional columns a rule may return besides the cloudtrail ones: `evidence` (text joined into
# the finding's summary: baseline and observed values) and `finding_principal` (overrides the
# principal a finding is grouped by, e.g. the source IP of a password spray).
OPTIONAL_COLUMNS = ("evidence", "finding_principal")
MAX_EVIDENCE = 3

FINDINGS_SCHEMA = pa.schema([
    ("rule_id", pa.string()), ("title", pa.string()), ("severity", pa.string()),
    ("tactic", pa.string()), ("techniques", pa.list_(pa.string())),
    ("account_id", pa.string()), ("region", pa.string()), ("principal", pa.string()),
    ("first_seen", pa.timestamp("us", tz="UTC")), ("last_seen", pa.timestamp("us", tz="UTC")),
    ("event_count", pa.int64()), ("event_ids", pa.list_(pa.string())),
    ("source_ips", pa.list_(pa.string())), ("summary", pa.string()),
])


class RuleError(TrailscanError):
    """A rule cannot be loaded (unreadable or invalid rule.toml, missing rule.sql)."""


@dataclass(frozen=True)
class Rule:
    """One detection rule as loaded from its folder."""

    id: str
    title: str
    severity: str
    description: str
    sql: str
    path: Path
    tactics: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    false_positives: str = ""
    runbook: str = ""
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def severity_rank(self) -> int:
        return SEVERITIES.index(self.severity)

    @property
    def history(self) -> timedelta:
        """How far before the detection window the rule reads (baselines, sequence look-back)."""
        return (timedelta(days=float(self.params.get("baseline_days", 0)))
                + timedelta(minutes=float(self.params.get("window_minutes", 0))))


def queries_dir() -> Path:
    """The bundled rules: `queries/` of a checkout, else the installed `trailscan_queries`."""
    checkout = Path(__file__).resolve().parents[1] / "queries"
    if checkout.is_dir():
        return checkout
    import trailscan_queries  # the wheel ships queries/ as this package

    return Path(trailscan_queries.__file__).resolve().parent


def rule_dirs(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Every rule folder (a folder holding rule.toml or rule.sql), sorted by name."""
    root = Path(directory) if directory else queries_dir()
    if not root.is_dir():
        raise UsageError(f"no rules directory at {root}")
    return sorted(p for p in root.iterdir() if p.is_dir()
                  and ((p / "rule.toml").exists() or (p / "rule.sql").exists()))


def _where(path: Path, name: str) -> str:
    return f"{path.parent.name}/{path.name}/{name}"


def _load(path: Path) -> Rule:
    toml_path = path / "rule.toml"
    try:
        meta = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{_where(path, 'rule.toml')}: cannot read: {exc}") from None
    try:
        sql = (path / "rule.sql").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{_where(path, 'rule.sql')}: cannot read: {exc}") from None
    severity = meta.get("severity")
    if severity not in SEVERITIES:
        raise RuleError(f"{_where(path, 'rule.toml')}: severity {severity!r} is not one of "
                        f"{', '.join(SEVERITIES)}")

    def strings(key: str) -> tuple[str, ...]:
        value = meta.get(key) or ()
        return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)

    return Rule(id=str(meta.get("id", path.name)), title=str(meta.get("title", path.name)),
                severity=severity, description=str(meta.get("description", "")),
                sql=sql, path=path, tactics=strings("tactics"), techniques=strings("techniques"),
                tags=strings("tags"), references=strings("references"),
                false_positives=str(meta.get("false_positives", "")),
                runbook=str(meta.get("runbook", "")), params=dict(meta.get("params") or {}),
                metadata=meta)


def load_rules(directory: str | os.PathLike[str] | None = None) -> list[Rule]:
    """All rules of `directory` (default: the bundled `queries/`), sorted by id."""
    return [_load(path) for path in rule_dirs(directory)]


def select_rules(rules: list[Rule], ids: tuple[str, ...] = (), tags: tuple[str, ...] = (),
                 min_severity: str | None = None) -> list[Rule]:
    """Rules with one of `ids` (all when empty), one of `tags`, at or above `min_severity`."""
    known = {r.id for r in rules}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UsageError(f"unknown rule {', '.join(unknown)} (see `trailscan rules list`)")
    floor = _rank(min_severity)
    return [r for r in rules if (not ids or r.id in ids)
            and (not tags or set(tags) & set(r.tags)) and r.severity_rank >= floor]


def _rank(severity: str | None) -> int:
    if severity is None:
        return 0
    if severity not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r} (choose from {', '.join(SEVERITIES)})")
    return SEVERITIES.index(severity)


# --- lint -----------------------------------------------------------------------------------


def _envelope_errors(path: Path) -> tuple[list[str], list[str]]:
    """(errors, eventIDs) of a test-event file, which must be {"Records": [>= 1 event]}."""
    where = _where(path.parent, path.name)
    if not path.exists():
        return [f"{where}: missing"], []
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        return [f"{where}: not JSON: {exc}"], []
    records = doc.get("Records") if isinstance(doc, dict) else None
    if not isinstance(records, list) or not records:
        return [f'{where}: not a CloudTrail envelope {{"Records": [...]}} with >= 1 event'], []
    errors, ids = [], []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not record.get("eventID") \
                or not record.get("eventName") or not record.get("eventTime"):
            errors.append(f"{where}: Records[{i}] lacks eventID, eventName or eventTime")
        else:
            ids.append(str(record["eventID"]))
    return errors, ids


def _empty_lake_connection(tmp: Path) -> Any:
    con = Lake.open(tmp / "lake", create=True).connect()
    rule_params.prepare(con)
    return con


def lint_rules(directory: str | os.PathLike[str] | None = None) -> list[str]:
    """Every problem of every rule in one pass, each `queries/<id>/<file>: <message>`."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(_SCHEMA_PATH.read_text()))
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="trailscan-lint-") as tmp:
        con = _empty_lake_connection(Path(tmp))
        try:
            for path in rule_dirs(directory):
                errors += _lint_one(path, validator, con)
        finally:
            con.close()
    return errors


def _lint_one(path: Path, validator: Any, con: Any) -> list[str]:
    errors: list[str] = []
    toml_where = _where(path, "rule.toml")
    meta: dict[str, Any] = {}
    try:
        meta = tomllib.loads((path / "rule.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        errors.append(f"{toml_where}: missing")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        errors.append(f"{toml_where}: invalid TOML: {exc}")
    else:
        for problem in sorted(validator.iter_errors(meta), key=lambda e: list(e.path)):
            at = ".".join(str(p) for p in problem.path)
            errors.append(f"{toml_where}: {at + ': ' if at else ''}{problem.message}")
        if meta.get("id") is not None and meta.get("id") != path.name:
            errors.append(f"{toml_where}: id {meta.get('id')!r} differs from its folder name "
                          f"{path.name!r}")
    sql_where = _where(path, "rule.sql")
    try:
        sql = (path / "rule.sql").read_text(encoding="utf-8")
    except FileNotFoundError:
        errors.append(f"{sql_where}: missing")
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{sql_where}: unreadable: {exc}")
    else:
        params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
        try:
            rule_params.bind(con, params)
            errors += [f"{sql_where}: {e}" for e in _sql_errors(con, sql)]
        except (duckdb.Error, TrailscanError) as exc:
            errors.append(f"{toml_where}: params: {str(exc).strip().splitlines()[0]}")
        finally:
            rule_params.unbind(con, params)
    ids: dict[str, list[str]] = {}
    for name in ("match.json", "nomatch.json"):
        problems, ids[name] = _envelope_errors(path / name)
        errors += problems
    both = set(ids["match.json"]) & set(ids["nomatch.json"])
    if both:
        errors.append(f"{_where(path, 'nomatch.json')}: eventIDs also in match.json: "
                      f"{', '.join(sorted(both))}")
    return errors


def _sql_errors(con: Any, sql: str) -> list[str]:
    body = _strip(sql)
    if not body:
        return ["empty query"]
    try:
        con.execute(f"EXPLAIN {body}")
        columns = {d[0] for d in con.execute(f"SELECT * FROM ({body}\n) LIMIT 0").description}
    except duckdb.Error as exc:
        return [str(exc).strip().splitlines()[0]]
    missing = [c for c in ("eventID", "eventTime", "recipientAccountId", "awsRegion",
                           "userIdentity", "sourceIPAddress", "eventName") if c not in columns]
    return [f"query does not return cloudtrail column(s) {', '.join(missing)}"] if missing else []


def _strip(sql: str) -> str:
    return sql.strip().rstrip(";").strip()


# --- test -----------------------------------------------------------------------------------


def test_rule(rule: Rule) -> list[str]:
    """Ingest the rule's test events through the real ingest path and run its real SQL.

    Every match.json event must be returned and no nomatch.json event; returns the problems.
    """
    from .ingest import ingest

    where = f"{rule.path.parent.name}/{rule.path.name}"
    errors: list[str] = []
    expected: dict[str, list[str]] = {}
    for name in ("match.json", "nomatch.json"):
        problems, expected[name] = _envelope_errors(rule.path / name)
        errors += problems
    if errors:
        return errors
    with tempfile.TemporaryDirectory(prefix="trailscan-rule-test-") as tmp:
        lake = Path(tmp) / "lake"
        stats = ingest([str(rule.path / "match.json"), str(rule.path / "nomatch.json")],
                       str(lake), workers=1, validate=False)
        if stats.events_quarantined or stats.files_quarantined:
            errors.append(f"{where}: ingest quarantined test events: "
                          f"{'; '.join(map(str, stats.problems[:3]))}")
        con = Lake.open(lake).connect()
        try:
            rule_params.prepare(con)
            rule_params.bind(con, rule.params)
            rows = con.execute(f"SELECT DISTINCT eventID FROM ({_strip(rule.sql)}\n)").fetchall()
        except duckdb.Error as exc:
            return [*errors, f"{where}/rule.sql: {str(exc).strip().splitlines()[0]}"]
        finally:
            con.close()
    matched = {r[0] for r in rows}
    missed = [i for i in expected["match.json"] if i not in matched]
    wrong = [i for i in expected["nomatch.json"] if i in matched]
    if missed:
        errors.append(f"{where}/match.json: not matched: {', '.join(missed)}")
    if wrong:
        errors.append(f"{where}/nomatch.json: matched: {', '.join(wrong)}")
    return errors


test_rule.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


# --- run ------------------------------------------------------------------------------------


def _finding_sql(rule_sql: str, columns: set[str]) -> str:
    """Group a rule's events into findings; events outside the detection window are dropped
    (a behavioural rule reads history before the window but reports only inside it)."""
    principal = "ts_principal(userIdentity)"
    if "finding_principal" in columns:
        principal = f"coalesce(finding_principal, {principal})"
    evidence = ("list(DISTINCT evidence ORDER BY evidence) FILTER (WHERE evidence IS NOT NULL)"
                if "evidence" in columns else "NULL::VARCHAR[]")
    return f"""
WITH matched AS ({_strip(rule_sql)}
), events AS (SELECT DISTINCT ON (eventID) * FROM matched
              WHERE (getvariable('window_start') IS NULL
                     OR eventTime >= getvariable('window_start'))
                AND (getvariable('window_end') IS NULL OR eventTime <= getvariable('window_end')))
SELECT coalesce(recipientAccountId, userIdentity.accountId, '') AS account_id,
       {principal} AS principal,
       string_agg(DISTINCT awsRegion, ',' ORDER BY awsRegion) AS region,
       min(eventTime) AS first_seen, max(eventTime) AS last_seen, count(*) AS event_count,
       list(eventID ORDER BY eventTime, eventID)[1:{MAX_EVENT_IDS}] AS event_ids,
       list(DISTINCT sourceIPAddress ORDER BY sourceIPAddress)
           FILTER (WHERE sourceIPAddress IS NOT NULL) AS source_ips,
       list(DISTINCT eventName ORDER BY eventName) AS event_names,
       {evidence} AS evidence
FROM events GROUP BY 1, 2 ORDER BY first_seen, account_id, principal
"""


def _summary(count: int, names: list[str], principal: str, ips: list[str],
             first: datetime, last: datetime, evidence: list[str] | None = None) -> str:
    def short(items: list[str], n: int = 3) -> str:
        return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")

    when = (f"at {first.isoformat()}" if first == last
            else f"between {first.isoformat()} and {last.isoformat()}")
    text = f"{count} x {short(names)} by {principal} from {short(ips) or 'unknown IP'} {when}"
    if evidence:
        extra = len(evidence) - MAX_EVIDENCE
        text += ". " + "; ".join(evidence[:MAX_EVIDENCE]) + (f" (+{extra} more)" if extra > 0
                                                             else "")
    return text


def run_rules(lake_path: str | os.PathLike[str] | None, rules: list[Rule],
              since: datetime | None = None, until: datetime | None = None,
              min_severity: str | None = None, *, store: bool = False) -> pa.Table:
    """Run `rules` in one DuckDB connection; findings (one per rule, account, principal).

    Findings cover events in [since, until]; a rule with a history (`Rule.history`: its
    baseline or sequence look-back) also reads the events that far before `since`. With
    `store`, the findings replace `<lake>/findings/findings.parquet` (atomically).
    All rules read the same committed state of the lake, even while an ingest commits.
    """
    lake = Lake.open(lake_path)
    return lake.reading(lambda: _run_rules_once(lake, rules, since, until, min_severity, store))


def _run_rules_once(lake: Lake, rules: list[Rule], since: datetime | None,
                    until: datetime | None, min_severity: str | None,
                    store: bool) -> pa.Table:
    floor = _rank(min_severity)
    # Rules without history first, so the `cloudtrail` view is switched at most once.
    selected = sorted((r for r in rules if r.severity_rank >= floor),
                      key=lambda r: r.history > timedelta(0))
    con = lake.connect()
    rows: list[dict[str, Any]] = []
    try:
        rule_params.prepare(con)
        con.execute("SET VARIABLE window_start = $1::TIMESTAMPTZ", [since])
        con.execute("SET VARIABLE window_end = $1::TIMESTAMPTZ", [until])
        windowed = since is not None or until is not None
        if windowed:
            lookback = max((r.history for r in selected), default=timedelta(0))
            con.execute("CREATE TEMP TABLE _trailscan_window AS SELECT * FROM cloudtrail "
                        "WHERE ($1::TIMESTAMPTZ IS NULL OR eventTime >= $1) "
                        "AND ($2::TIMESTAMPTZ IS NULL OR eventTime <= $2)",
                        [since - lookback if since is not None else None, until])
            con.execute("CREATE OR REPLACE VIEW cloudtrail AS SELECT * FROM _trailscan_window "
                        "WHERE getvariable('window_start') IS NULL "
                        "OR eventTime >= getvariable('window_start')")
        with_history = False
        for rule in selected:
            if windowed and not with_history and rule.history > timedelta(0):
                con.execute("CREATE OR REPLACE VIEW cloudtrail AS "
                            "SELECT * FROM _trailscan_window")
                with_history = True
            try:
                rule_params.bind(con, rule.params)
                columns = set(con.sql(f"SELECT * FROM ({_strip(rule.sql)}\n) LIMIT 0").columns)
                relation = con.sql(_finding_sql(rule.sql, columns & set(OPTIONAL_COLUMNS)))
                fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
                table = fetch()
                rule_params.unbind(con, rule.params)
            except duckdb.Error as exc:
                if lake.vanished(exc):  # a concurrent writer changed the lake: read it again
                    raise
                raise RuleError(f"rule {rule.id}: SQL error: "
                                f"{str(exc).strip().splitlines()[0]}") from None
            for hit in table.to_pylist():
                rows.append({
                    "rule_id": rule.id, "title": rule.title, "severity": rule.severity,
                    "tactic": ",".join(rule.tactics), "techniques": list(rule.techniques),
                    "account_id": hit["account_id"], "region": hit["region"],
                    "principal": hit["principal"], "first_seen": hit["first_seen"],
                    "last_seen": hit["last_seen"], "event_count": hit["event_count"],
                    "event_ids": hit["event_ids"], "source_ips": hit["source_ips"] or [],
                    "summary": _summary(hit["event_count"], hit["event_names"],
                                        hit["principal"], hit["source_ips"] or [],
                                        hit["first_seen"], hit["last_seen"], hit["evidence"]),
                })
    finally:
        con.close()
    rows.sort(key=lambda r: (-SEVERITIES.index(r["severity"]), r["first_seen"], r["rule_id"]))
    findings = pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA)
    if store:
        store_findings(lake, findings)
    return findings


def store_findings(lake: Lake, findings: pa.Table) -> Path:
    """Replace the lake's findings file: write a temp file beside it, then rename."""
    target = lake.root / FINDINGS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".findings-{uuid.uuid4().hex}.parquet.tmp")
    try:
        pq.write_table(findings, temp, compression="zstd")
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    lake.stored(FINDINGS_FILE)
    return target


def findings_view(con: Any, lake: Lake) -> None:
    """Create the view `findings` on `con` (empty when no detect run has stored findings)."""
    location = lake.findings_location(FINDINGS_FILE)
    if location is not None:
        literal = location.replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW findings AS SELECT * FROM read_parquet('{literal}')")
    else:
        con.register("_trailscan_findings_empty", FINDINGS_SCHEMA.empty_table())
        con.execute("CREATE OR REPLACE VIEW findings AS SELECT * FROM _trailscan_findings_empty")


def load_findings(lake_path: str | os.PathLike[str] | None) -> pa.Table:
    """The stored findings of the last full detect run (empty if none)."""
    lake = Lake.open(lake_path)
    location = lake.findings_location(FINDINGS_FILE)
    return lake.read_table(location) if location else FINDINGS_SCHEMA.empty_table()
