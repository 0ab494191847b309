"""Rule parameters and the SQL helpers behavioural rules share.

A rule declares its tunables in `rule.toml` under `[params]` (e.g. `baseline_days = 14`). They
reach the SQL in ONE way: before a rule runs, each parameter is set as a DuckDB variable with a
bound value (`SET VARIABLE name = $1`) and the SQL reads it with `getvariable('name')`. Parameter
names come from the schema-validated rule metadata (`^[a-z][a-z0-9_]*$`), never from user text;
user overrides (`--baseline-days`, `--param id.name=value`) only replace values, typed like the
rule's default.

The macros below are the one definition of a principal, an address prefix and a user-agent
family for the rules (a role's sessions count as the role, as in the findings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from .detections import Rule

#: name -> (parameters, DuckDB body): the one definition of each macro. DuckDB gets them as
#: `CREATE MACRO`; `trailscan rules export` expands them into the rules' SQL for other engines.
MACRO_DEFINITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # Role sessions grouped by their role; else the user's ARN, the invoking service, the type.
    "ts_principal": (("u",), "coalesce("
                     "nullif(u.sessionContext.sessionIssuer.arn, ''), nullif(u.arn, ''), "
                     "nullif(u.invokedBy, ''), u.type, 'unknown')"),
    # Number of ':'-separated groups in part of an IPv6 address ('' has none). Written with
    # string functions only (no lists), so that every exported dialect means the same thing.
    "ts_ip6_count": (("part",), "CASE WHEN part = '' THEN 0 "
                     "ELSE length(part) - length(replace(part, ':', '')) + 1 END"),
    # Group i (1-3) of an IPv6 address as if written in full: '::' stands for as many zero
    # groups as are missing, and leading zeros and case do not matter (2001:DB8::1 and
    # 2001:0db8:0:1::5 are in the same /48). Only the first three groups are ever needed.
    "ts_ip6_group": (("ip", "i"), "coalesce(nullif(regexp_replace(lower(CASE "
                     "WHEN i <= ts_ip6_count(split_part(ip, '::', 1)) "
                     "THEN split_part(split_part(ip, '::', 1), ':', i) "
                     "WHEN ip NOT LIKE '%::%' THEN '0' "
                     "WHEN i <= 8 - ts_ip6_count(split_part(ip, '::', 2)) THEN '0' "
                     "ELSE split_part(split_part(ip, '::', 2), ':', "
                     "i - 8 + ts_ip6_count(split_part(ip, '::', 2))) END), '^0+', ''), ''), "
                     "'0')"),
    # An IPv4 /24 or IPv6 /48 as text; NULL for service names such as ec2.amazonaws.com.
    "ts_ip_prefix": (("ip",), "CASE "
                     "WHEN regexp_full_match(ip, '\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}') "
                     "THEN regexp_extract(ip, '^(\\d+\\.\\d+\\.\\d+)\\.', 1) || '.0/24' "
                     "WHEN ip LIKE '%:%' AND NOT ip LIKE '%.amazonaws.com' "
                     "THEN ts_ip6_group(ip, 1) || ':' || ts_ip6_group(ip, 2) || ':' "
                     "|| ts_ip6_group(ip, 3) || '::/48' END"),
    # True for a literal address (v4 or v6), false for AWS service names and 'AWS Internal'.
    "ts_is_ip": (("ip",), "ts_ip_prefix(ip) IS NOT NULL"),
    # The product token of a user agent: aws-cli, boto3, mozilla, terraform... (lower case).
    "ts_ua_family": (("ua",), "nullif(lower(regexp_extract("
                     "coalesce(ua, ''), "
                     "'^\\[?\\s*(APN/1\\.0 HashiCorp/1\\.0 Terraform|[A-Za-z][A-Za-z0-9._-]*)', "
                     "1)), '')"),
    # Calls made by people or workloads (not AWS services acting on their own or for a caller).
    "ts_is_caller": (("u", "etype"), "u.type IS DISTINCT FROM 'AWSService' AND u.invokedBy IS NULL "
                     "AND etype IS DISTINCT FROM 'AwsServiceEvent'"),
}

MACROS = tuple(f"CREATE OR REPLACE TEMP MACRO {name}({', '.join(params)}) AS {body}"
               for name, (params, body) in MACRO_DEFINITIONS.items())


def prepare(con: Any) -> None:
    """UTC session time zone and the shared macros, on any connection that runs rules."""
    con.execute("SET TimeZone = 'UTC'")
    for statement in MACROS:
        con.execute(statement)


def bind(con: Any, params: dict[str, Any]) -> None:
    """Set each parameter as a DuckDB variable; the value is bound, never pasted into SQL."""
    for name, value in params.items():
        if not name.isidentifier():  # schema-validated already; belt and braces
            raise UsageError(f"bad parameter name {name!r}")
        con.execute(f"SET VARIABLE {name} = $1", [value])


def unbind(con: Any, params: dict[str, Any]) -> None:
    """Reset a rule's variables so the next rule cannot read them by accident."""
    for name in params:
        if name.isidentifier():
            con.execute(f"RESET VARIABLE {name}")  # a no-op for a variable never set


def _coerce(rule_id: str, name: str, default: Any, text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int | float):
            try:
                return int(text)
            except ValueError:
                return float(text)
    except ValueError:
        kind = "number" if isinstance(default, int | float) else type(default).__name__
        raise UsageError(f"--param {rule_id}.{name}: {text!r} is not a {kind}") from None
    return text


def parse_overrides(items: Iterable[str]) -> dict[tuple[str, str], str]:
    """`id.name=value` strings as {(rule id, name): value text}."""
    out: dict[tuple[str, str], str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        rule_id, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not rule_id or not name:
            raise UsageError(f"--param {item!r}: expected RULE_ID.NAME=VALUE")
        out[(rule_id, name)] = value.strip()
    return out


def apply_overrides(rules: list[Rule], overrides: dict[tuple[str, str], Any] | None = None,
                    baseline_days: int | None = None) -> list[Rule]:
    """The rules with overridden parameter values; unknown rule ids or names are usage errors.

    `baseline_days` applies to every rule that declares `baseline_days`; a per-rule override
    of the same name wins.
    """
    overrides = dict(overrides or {})
    if baseline_days is not None and baseline_days < 1:
        raise UsageError("--baseline-days must be at least 1")
    by_id = {r.id: r for r in rules}
    for rule_id, name in overrides:
        rule = by_id.get(rule_id)
        if rule is None:
            raise UsageError(f"--param {rule_id}.{name}: no such (selected) rule")
        if name not in rule.params:
            known = ", ".join(sorted(rule.params)) or "none"
            raise UsageError(f"--param {rule_id}.{name}: unknown parameter (known: {known})")
    out = []
    for rule in rules:
        params = dict(rule.params)
        if baseline_days is not None and "baseline_days" in params:
            params["baseline_days"] = baseline_days
        for (rule_id, name), value in overrides.items():
            if rule_id == rule.id:
                params[name] = _coerce(rule.id, name, rule.params[name], value)
        out.append(dataclasses.replace(rule, params=params) if params != rule.params else rule)
    return out
