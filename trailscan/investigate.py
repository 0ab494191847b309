"""Investigations: what did this principal / key / address do, and who is behind each session.

STS hands out temporary credentials in `responseElements.credentials.accessKeyId`; every call made
with them carries that key in `userIdentity.accessKeyId`. Joining the two links each session to
the call that created it, so a session is traced back (role chains, across accounts) to the IAM
user, SAML or OIDC identity, Identity Center user or AWS service behind it, and an IAM user or key
is followed forward to every session it started. Every user value is a bound SQL parameter.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl

from .errors import UsageError
from .lake import Lake

ENTITY_KINDS = ("principal", "access_key", "ip", "event_id")
FORMATS = ("table", "json", "csv")
MAX_HOPS = 16  # longer role chains than this are not seen in practice; it also stops loops

# Calls that return credentials for a new session (`responseElements.credentials`).
_LINKS_SQL = """
SELECT re[1] AS issued_key, eventTime AS issued_at, eventID AS event_id, eventName AS event_name,
       recipientAccountId AS account, sourceIPAddress AS ip, userAgent AS user_agent,
       rp[1] AS role_arn, rp[2] AS session_name, rp[3] AS saml_provider,
       coalesce(rp[4], re[2], userIdentity.sessionContext.sourceIdentity) AS source_identity,
       coalesce(re[3], re[4]) AS session_arn, re[5] AS saml_subject, re[6] AS saml_issuer,
       re[7] AS oidc_subject, re[8] AS oidc_provider,
       userIdentity.type AS caller_type, userIdentity.arn AS caller_arn,
       userIdentity.accessKeyId AS caller_key, userIdentity.userName AS caller_user,
       userIdentity.identityProvider AS caller_provider, userIdentity.invokedBy AS caller_service,
       userIdentity.principalId AS caller_principal_id, userIdentity.accountId AS caller_account
FROM (
    -- one JSON parse per document: json_extract_string with a list of paths
    SELECT *, json_extract_string(responseElements, ['$.credentials.accessKeyId',
               '$.sourceIdentity', '$.assumedRoleUser.arn', '$.federatedUser.arn', '$.subject',
               '$.issuer', '$.subjectFromWebIdentityToken', '$.provider']) AS re,
           json_extract_string(requestParameters, ['$.roleArn', '$.roleSessionName',
               '$.principalArn', '$.sourceIdentity']) AS rp
    FROM cloudtrail
    WHERE responseElements LIKE '%"accessKeyId"%'  -- a cheap test before parsing any JSON
)
WHERE re[1] IS NOT NULL
ORDER BY eventTime, eventID
"""

_EVENT_COLUMNS = """
eventTime AS time, eventSource AS service, eventName AS api, recipientAccountId AS account,
awsRegion AS region, sourceIPAddress AS ip, userAgent AS user_agent, errorCode AS error,
array_to_string(list_filter(list_transform(resources, lambda r: r.ARN),
                            lambda a: a IS NOT NULL), ' ') AS resources,
coalesce(json_extract_string(requestParameters, '$.bucketName'),
         json_extract_string(requestParameters, '$.roleArn'),
         json_extract_string(requestParameters, '$.userName'),
         json_extract_string(requestParameters, '$.roleName'),
         json_extract_string(requestParameters, '$.policyArn'),
         json_extract_string(requestParameters, '$.functionName'),
         json_extract_string(requestParameters, '$.name')) AS target,
coalesce(userIdentity.arn, userIdentity.invokedBy, userIdentity.type) AS principal,
userIdentity.type AS identity_type, userIdentity.accessKeyId AS access_key,
userIdentity.sessionContext.sessionIssuer.arn AS role_arn,
userIdentity.sessionContext.sourceIdentity AS source_identity,
userIdentity.sessionContext.ec2RoleDelivery AS ec2_role_delivery, eventID AS event_id
"""

# The entity's own events; each condition takes the value as its only parameter.
_MATCH = {
    "principal": "(userIdentity.arn = $value OR "
                 "userIdentity.sessionContext.sessionIssuer.arn = $value)",
    "access_key": "userIdentity.accessKeyId = $value",
    "ip": "sourceIPAddress = $value",
    "event_id": "(eventID = $value OR userIdentity.accessKeyId = (SELECT any_value("
                "userIdentity.accessKeyId) FROM cloudtrail WHERE eventID = $value))",
}


@dataclass
class Investigation:
    """The answer to one question; every table is a polars DataFrame (for notebooks too)."""

    kind: str
    value: str
    since: datetime | None
    until: datetime | None
    timeline: pl.DataFrame
    attribution: pl.DataFrame  # who is behind each session the entity used
    sessions: pl.DataFrame  # sessions the entity started (directly or down a role chain)
    findings: pl.DataFrame
    summary: dict[str, pl.DataFrame] = field(default_factory=dict)

    def overview(self) -> dict[str, Any]:
        times = self.timeline["time"]
        return {"entity": {"kind": self.kind, "value": self.value},
                "since": self.since, "until": self.until,
                "first_event": times.min() if self.timeline.height else None,
                "last_event": times.max() if self.timeline.height else None,
                "counts": {"events": self.timeline.height, "sessions_started": self.sessions.height,
                           "findings": self.findings.height}}

    def _repr_html_(self) -> str:
        """Notebook display: the overview line, attribution, sessions, then the timeline."""
        import html

        parts = [f"<p><b>{html.escape(self.kind)} {html.escape(self.value)}</b>: "
                 f"{html.escape(_headline(self))}</p>"]
        for title, frame in (("Who is behind each session", self.attribution),
                             ("Sessions it started", self.sessions),
                             ("Findings", self.findings), ("Timeline", self.timeline)):
            parts.append(f"<h4>{title}</h4>" + frame._repr_html_())  # polars escapes values
        return "".join(parts)


def investigate(lake_path: str | os.PathLike[str] | None = None, *, principal: str | None = None,
                access_key: str | None = None, ip: str | None = None,
                event_id: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> Investigation:
    """Timeline, summary, findings and session attribution for exactly one entity."""
    given = {k: v for k, v in (("principal", principal), ("access_key", access_key),
                               ("ip", ip), ("event_id", event_id)) if v}
    if len(given) != 1:
        raise UsageError("give exactly one of --principal, --access-key, --ip, --event-id")
    ((kind, value),) = given.items()
    con = Lake.open(lake_path).connect()
    try:
        window, params = _window(since, until)
        direct = _frame(con, f"SELECT {_EVENT_COLUMNS}, NULL::VARCHAR AS via FROM cloudtrail "
                             f"WHERE {_MATCH[kind]}{window}", {"value": value, **params})
        links = _frame(con, _LINKS_SQL, {})
        timeline, sessions = _follow(con, direct, links, window, params)
        attribution = _attribute(con, direct, links)
        findings = _findings(con, timeline)
    finally:
        con.close()
    timeline = timeline.sort(["time", "event_id"])
    return Investigation(kind, value, since, until, timeline, attribution, sessions, findings,
                         _summary(timeline))


def _window(since: datetime | None, until: datetime | None) -> tuple[str, dict[str, Any]]:
    sql, params = "", {}
    if since is not None:
        sql, params["since"] = sql + " AND eventTime >= $since", since
    if until is not None:
        sql, params["until"] = sql + " AND eventTime <= $until", until
    return sql, params


def _frame(con: Any, sql: str, params: dict[str, Any]) -> pl.DataFrame:
    relation = con.sql(sql, params=params or None)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return pl.from_arrow(fetch())  # type: ignore[return-value]


def _follow(con: Any, direct: pl.DataFrame, links: pl.DataFrame, window: str,
            params: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Forward: sessions created by the entity's calls, then by those sessions' calls, ..."""
    events, seen_keys, started = direct, set(), []
    frontier = set(direct["event_id"].to_list())
    for depth in range(1, MAX_HOPS + 1):
        new = (links.filter(pl.col("event_id").is_in(list(frontier))
                            & ~pl.col("issued_key").is_in(list(seen_keys)))
               .unique("issued_key", keep="first", maintain_order=True))
        if new.is_empty():
            break
        seen_keys.update(new["issued_key"].to_list())
        started.append(new.with_columns(pl.lit(depth).alias("depth")))
        keys = new["issued_key"].to_list()
        derived = _frame(con, f"SELECT {_EVENT_COLUMNS}, userIdentity.accessKeyId AS via "
                              f"FROM cloudtrail WHERE userIdentity.accessKeyId IN "
                              f"(SELECT unnest($keys::VARCHAR[])){window}",
                         {"keys": keys, **params})
        derived = derived.filter(~pl.col("event_id").is_in(events["event_id"].to_list()))
        events = pl.concat([events, derived], how="vertical_relaxed")
        frontier = set(derived["event_id"].to_list())
    columns = ["issued_key", "session_arn", "depth", "event_name", "issued_at", "account",
               "caller_arn", "caller_key", "source_identity", "ip"]
    if not started:
        return events, pl.DataFrame(schema={c: links.schema.get(c, pl.Int32) for c in columns})
    sessions = pl.concat(started, how="vertical_relaxed").select(columns)
    counts = events.group_by("via").len("events").rename({"via": "issued_key"})
    sessions = sessions.join(counts, on="issued_key", how="left").with_columns(
        pl.col("events").fill_null(0))
    return events, sessions


def _attribute(con: Any, direct: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """Backward: for each session key the entity used, the chain of hand-offs to its origin."""
    by_key: dict[str, dict[str, Any]] = {}
    for row in links.iter_rows(named=True):
        # A cross-account call is logged twice; the role owner's copy names the caller only as
        # an AWSAccount (principalId, account id), the caller's copy has its identity and key.
        known = by_key.get(row["issued_key"])
        if known is None or (known["caller_type"] == "AWSAccount"
                             and row["caller_type"] != "AWSAccount"):
            by_key[row["issued_key"]] = row
    rows = []
    used = (direct.filter(pl.col("access_key").is_not_null())
            .group_by("access_key", maintain_order=True)
            .agg(pl.col("principal").first(), pl.col("identity_type").first(),
                 pl.col("source_identity").drop_nulls().first(),
                 pl.col("ec2_role_delivery").drop_nulls().first(), pl.len().alias("events")))
    for key, principal, identity_type, source_identity, ec2, count in used.iter_rows():
        chain: list[str] = []
        accounts: list[str] = []
        current, origin_kind, origin, detail = key, "", "", ""
        if identity_type in ("IAMUser", "Root"):
            origin_kind = "iam_user" if identity_type == "IAMUser" else "root"
            origin = principal
        visited: set[str] = set()
        for _ in range(MAX_HOPS):
            if origin_kind:
                break
            if current in visited:
                origin_kind, origin = "unresolved", f"{current} appears twice in its own chain"
                break
            visited.add(current)
            link = by_key.get(current)
            if link is None:
                session_arn = _chain_top(chain) or principal
                origin_kind, origin, detail = _without_link(current, session_arn,
                                                            source_identity, ec2)
                break
            caller = (link["caller_arn"] or link["caller_user"] or link["caller_service"]
                      or link["caller_principal_id"] or "?")
            chain.append(f"{caller} --{link['event_name']} {link['issued_at']:%Y-%m-%dT%H:%M:%SZ}"
                         f"--> {link['session_arn'] or current}")
            accounts += [_account(link["caller_arn"]) or link["caller_account"],
                         _account(link["role_arn"])]
            origin_kind, origin, detail = _origin(con, link)
            if origin_kind == "session":  # a role chain: continue with the caller's own key
                origin_kind, current = "", link["caller_key"]
                if not current:
                    origin_kind, origin = "unresolved", f"{caller} (no access key in the record)"
        if not origin_kind:
            origin_kind, origin = "unresolved", f"role chain longer than {MAX_HOPS} hops"
        rows.append({"access_key": key, "session": principal, "events": count,
                     "origin_kind": origin_kind, "origin": origin, "origin_detail": detail,
                     "source_identity": source_identity, "hops": len(chain),
                     "accounts": sorted(set(filter(None, accounts))),
                     "chain": list(reversed(chain))})
    schema = {"access_key": pl.String, "session": pl.String, "events": pl.UInt32,
              "origin_kind": pl.String, "origin": pl.String, "origin_detail": pl.String,
              "source_identity": pl.String, "hops": pl.Int64, "accounts": pl.List(pl.String),
              "chain": pl.List(pl.String)}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(
        schema=schema)


def _chain_top(chain: list[str]) -> str | None:
    """The caller at the top of the chain built so far (the session still to be explained)."""
    return chain[-1].split(" --", 1)[0] if chain else None


def _without_link(key: str, session_arn: str | None, source_identity: str | None,
                  ec2: str | None) -> tuple[str, str, str]:
    """The best answer when the call that created a session is not in the lake."""
    missing = f"the call that created {key} is not in the lake"
    parts = (session_arn or "").split(":assumed-role/", 1)[-1].split("/")
    role, name = parts[0], parts[1] if len(parts) > 1 else ""
    if source_identity:  # set by whoever assumed the first role; it follows the chain
        return "source_identity", source_identity, missing
    if ec2 or re.fullmatch(r"i-[0-9a-fA-F]{8,17}", name):
        return "ec2_instance", name, f"instance profile role {role}; {missing}"
    if role.startswith("AWSReservedSSO"):
        return "identity_center", name or role, f"permission set role {role}; {missing}"
    return "unresolved", session_arn or key, missing


def _account(arn: str | None) -> str | None:
    """The account id of an IAM/STS ARN (its fifth field), if it has one."""
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 and parts[4] else None


def _origin(con: Any, link: dict[str, Any]) -> tuple[str, str, str]:
    """Classify the caller of a credential-issuing call: (kind, identity, detail)."""
    kind = link["caller_type"]
    if kind == "AssumedRole":
        return "session", link["caller_arn"] or "", ""
    if kind == "IAMUser":
        return "iam_user", link["caller_arn"], f"access key {link['caller_key']}"
    if kind == "Root":
        return "root", link["caller_arn"], f"access key {link['caller_key']}"
    if kind == "AWSService":
        return "aws_service", link["caller_service"] or "", ""
    if kind == "SAMLUser":
        subject = link["saml_subject"] or link["caller_user"] or ""
        role = (link["role_arn"] or "").rsplit("/", 1)[-1]
        if role.startswith("AWSReservedSSO_") or "/AWSSSO_" in (link["saml_provider"] or ""):
            return "identity_center", subject, _identity_center(con, link, subject)
        return "saml", subject, f"issuer {link['saml_issuer']} via {link['saml_provider']}"
    if kind == "AWSAccount":  # only the role owner's copy of a cross-account call is here
        return ("aws_account", f"{link['caller_principal_id']} in account "
                f"{link['caller_account']}", "the caller's account's copy of the call is not "
                "in the lake")
    if kind == "WebIdentityUser":
        subject = link["oidc_subject"] or link["caller_user"] or ""
        return "oidc", subject, f"provider {link['oidc_provider'] or link['caller_provider']}"
    return (kind or "unknown").lower(), link["caller_arn"] or link["caller_user"] or "", ""


def _identity_center(con: Any, link: dict[str, Any], user: str) -> str:
    """The Identity Center portal call that fetched these role credentials, if logged."""
    rows = con.execute(
        "SELECT userIdentity.onBehalfOf.userId, userIdentity.onBehalfOf.identityStoreArn, "
        "userIdentity.principalId, recipientAccountId FROM cloudtrail "
        "WHERE eventSource = 'sso.amazonaws.com' AND eventName = 'GetRoleCredentials' "
        "AND userIdentity.userName = $user "
        "AND json_extract_string(requestParameters, '$.accountId') = $account "
        "AND eventTime BETWEEN $at - INTERVAL 10 MINUTE AND $at + INTERVAL 1 MINUTE "
        "ORDER BY eventTime DESC LIMIT 1",
        {"user": user, "account": link["account"], "at": link["issued_at"]}).fetchall()
    if not rows:
        return f"permission set role {(link['role_arn'] or '').rsplit('/', 1)[-1]}"
    user_id, store, principal_id, account = rows[0]
    return (f"Identity Center user id {user_id or principal_id} in "
            f"{store or 'the identity store'} (portal call logged in {account})")


def _findings(con: Any, timeline: pl.DataFrame) -> pl.DataFrame:
    """Stored findings that name one of the timeline's events or principals."""
    ids = timeline["event_id"].drop_nulls().unique().to_list()
    principals = pl.concat([timeline["role_arn"], timeline["principal"]]).drop_nulls().unique()
    return _frame(con, "SELECT severity, rule_id, title, account_id, region, principal, "
                       "first_seen, last_seen, event_count, summary, "
                       "list_has_any(event_ids, $ids::VARCHAR[]) AS names_its_events FROM findings "
                       "WHERE list_has_any(event_ids, $ids::VARCHAR[]) "
                       "OR list_contains($principals::VARCHAR[], principal) "
                       "ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 "
                       "WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END, rule_id",
                  {"ids": ids, "principals": principals.to_list()})


def _summary(timeline: pl.DataFrame) -> dict[str, pl.DataFrame]:
    def top(column: str, frame: pl.DataFrame | None = None) -> pl.DataFrame:
        frame = timeline if frame is None else frame
        return (frame.filter(pl.col(column).is_not_null() & (pl.col(column) != ""))
                .group_by(column).len("events").sort(["events", column],
                                                      descending=[True, False]))

    resources = timeline.select(
        pl.concat_str([pl.col("resources").fill_null(""), pl.col("target").fill_null("")],
                      separator=" ").str.split(" ").alias("resource")).explode("resource")
    return {"apis": top("api"), "regions": top("region"), "ips": top("ip"),
            "user_agents": top("user_agent"), "errors": top("error"),
            "principals": top("principal"), "resources": top("resource", resources)}


# --- output ----------------------------------------------------------------------------------


def to_json(inv: Investigation) -> dict[str, Any]:
    """One JSON-ready object: overview, attribution, sessions, summary, findings, timeline."""
    return {**inv.overview(), "attribution": inv.attribution.to_dicts(),
            "sessions": inv.sessions.to_dicts(),
            "summary": {k: v.to_dicts() for k, v in inv.summary.items()},
            "findings": inv.findings.to_dicts(), "timeline": inv.timeline.to_dicts()}


_TIMELINE_COLUMNS = ["time", "api", "service", "account", "region", "ip", "user_agent", "error",
                     "resources", "target", "principal", "access_key", "via", "event_id"]


_KIND_NAMES = {"iam_user": "IAM user", "root": "root user", "aws_service": "AWS service",
               "saml": "SAML identity", "oidc": "OIDC identity",
               "identity_center": "IAM Identity Center user", "ec2_instance": "EC2 instance",
               "aws_account": "principal",
               "source_identity": "source identity", "unresolved": "unresolved:"}


def _headline(inv: Investigation) -> str:
    o = inv.overview()
    n = o["counts"]
    when = (f"{o['first_event']:%Y-%m-%dT%H:%M:%SZ} .. {o['last_event']:%Y-%m-%dT%H:%M:%SZ}"
            if n["events"] else "no events")
    return (f"{n['events']} events ({when}); {n['sessions_started']} sessions started; "
            f"{n['findings']} findings")


def _printable(text: str) -> str:
    """Log values never reach the terminal as control sequences."""
    return "".join(c if c.isprintable() or c == "\n" else "?" for c in text)


#: Rows the terminal view shows per section; json and csv always have everything.
TABLE_LIMITS = {"attribution": 50, "sessions": 100, "findings": 100, "timeline": 500}


def _more(total: int, shown: int, what: str) -> str:
    return (f"  ... {total - shown} more {what} (--format json or csv has them all)\n"
            if total > shown else "")


def write(inv: Investigation, fmt: str, out: BinaryIO) -> None:
    """`table`: sections for people; `json`: one object; `csv`: the timeline rows."""
    from .output import _json, render

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "json":
        out.write(_json(to_json(inv)) + b"\n")
        return
    if fmt == "csv":
        render(inv.timeline.select(_TIMELINE_COLUMNS).to_arrow(), "csv", out)
        return
    text = io.StringIO()
    text.write(f"{inv.kind} {inv.value}: {_headline(inv)}\n")
    text.write("\nWho is behind each session:\n")
    if inv.attribution.is_empty():
        text.write("  (no access key in its events)\n")
    for row in inv.attribution.head(TABLE_LIMITS["attribution"]).iter_rows(named=True):
        text.write(f"  {row['access_key']}  {row['session']}  ({row['events']} events)\n"
                   f"    origin: {_KIND_NAMES.get(row['origin_kind'], row['origin_kind'])} "
                   f"{row['origin']}")
        text.write(f" ({row['origin_detail']})" if row["origin_detail"] else "")
        text.write(f"; source identity {row['source_identity']}\n" if row["source_identity"]
                   else "\n")
        for hop in row["chain"]:
            text.write(f"    {hop}\n")
    text.write(_more(inv.attribution.height, TABLE_LIMITS["attribution"], "sessions"))
    out.write(_printable(text.getvalue()).encode())
    sections = [("Sessions it started", inv.sessions, TABLE_LIMITS["sessions"]),
                ("Findings", inv.findings.drop("names_its_events"), TABLE_LIMITS["findings"]),
                *((f"Top {name.replace('_', ' ')}", frame, 10)
                  for name, frame in inv.summary.items()),
                ("Timeline", inv.timeline.select(_TIMELINE_COLUMNS[:-1]),
                 TABLE_LIMITS["timeline"])]
    for title, frame, limit in sections:
        out.write(f"\n{title}:\n".encode())
        if frame.is_empty():
            out.write(b"  (none)\n")
        else:
            render(frame.head(limit).to_arrow(), "table", out)
            if not title.startswith("Top"):
                out.write(_more(frame.height, limit, "rows").encode())


def write_to(inv: Investigation, fmt: str, output: str | None) -> None:
    """Write to a file, or to stdout."""
    import sys

    if output:
        with Path(output).open("wb") as handle:
            write(inv, fmt, handle)
    else:
        write(inv, fmt, sys.stdout.buffer)
        sys.stdout.flush()
