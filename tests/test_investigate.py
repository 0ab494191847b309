"""Investigations: timelines, summaries, findings and session attribution on a real lake."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from conftest import CORPUS, query, run_cli
from scenarios import (
    ATTACKER_IP,
    HOP1_ARN,
    HOP1_KEY,
    HOP2_ARN,
    HOP2_KEY,
    OIDC_KEY,
    ORPHAN_KEY,
    SAML_KEY,
    SSO_ARN,
    SSO_KEY,
    USER_ARN,
    USER_KEY,
    A,
    B,
    C,
)

from trailscan.errors import UsageError
from trailscan.investigate import investigate


def test_assumed_role_session_traced_back_across_accounts(investigation_lake: Path) -> None:
    inv = investigate(investigation_lake, principal=HOP2_ARN)
    assert inv.timeline["api"].to_list() == ["GetBucketPolicy", "PutBucketPolicy", "CreateUser"]
    (row,) = inv.attribution.to_dicts()
    assert row["access_key"] == HOP2_KEY and row["session"] == HOP2_ARN and row["events"] == 3
    assert row["origin_kind"] == "iam_user" and row["origin"] == USER_ARN
    assert row["origin_detail"] == f"access key {USER_KEY}"
    assert row["source_identity"] == "mallory@example.com"
    assert row["hops"] == 2 and row["accounts"] == sorted([A, B, C])
    assert row["chain"][0].startswith(f"{USER_ARN} --AssumeRole 2026-03-03T10:00:00Z--> {HOP1_ARN}")
    assert row["chain"][1].startswith(f"{HOP1_ARN} --AssumeRole 2026-03-03T10:05:00Z--> {HOP2_ARN}")


def test_role_owner_copy_alone_names_the_calling_principal(tmp_path: Path) -> None:
    """With only the role account's trail, a cross-account session is traced to the caller's
    principal id and account (the caller's own copy of the call is elsewhere)."""
    from conftest import ct_path, ingest_lib, write_records
    from scenarios import chain_records

    only_c = [r for r in chain_records() if r["recipientAccountId"] == C]
    write_records(ct_path(tmp_path / "src", "c.json.gz", account=C), only_c)
    ingest_lib([tmp_path / "src"], tmp_path / "lake")
    (row,) = investigate(tmp_path / "lake", principal=HOP2_ARN).attribution.to_dicts()
    assert row["origin_kind"] == "aws_account"
    assert row["origin"] == f"AROACROSSACCOUNTA0001:mallory in account {B}"
    assert row["hops"] == 1 and row["accounts"] == [B, C]


def test_iam_user_followed_forward_to_every_session(investigation_lake: Path) -> None:
    inv = investigate(investigation_lake, principal=USER_ARN)
    sessions = inv.sessions.select("issued_key", "session_arn", "depth", "caller_key",
                                   "events").to_dicts()
    assert sessions == [
        {"issued_key": HOP1_KEY, "session_arn": HOP1_ARN, "depth": 1, "caller_key": USER_KEY,
         "events": 3},
        {"issued_key": HOP2_KEY, "session_arn": HOP2_ARN, "depth": 2, "caller_key": HOP1_KEY,
         "events": 3}]
    # Its own calls, then what each session did, in time order. (The role owners' copies of
    # the cross-account AssumeRoles name only an AWSAccount: they are not its events.)
    assert inv.timeline["api"].to_list() == [
        "GetCallerIdentity", "AssumeRole", "ListBuckets", "ListRoles", "AssumeRole",
        "GetBucketPolicy", "PutBucketPolicy", "CreateUser", "DeleteBucket"]
    assert inv.timeline.filter(pl.col("api") == "AssumeRole")["account"].to_list() == [A, B]
    assert inv.timeline.filter(pl.col("via") == HOP2_KEY).height == 3
    times = inv.timeline["time"].to_list()
    assert times == sorted(times)
    # The same answer from the user's access key.
    by_key = investigate(investigation_lake, access_key=USER_KEY)
    assert by_key.timeline["event_id"].to_list() == inv.timeline["event_id"].to_list()
    assert by_key.sessions["issued_key"].to_list() == [HOP1_KEY, HOP2_KEY]
    (own,) = by_key.attribution.to_dicts()
    assert own["origin_kind"] == "iam_user" and own["hops"] == 0


@pytest.mark.parametrize("key, kind, origin, detail", [
    (SAML_KEY, "saml", "dana@example.com",
     "issuer https://idp.example.com/idp/shibboleth via "
     f"arn:aws:iam::{B}:saml-provider/Shibboleth"),
    (OIDC_KEY, "oidc", "repo:acme/payments:ref:refs/heads/main",
     f"provider arn:aws:iam::{C}:oidc-provider/token.actions.githubusercontent.com"),
    (SSO_KEY, "identity_center", "carol@example.com",
     "Identity Center user id 94482488-3041-7026-18f3-be45837cd0e4 in arn:aws:identitystore::"
     f"{A}:identitystore/d-9067230d7a (portal call logged in {A})"),
])
def test_federated_sessions_name_the_identity(investigation_lake: Path, key: str, kind: str,
                                              origin: str, detail: str) -> None:
    (row,) = investigate(investigation_lake, access_key=key).attribution.to_dicts()
    assert (row["origin_kind"], row["origin"], row["origin_detail"]) == (kind, origin, detail)
    assert row["hops"] == 1


def test_identity_center_session_by_arn(investigation_lake: Path) -> None:
    inv = investigate(investigation_lake, principal=SSO_ARN)
    assert inv.timeline["api"].to_list() == ["DescribeInstances"]
    assert inv.attribution["origin_kind"].to_list() == ["identity_center"]
    assert "AssumeRoleWithSAML" in inv.attribution["chain"][0][0]


def test_session_without_issuing_call_falls_back_to_source_identity(
        investigation_lake: Path) -> None:
    (row,) = investigate(investigation_lake, access_key=ORPHAN_KEY).attribution.to_dicts()
    assert row["origin_kind"] == "source_identity"
    assert row["origin"] == "eve@example.com"
    assert row["origin_detail"] == f"the call that created {ORPHAN_KEY} is not in the lake"
    assert row["hops"] == 0 and row["chain"] == []


def test_benign_sample_sessions_resolve(investigation_lake: Path) -> None:
    """Every IAM-user AssumeRole of the synthetic trail resolves to that user; service
    AssumeRoles to the service."""
    rows = query(investigation_lake,
                 "SELECT json_extract_string(responseElements, '$.credentials.accessKeyId'), "
                 "userIdentity.type, coalesce(userIdentity.arn, userIdentity.invokedBy) "
                 "FROM cloudtrail WHERE eventName = 'AssumeRole' AND source_object NOT LIKE "
                 "'%scenario%' ORDER BY eventTime")
    checked = {"IAMUser": 0, "AWSService": 0}
    for key, caller_type, caller in rows:
        if checked[caller_type] >= 3:
            continue
        inv = investigate(investigation_lake, access_key=key)
        if inv.attribution.is_empty():  # a session that made no call
            continue
        (row,) = inv.attribution.to_dicts()
        kind = "iam_user" if caller_type == "IAMUser" else "aws_service"
        assert (row["origin_kind"], row["origin"]) == (kind, caller), key
        checked[caller_type] += 1
    assert checked == {"IAMUser": 3, "AWSService": 3}


def test_role_arn_covers_all_its_sessions(investigation_lake: Path) -> None:
    role = f"arn:aws:iam::{C}:role/DeployRole"
    inv = investigate(investigation_lake, principal=role)
    assert set(inv.timeline["principal"].to_list()) == {HOP2_ARN}
    assert inv.timeline.height == 3


def test_ip_timeline_summary_and_findings(investigation_lake: Path) -> None:
    inv = investigate(investigation_lake, ip=ATTACKER_IP)
    expected = query(investigation_lake,
                     "SELECT count(*) FROM cloudtrail WHERE sourceIPAddress = ?", ATTACKER_IP)
    assert inv.timeline.filter(pl.col("via").is_null()).height == expected[0][0] == 10
    assert inv.attribution["access_key"].to_list() == [USER_KEY, HOP1_KEY, HOP2_KEY]
    assert set(inv.attribution["origin"].to_list()) == {USER_ARN}
    summary = inv.summary
    assert summary["errors"].to_dicts() == [{"error": "AccessDenied", "events": 1}]
    assert summary["ips"].to_dicts() == [{"ip": ATTACKER_IP, "events": 10}]
    assert summary["apis"].row(0) == ("AssumeRole", 4)
    assert "arn:aws:s3:::acme-prod-secrets" in summary["resources"]["resource"].to_list()
    assert set(summary["regions"]["region"].to_list()) == {"us-east-1", "eu-west-1"}
    assert len(summary["user_agents"]) == 2
    rules = set(inv.findings["rule_id"].to_list())
    assert {"cis_unauthorized_api_calls", "cis_s3_bucket_policy_changes"} <= rules
    assert inv.findings.filter(pl.col("rule_id") == "cis_unauthorized_api_calls")[
        "names_its_events"].to_list() == [True]


def test_event_id_shows_its_session(investigation_lake: Path) -> None:
    event_id = query(investigation_lake, "SELECT eventID FROM cloudtrail WHERE eventName = "
                     "'PutBucketPolicy' AND userIdentity.arn = ?", HOP2_ARN)[0][0]
    inv = investigate(investigation_lake, event_id=event_id)
    assert event_id in inv.timeline["event_id"].to_list()
    assert inv.timeline.height == 3
    assert inv.attribution["origin"].to_list() == [USER_ARN]


def test_since_until_window(investigation_lake: Path) -> None:
    inv = investigate(investigation_lake, principal=USER_ARN,
                      since=datetime(2026, 3, 3, 10, 1, tzinfo=UTC),
                      until=datetime(2026, 3, 3, 10, 6, 30, tzinfo=UTC))
    # The AssumeRole at 10:00 is outside the window, so its sessions are not followed.
    assert inv.timeline["api"].to_list() == []
    inv = investigate(investigation_lake, principal=HOP1_ARN,
                      since=datetime(2026, 3, 3, 10, 1, tzinfo=UTC),
                      until=datetime(2026, 3, 3, 10, 6, 30, tzinfo=UTC))
    assert inv.timeline["api"].to_list() == ["ListBuckets", "ListRoles", "AssumeRole",
                                             "GetBucketPolicy"]
    # Attribution still reaches the AssumeRole before the window.
    assert inv.attribution["origin"].to_list() == [USER_ARN]


def test_user_values_are_bound_not_pasted(investigation_lake: Path) -> None:
    for value in ("' OR 1=1 --", "x') OR true OR ('", "$value"):
        inv = investigate(investigation_lake, principal=value)
        assert inv.timeline.height == 0 and inv.attribution.height == 0


def test_exactly_one_entity() -> None:
    with pytest.raises(UsageError, match="exactly one"):
        investigate(None, principal=USER_ARN, ip=ATTACKER_IP)
    with pytest.raises(UsageError, match="exactly one"):
        investigate(None)


def test_python_api_returns_polars(investigation_lake: Path) -> None:
    inv = investigate(str(investigation_lake), access_key=HOP2_KEY)
    frames = [inv.timeline, inv.attribution, inv.sessions, inv.findings,
              *inv.summary.values()]
    assert all(isinstance(f, pl.DataFrame) for f in frames)
    assert inv.timeline.schema["time"] == pl.Datetime("us", "UTC")


# --- CLI --------------------------------------------------------------------------------------


def test_cli_json(investigation_lake: Path) -> None:
    result = run_cli("investigate", "--lake", investigation_lake, "--principal", USER_ARN,
                     "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["entity"] == {"kind": "principal", "value": USER_ARN}
    assert data["counts"] == {"events": 9, "sessions_started": 2, "findings": len(
        data["findings"])}
    assert data["first_event"] == "2026-03-03T09:58:00+00:00"
    assert [s["issued_key"] for s in data["sessions"]] == [HOP1_KEY, HOP2_KEY]
    assert data["timeline"][0]["time"] == "2026-03-03T09:58:00+00:00"
    assert data["summary"]["apis"][0] == {"api": "AssumeRole", "events": 2}


def test_cli_csv_is_the_timeline(investigation_lake: Path) -> None:
    result = run_cli("investigate", "--lake", investigation_lake, "--access-key", HOP2_KEY,
                     "--format", "csv", "--until", "2026-03-03T10:07:30Z")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["api"] for r in rows] == ["GetBucketPolicy", "PutBucketPolicy"]
    assert rows[0]["resources"] == "arn:aws:s3:::acme-prod-secrets"


def test_cli_table(investigation_lake: Path) -> None:
    result = run_cli("investigate", "--lake", investigation_lake, "--principal", HOP2_ARN)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"origin: IAM user {USER_ARN} (access key {USER_KEY}); source identity " \
           "mallory@example.com" in out
    for section in ("Who is behind each session:", "Sessions it started:", "Findings:",
                    "Top apis:", "Top errors:", "Timeline:"):
        assert section in out


def test_cli_usage_errors(investigation_lake: Path) -> None:
    result = run_cli("investigate", "--lake", investigation_lake)
    assert result.exit_code == 2
    assert result.stderr.strip() == ("Error: give exactly one of --principal, --access-key, "
                                     "--ip, --event-id")
    result = run_cli("investigate", "--lake", investigation_lake, "--ip", "1.2.3.4",
                     "--since", "yesterday-ish")
    assert result.exit_code == 2 and result.stderr.startswith("Error: ")


# --- real public samples (Stratus Red Team detonations, anonymised) --------------------------


STRATUS = CORPUS / "stratus-detonation-logs"


@pytest.mark.skipif(not STRATUS.is_dir(), reason="../shared/corpus/real is not present")
def test_real_detonation_sessions_attributed(tmp_path: Path) -> None:
    from conftest import ingest_lib

    lake = tmp_path / "lake"
    ingest_lib([STRATUS], lake)
    keys = query(lake, "SELECT DISTINCT userIdentity.accessKeyId, userIdentity.arn FROM "
                       "cloudtrail WHERE userIdentity.accessKeyId LIKE 'ASIA%' ORDER BY 1")
    kinds = {}
    for key, arn in keys:
        (row,) = investigate(lake, access_key=key).attribution.to_dicts()
        kinds[key] = row["origin_kind"]
        if row["origin_kind"] == "iam_user":  # the issuing call is in the same detonation
            issuer = query(lake, "SELECT userIdentity.arn FROM cloudtrail WHERE "
                                 "json_extract_string(responseElements, "
                                 "'$.credentials.accessKeyId') = ?", key)
            assert [row["origin"]] == [a for (a,) in issuer], arn
            assert row["hops"] == 1 and row["origin"].split(":")[4] == arn.split(":")[4]
    # Instance credentials stolen from EC2, a GetFederationToken session, role sessions.
    assert kinds["ASIAP5CT9NN8EYVU1FXV"] == "ec2_instance"
    assert kinds["ASIASTJKC5GCM7ZE6LUP"] == "iam_user"
    assert sum(k == "iam_user" for k in kinds.values()) >= 5


def test_notebook_display_is_escaped(investigation_lake: Path) -> None:
    from scenarios import XSS_UA

    page = investigate(investigation_lake, access_key=HOP2_KEY)._repr_html_()
    assert "Who is behind each session" in page and "Timeline" in page
    assert XSS_UA not in page and "&lt;script&gt;" in page


def test_table_view_is_capped_with_a_note(investigation_lake: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import trailscan.investigate as module

    monkeypatch.setitem(module.TABLE_LIMITS, "timeline", 2)
    out = io.BytesIO()
    module.write(investigate(investigation_lake, principal=USER_ARN), "table", out)
    text = out.getvalue().decode()
    assert "  ... 7 more rows (--format json or csv has them all)" in text
    full = io.BytesIO()
    module.write(investigate(investigation_lake, principal=USER_ARN), "csv", full)
    assert len(full.getvalue().decode().splitlines()) == 10  # header + all 9 events


def test_nothing_found_is_not_an_error(investigation_lake: Path) -> None:
    result = run_cli("investigate", "--lake", investigation_lake, "--ip", "192.0.2.254")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ip 192.0.2.254: 0 events (no events); 0 sessions started; "
                                    "0 findings")
    data = json.loads(run_cli("investigate", "--lake", investigation_lake, "--ip",
                              "192.0.2.254", "--format", "json").stdout)
    assert data["counts"] == {"events": 0, "sessions_started": 0, "findings": 0}
    assert data["timeline"] == [] and data["attribution"] == []
