"""Synthetic trails for the behavioural detections: weeks of benign routine, planted anomalies.

`synth.py` makes a few days of busy benign traffic; behavioural rules need history. This module
adds *personas* (principals with a stable daily routine: their own IPs, user agent, region, APIs
and hours) to synth's background over 14+ days, then plants one anomaly per behavioural rule
against a persona, after its history. Everything is deterministic by seed and reuses synth's
record builders and writer.

`write_behaviour_trail(out, anomalies=False)` is the benign-only variant that the false-positive
figures are measured on; `rule_fixture(kind)` gives the small history + anomaly event sets each
rule's `nomatch.json`/`match.json` carry.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .synth import (
    _BROWSER,
    _CLI,
    _CLI_LINUX,
    _LAMBDA_UA,
    _UPPER,
    GLOBAL_REGION,
    TrailSpec,
    TrailSummary,
    _Account,
    _Background,
    _chars,
    _denied,
    _hexid,
    _Principal,
    _record,
    _s3_aed,
    _ts,
    _uuid,
    _Writer,
)

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAYS = 14
ANOMALY_DAY = 10  # anomalies on days 10-11: at least 10 days of history before them
ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "eu-west-1", "us-west-2")
_GO = "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.141.0"
_SPRAY_IP = "192.0.2.250"


@dataclass(frozen=True)
class Anomaly:
    """One planted anomaly: the rule that must find it and the principal it must name."""

    kind: str  # the rule id
    account_id: str
    principal: str
    event_ids: tuple[str, ...]
    description: str


@dataclass
class _Persona:
    """A principal with a routine: every day (but `skip`), `sessions` bursts of its APIs."""

    name: str
    account: _Account
    ident: Callable[[int], dict]  # time -> userIdentity
    arn: str  # the principal as findings name it (a role's ARN for its sessions)
    ips: tuple[str, ...]
    ua: str
    region: str
    apis: tuple[str, ...]  # "svc:EventName"
    days: range = range(DAYS)
    hours: tuple[int, int] = (9, 17)
    sessions: int = 3
    calls: tuple[int, int] = (3, 8)
    skip: set[int] = field(default_factory=set)  # days without routine (the anomaly days)
    bucket: str = ""


class _Builder:
    """Records of personas and anomalies (ids from a seeded RNG)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"{seed}|behaviour")

    def event(self, p: _Persona | None, t: int, api: str, *, acct: _Account | None = None,
              ident: dict | None = None, ip: str | None = None, ua: str | None = None,
              region: str | None = None, denied: bool = False, **kw: Any) -> dict:
        svc, name = api.split(":")
        a = acct or (p.account if p else None)
        assert a is not None
        where = (GLOBAL_REGION if svc in ("iam", "sts", "signin") else
                 region or (p.region if p else GLOBAL_REGION))
        rng = self.rng
        kw.setdefault("ro", name.startswith(("Describe", "List", "Get")))
        if svc == "s3" and name.endswith("Object") and "rp" not in kw:
            bucket = kw.pop("bucket", None) or (p.bucket if p else "acme-shared")
            size = kw.pop("size", rng.randrange(50_000, 2_000_000))
            key = f"data/part-{rng.randrange(10**6):06d}.parquet"
            kw["rp"] = {"bucketName": bucket, "Host": f"{bucket}.s3.{where}.amazonaws.com",
                        "key": key}
            kw["aed"] = _s3_aed(rng, size if name in ("PutObject", "CopyObject") else 0,
                                size if name == "GetObject" else 0)
            kw["res"] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                         {"accountId": a.id, "type": "AWS::S3::Bucket",
                          "ARN": f"arn:aws:s3:::{bucket}"}]
            kw["data"] = True
        kw.pop("bucket", None)
        kw.pop("size", None)
        if name == "ConsoleLogin" and "re" not in kw:
            kw |= {"re": {"ConsoleLogin": "Success"}, "etype": "AwsConsoleSignIn",
                   "aed": {"MFAUsed": "Yes", "MobileVersion": "No"}}
        rec = _record(ident or (p.ident(t) if p else {}), _ts(t), f"{svc}.amazonaws.com", name,
                      where, ip or (rng.choice(p.ips) if p else "192.0.2.1"),
                      ua or (p.ua if p else _CLI), a.id, rid=_uuid(rng), eid=_uuid(rng), **kw)
        return _denied(rec) if denied else rec

    def routine(self, p: _Persona) -> Iterator[tuple[int, dict]]:
        rng, day0 = self.rng, int(START.timestamp())
        for day in p.days:
            if day in p.skip:
                continue
            for _ in range(p.sessions):
                t = day0 + day * 86400 + rng.randrange(p.hours[0] * 3600, p.hours[1] * 3600 - 900)
                for _ in range(rng.randint(*p.calls)):
                    yield t, self.event(p, t, rng.choice(p.apis))
                    t += rng.randrange(5, 90)


def _user(a: _Account, name: str, ips: tuple[str, ...] = (), ua: str = _CLI) -> _Principal:
    rng = random.Random(f"persona|{a.id}|{name}")
    return _Principal(name, "AIDA" + _chars(rng, _UPPER, 17), "AKIA" + _chars(rng, _UPPER, 16),
                      f"arn:aws:iam::{a.id}:user/{name}", ips, (ua,))


def _role(a: _Account, name: str) -> _Principal:
    rng = random.Random(f"persona|{a.id}|role|{name}")
    return _Principal(name, "AROA" + _chars(rng, _UPPER, 17), "",
                      f"arn:aws:iam::{a.id}:role/{name}")


_DEV_APIS = ("ec2:DescribeInstances", "ec2:DescribeVpcs", "s3:ListBuckets",
             "sts:GetCallerIdentity", "lambda:ListFunctions20150331", "logs:DescribeLogGroups")


class _Plan:
    """The personas and the anomalies planted against them."""

    def __init__(self, seed: int, accounts: list[_Account]) -> None:
        self.b = _Builder(seed)
        self.a = accounts
        self.personas: dict[str, _Persona] = {}
        self.anomalies: list[tuple[Anomaly, list[tuple[int, dict]]]] = []
        self.kinds: dict[str, list[str]] = {}  # rule id -> personas it involves
        day0 = int(START.timestamp())
        self.t0 = day0 + ANOMALY_DAY * 86400

    # --- personas ---------------------------------------------------------------------------

    def user_persona(self, name: str, acct: int, ip: str, *, ua: str = _CLI,
                     apis: tuple[str, ...] = _DEV_APIS, **kw: Any) -> _Persona:
        a = self.a[acct]
        u = _user(a, name, (ip,), ua)
        p = _Persona(name, a, lambda t, a=a, u=u: a.ident_user(u), u.arn, (ip,), ua,
                     kw.pop("region", "us-east-1"), apis, **kw)
        self.personas[name] = p
        return p

    def role_persona(self, name: str, acct: int, ips: tuple[str, ...], ua: str,
                     apis: tuple[str, ...], **kw: Any) -> _Persona:
        a = self.a[acct]
        role = _role(a, name)
        key = "ASIA" + _chars(random.Random(f"key|{a.id}|{name}"), _UPPER, 16)

        def ident(t: int) -> dict:
            return a.ident_role(role, f"{name}-{t // 3600}", key, _ts(t - t % 3600))

        p = _Persona(name, a, ident, role.arn, ips, ua, kw.pop("region", "us-east-1"), apis,
                     **kw)
        self.personas[name] = p
        return p

    def plant(self, kind: str, p: _Persona | str, recs: list[tuple[int, dict]],
              description: str, *, principal: str | None = None, signal: int | None = None,
              acct: _Account | None = None, context: tuple[str, ...] = ()) -> None:
        """`recs[:signal]` are the events the rule must return (all by default)."""
        persona = p if isinstance(p, _Persona) else self.personas.get(p)
        a = acct or (persona.account if persona else self.a[0])
        ids = tuple(r["eventID"] for _, r in recs[:signal])
        self.anomalies.append((Anomaly(kind, a.id, principal or (persona.arn if persona else ""),
                                       ids, description), recs))
        if persona:
            self.kinds.setdefault(kind, []).append(persona.name)
        for name in context:  # personas whose routine a fixture needs as history
            self.kinds.setdefault(kind, []).append(name)

    def at(self, day_offset: int, hour: int, minute: int = 0) -> int:
        return self.t0 + day_offset * 86400 + hour * 3600 + minute * 60

    # --- the anomalies ----------------------------------------------------------------------

    def build(self) -> None:
        for name in sorted(n for n in dir(self) if n.startswith("k_")):
            getattr(self, name)()

    def k_s3(self) -> None:
        b = self.b
        etl = self.role_persona("etl-role", 0, ("10.20.0.5",), _CLI_LINUX,
                                ("s3:GetObject", "s3:GetObject", "s3:PutObject",
                                 "s3:ListObjects"), bucket="acme-lake-111122223333",
                                skip={ANOMALY_DAY}, sessions=4, calls=(4, 10))
        t = self.at(0, 14, 5)
        recs = [(t + i * 2, b.event(etl, t + i * 2, "s3:GetObject", size=40_000_000))
                for i in range(300)]
        self.plant("s3_access_spike", etl, recs, "etl-role reads 300 objects (12 GB) in an hour "
                   "from its usual bucket (baseline ~6/hour)")
        ops = self.user_persona("ops-frank", 1, "203.0.113.61",
                                apis=("s3:ListObjects", "s3:GetObject", "s3:DeleteObject",
                                      "ec2:DescribeInstances"),
                                bucket="acme-backups-444455556666", skip={ANOMALY_DAY})
        t = self.at(0, 11, 20)
        recs = [(t + i, b.event(ops, t + i, "s3:DeleteObject")) for i in range(200)]
        self.plant("s3_access_spike", ops, recs, "ops-frank deletes 200 objects in minutes")
        rep = self.user_persona("reporter-ruth", 0, "203.0.113.62",
                                apis=("s3:GetObject", "s3:ListObjects", "sts:GetCallerIdentity"),
                                bucket="acme-reports-111122223333", skip={ANOMALY_DAY + 1})
        t = self.at(1, 13, 0)
        recs = [(t + i * 3, b.event(rep, t + i * 3, "s3:GetObject", bucket="acme-hr-111122223333"))
                for i in range(150)]
        self.plant("s3_access_spike", rep, recs, "reporter-ruth reads 150 objects of a bucket "
                   "she never touched")

    def k_first_seen(self) -> None:
        b, a0 = self.b, self.a[0]
        new = _user(a0, "mallory-svc", ("203.0.113.99",))
        t = self.at(0, 15, 0)
        recs = [(t + i * 20, b.event(None, t + i * 20, api, acct=a0, ident=a0.ident_user(new),
                                     ip="203.0.113.99"))
                for i, api in enumerate(("sts:GetCallerIdentity", "iam:ListUsers",
                                         "s3:ListBuckets", "ec2:DescribeInstances"))]
        gina = self.user_persona("gina", 0, "203.0.113.60", skip={ANOMALY_DAY})
        self.plant("first_seen_principal", "mallory-svc", recs, "a principal never seen before",
                   principal=new.arn, acct=a0, context=("gina",))
        t = self.at(0, 12, 0)
        recs = [(t + i * 30, b.event(gina, t + i * 30, api, ip="45.77.12.9"))
                for i, api in enumerate(_DEV_APIS)]
        self.plant("first_seen_source_ip", gina, recs, "gina calls from a network never seen")
        hank = self.user_persona("hank", 1, "203.0.113.63", skip={ANOMALY_DAY})
        t = self.at(0, 13, 30)
        recs = [(t + i * 30, b.event(hank, t + i * 30, "ec2:DescribeInstances",
                                     region="ap-southeast-1")) for i in range(5)]
        self.plant("first_seen_region", hank, recs, "hank in ap-southeast-1 for the first time")
        ivan = self.user_persona("ivan", 0, "203.0.113.64", skip={ANOMALY_DAY})
        t = self.at(0, 10, 45)
        recs = [(t + i * 30, b.event(ivan, t + i * 30, "ec2:DescribeInstances", ua=_GO))
                for i in range(4)]
        self.plant("first_seen_user_agent", ivan, recs, "ivan with a Go SDK, never before")
        judy = self.user_persona("judy", 1, "203.0.113.65", skip={ANOMALY_DAY})
        t = self.at(0, 16, 10)
        recs = [(t + i * 10, b.event(judy, t + i * 10, "secretsmanager:GetSecretValue",
                                     rp={"secretId": f"prod/db-{i}"})) for i in range(3)]
        self.plant("first_seen_api", judy, recs, "judy reads secrets, an API she never called")
        kate = self.user_persona("kate", 0, "203.0.113.66", days=range(0, 3))
        t = self.at(0, 11, 0)
        recs = [(t + i * 40, b.event(kate, t + i * 40, api))
                for i, api in enumerate(_DEV_APIS[:4])]
        self.plant("dormant_identity_active", kate, recs, "kate active again after 8 idle days")

    def k_access(self) -> None:
        b = self.b
        liam = self.user_persona("liam", 1, "203.0.113.67", ua=_BROWSER,
                                 apis=("signin:ConsoleLogin",), sessions=1, calls=(1, 1),
                                 skip={ANOMALY_DAY + 1})
        t = self.at(1, 10, 0)
        recs = [(t, b.event(liam, t, "signin:ConsoleLogin", ip="185.220.101.7",
                            re={"ConsoleLogin": "Success"}, etype="AwsConsoleSignIn",
                            aed={"MFAUsed": "Yes", "MobileVersion": "No"}))]
        self.plant("console_login_new_ip", liam, recs, "liam signs in from a new address")
        mia = self.user_persona("mia", 0, "203.0.113.68", skip={ANOMALY_DAY + 1})
        t = self.at(1, 11, 0)
        recs = [(t + i * 120, b.event(mia, t + i * 120, _DEV_APIS[i % 6], ip=f"100.{20 + i}.7.9"))
                for i in range(8)]
        self.plant("access_key_many_ips", mia, recs, "mia's key used from 8 networks in 16 min")
        noah = self.user_persona("noah", 1, "203.0.113.69", skip={ANOMALY_DAY + 1})
        t = self.at(1, 3, 10)
        recs = [(t + i * 60, b.event(noah, t + i * 60, _DEV_APIS[i % 6])) for i in range(12)]
        self.plant("unusual_hour", noah, recs, "noah (a 9-17 routine) busy at 03:00")

    def k_bursts(self) -> None:
        b = self.b
        olga = self.user_persona("olga", 0, "203.0.113.70", skip={ANOMALY_DAY + 1})
        t = self.at(1, 14, 0)
        recs = [(t + i * 7, b.event(olga, t + i * 7, api, denied=True))
                for i, api in enumerate(("iam:ListUsers", "iam:GetUser", "ec2:DescribeInstances",
                                         "iam:ListRoles") * 10)]
        self.plant("access_denied_burst", olga, recs, "40 denied calls in 5 minutes")
        web = self.role_persona("web-role", 1, ("10.30.1.9",), _LAMBDA_UA,
                                ("s3:GetObject", "ssm:GetParameter", "kms:Decrypt"),
                                bucket="acme-web-444455556666", skip={ANOMALY_DAY + 1})
        t = self.at(1, 15, 0)
        names = [f"{svc}:{verb}{noun}" for svc, verb, noun in (
            ("iam", "List", "Users"), ("iam", "List", "Roles"), ("iam", "List", "Groups"),
            ("iam", "List", "Policies"), ("iam", "Get", "AccountAuthorizationDetails"),
            ("iam", "List", "AccessKeys"), ("iam", "Get", "AccountSummary"),
            ("ec2", "Describe", "Instances"), ("ec2", "Describe", "Vpcs"),
            ("ec2", "Describe", "Subnets"), ("ec2", "Describe", "SecurityGroups"),
            ("ec2", "Describe", "Snapshots"), ("ec2", "Describe", "Images"),
            ("ec2", "Describe", "Volumes"), ("ec2", "Describe", "KeyPairs"),
            ("s3", "List", "Buckets"), ("lambda", "List", "Functions20150331"),
            ("rds", "Describe", "DBInstances"), ("rds", "Describe", "DBSnapshots"),
            ("secretsmanager", "List", "Secrets"), ("ssm", "Describe", "Parameters"),
            ("kms", "List", "Keys"), ("kms", "List", "Aliases"),
            ("cloudtrail", "Describe", "Trails"), ("guardduty", "List", "Detectors"),
            ("organizations", "Describe", "Organization"), ("sns", "List", "Topics"),
            ("sqs", "List", "Queues"), ("dynamodb", "List", "Tables"),
            ("ecr", "Describe", "Repositories"))]
        recs = [(t + i * 12, b.event(web, t + i * 12, api)) for i, api in enumerate(names)]
        self.plant("discovery_burst", web, recs, "web-role enumerates 30 APIs in 6 minutes")
        a1 = self.a[1]
        pete = _user(a1, "pete", ("203.0.113.71",), _BROWSER)
        self.user_persona("pete", 1, "203.0.113.71", ua=_BROWSER, apis=("signin:ConsoleLogin",),
                          sessions=1, calls=(1, 1), skip={ANOMALY_DAY + 1})
        t = self.at(1, 9, 30)
        failed = {"type": "IAMUser", "principalId": pete.pid, "accountId": a1.id,
                  "accessKeyId": "", "userName": "pete"}
        login = {"etype": "AwsConsoleSignIn", "aed": {"MFAUsed": "No", "MobileVersion": "No"}}
        recs = [(t + i * 20, b.event(None, t + i * 20, "signin:ConsoleLogin", acct=a1,
                                     ident=failed, ip="198.51.100.99", ua=_BROWSER,
                                     re={"ConsoleLogin": "Failure"},
                                     error="Failed authentication", **login)) for i in range(7)]
        recs.append((t + 200, b.event(None, t + 200, "signin:ConsoleLogin", acct=a1,
                                      ident=a1.ident_user(pete) | {"accessKeyId": ""},
                                      ip="198.51.100.99", ua=_BROWSER,
                                      re={"ConsoleLogin": "Success"}, **login)))
        self.plant("console_bruteforce_success", "pete", recs, "7 failures, then a success",
                   principal=pete.arn, acct=a1)
        a0 = self.a[0]
        t = self.at(1, 16, 0)
        recs = []
        for i in range(12):
            name = f"user{i:02d}" if i % 3 else ("alice", "bob", "carol", "dave")[i // 3]
            ident = {"type": "IAMUser", "principalId": "AIDA" + _chars(self.b.rng, _UPPER, 17),
                     "accountId": a0.id, "accessKeyId": "", "userName": name}
            recs.append((t + i * 45, b.event(None, t + i * 45, "signin:ConsoleLogin", acct=a0,
                                             ident=ident, ip=_SPRAY_IP, ua=_BROWSER,
                                             re={"ConsoleLogin": "Failure"},
                                             error="Failed authentication", **login)))
        self.plant("password_spray", "", recs, "12 users tried from one address",
                   principal=_SPRAY_IP, acct=a0, context=("olga",))

    def k_sequences(self) -> None:
        b, a0, a1 = self.b, self.a[0], self.a[1]
        iam_apis = ("iam:ListRoles", "iam:GetRole", "sts:GetCallerIdentity")
        quinn = self.user_persona("quinn", 0, "203.0.113.72", apis=iam_apis, skip={ANOMALY_DAY})
        t = self.at(0, 10, 10)
        audit = _role(a0, "audit-role")
        policy = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"'
                  + quinn.arn + '"},"Action":"sts:AssumeRole"}]}')
        opts = a0.assume_role(b.rng, audit, "quinn", t + 180)
        recs = [(t, b.event(quinn, t, "iam:UpdateAssumeRolePolicy",
                            rp={"roleName": "audit-role", "policyDocument": policy})),
                (t + 180, b.event(quinn, t + 180, "sts:AssumeRole",
                                  **{k: v for k, v in opts.items() if k not in ("rid", "eid")}))]
        self.plant("privilege_change_then_use", quinn, recs,
                   "quinn rewrites audit-role's trust policy, then assumes it")
        rita = self.user_persona("rita", 0, "203.0.113.73", apis=iam_apis, skip={ANOMALY_DAY})
        svc = _user(a0, "svc-backup")
        t = self.at(0, 14, 40)
        new_key = "AKIA" + _chars(b.rng, _UPPER, 16)
        recs = [(t, b.event(rita, t, "iam:CreateAccessKey", rp={"userName": "svc-backup"},
                            re={"accessKey": {"accessKeyId": new_key, "status": "Active",
                                              "userName": "svc-backup",
                                              "createDate": _ts(t)}}))]
        ident = a0.ident_user(svc) | {"accessKeyId": new_key}
        recs += [(t + 600 + i * 30, b.event(None, t + 600 + i * 30, api, acct=a0, ident=ident,
                                            ip="45.77.99.1", ua=_GO))
                 for i, api in enumerate(("sts:GetCallerIdentity", "s3:ListBuckets"))]
        self.plant("new_access_key_first_use", rita, recs,
                   "rita makes a key for svc-backup; it is used 10 minutes later")
        sam = self.user_persona("sam", 1, "203.0.113.74", apis=iam_apis, skip={ANOMALY_DAY})
        tina = _user(a1, "tina")
        t = self.at(0, 15, 20)
        recs = [(t, b.event(sam, t, "iam:CreateLoginProfile",
                            rp={"userName": "tina", "passwordResetRequired": False})),
                (t + 300, b.event(None, t + 300, "signin:ConsoleLogin", acct=a1,
                                  ident=a1.ident_user(tina) | {"accessKeyId": ""},
                                  ip="45.77.99.2", ua=_BROWSER, re={"ConsoleLogin": "Success"},
                                  etype="AwsConsoleSignIn", aed={"MFAUsed": "No"}))]
        self.plant("login_profile_then_console_login", sam, recs,
                   "sam gives tina a password; tina signs in 5 minutes later")
        uma = self.user_persona("uma", 1, "203.0.113.75", apis=("lambda:ListFunctions20150331",
                                                                 "iam:ListRoles"),
                                skip={ANOMALY_DAY + 1})
        ops_role = _role(a1, "lambda-ops-role")
        t = self.at(1, 11, 30)
        recs = [(t, b.event(uma, t, "lambda:CreateFunction20150331",
                            rp={"functionName": "helper", "role": ops_role.arn,
                                "runtime": "python3.12", "handler": "index.handler"}))]
        ident = a1.ident_role(ops_role, "helper", "ASIA" + _chars(b.rng, _UPPER, 16), _ts(t + 60))
        recs += [(t + 240 + i * 5, b.event(None, t + 240 + i * 5, api, acct=a1, ident=ident,
                                           ip="3.91.1.1", ua=_LAMBDA_UA, rp=rp))
                 for i, (api, rp) in enumerate((
                     ("iam:CreateUser", {"userName": "backdoor"}),
                     ("iam:AttachUserPolicy", {"userName": "backdoor", "policyArn":
                                               "arn:aws:iam::aws:policy/AdministratorAccess"}),
                     ("iam:CreateAccessKey", {"userName": "backdoor"})))]
        self.plant("passrole_then_iam_writes", uma, recs,
                   "uma passes lambda-ops-role to a new function; the role then writes IAM")
        victor = self.user_persona("victor", 0, "203.0.113.76", skip={ANOMALY_DAY + 1})
        t = self.at(1, 12, 15)
        inst = _hexid(b.rng, "i")
        items = {"instancesSet": {"items": [{"instanceId": inst}]}}
        recs = [(t, b.event(victor, t, "ec2:StopInstances", rp=items)),
                (t + 90, b.event(victor, t + 90, "ec2:ModifyInstanceAttribute",
                                 rp={"instanceId": inst, "userData": "<sensitiveDataRemoved>"})),
                (t + 150, b.event(victor, t + 150, "ec2:StartInstances", rp=items))]
        self.plant("ec2_userdata_swap", victor, recs,
                   "victor stops an instance, swaps its user data, starts it")
        walt = self.user_persona("walt", 1, "203.0.113.77", skip={ANOMALY_DAY + 1})
        t = self.at(1, 13, 45)
        trail = {"name": f"arn:aws:cloudtrail:us-east-1:{a1.id}:trail/org-trail"}
        recs = [(t, b.event(walt, t, "cloudtrail:StopLogging", rp=trail))]
        recs += [(t + 60 + i * 40, b.event(walt, t + 60 + i * 40, api)) for i, api in enumerate(
            ("iam:ListUsers", "s3:ListBuckets", "ec2:DescribeInstances", "iam:CreateUser"))]
        recs.append((t + 1800, b.event(walt, t + 1800, "cloudtrail:StartLogging", rp=trail)))
        self.plant("activity_while_logging_stopped", walt, recs,
                   "walt stops the trail and works while it is off", signal=-1)

    def k_insights(self) -> None:
        b = self.b
        xav = self.role_persona("batch-role", 0, ("10.40.0.8",), _CLI_LINUX,
                                ("ssm:GetParameter", "kms:Decrypt", "sts:GetCallerIdentity"),
                                region="eu-west-1", skip={ANOMALY_DAY}, sessions=6)
        t = self.at(0, 13, 0)
        recs = [(t + i * 4, b.event(xav, t + i * 4, "ssm:GetParameter",
                                    rp={"name": f"/prod/app/{i % 50}", "withDecryption": True}))
                for i in range(400)]
        self.plant("api_call_rate_spike", xav, recs, "400 GetParameter in an hour (baseline ~3)")
        yara = self.user_persona("yara", 1, "203.0.113.78", apis=("ec2:DescribeInstances",
                                                                   "ec2:DescribeVolumes"),
                                 region="us-west-2", skip={ANOMALY_DAY})
        t = self.at(0, 10, 0)
        recs = [(t + i * 12, b.event(yara, t + i * 12, "ec2:DescribeVolumes", denied=True))
                for i in range(150)]
        self.plant("api_error_rate_spike", yara, recs, "150 denied DescribeVolumes in an hour")


def _accounts(seed: int) -> list[_Account]:
    regions = tuple(dict.fromkeys((*REGIONS, GLOBAL_REGION)))
    return [_Account(seed, i, a, regions) for i, a in enumerate(ACCOUNTS)]


def behaviour_records(seed: int = 5, *, background_events: int = 20_000,
                      anomalies: bool = True) -> tuple[Iterator[tuple[int, dict]], list[Anomaly]]:
    """(time, record) of background + persona routines (+ anomalies) in time order, streamed
    (the background is never held in memory); the planted anomalies."""
    accounts = _accounts(seed)
    plan = _Plan(seed, accounts)
    plan.build()
    recs: list[tuple[int, dict]] = []
    for persona in plan.personas.values():
        recs += plan.b.routine(persona)
    if anomalies:
        for _, events in plan.anomalies:
            recs += events
    recs.sort(key=lambda x: (x[0], x[1]["eventID"]))
    background = (_Background(_spec(seed, background_events), accounts).records()
                  if background_events else iter(()))
    stream = heapq.merge(background, recs, key=lambda x: x[0])
    return stream, [a for a, _ in plan.anomalies] if anomalies else []


def _spec(seed: int, events: int) -> TrailSpec:
    return TrailSpec(seed=seed, start=START, days=DAYS, accounts=ACCOUNTS, regions=REGIONS,
                     events=events, attacks=False, duplicates=False, insights=False,
                     digests=False)


def write_behaviour_trail(out_dir: Path, *, seed: int = 5, background_events: int = 20_000,
                          anomalies: bool = True) -> tuple[TrailSummary, list[Anomaly]]:
    """Write the 14-day trail (CloudTrail key layout, gzipped); the planted anomalies."""
    recs, planted = behaviour_records(seed, background_events=background_events,
                                      anomalies=anomalies)
    spec = _spec(seed, background_events)
    regions = tuple(dict.fromkeys((*REGIONS, GLOBAL_REGION, "ap-southeast-1")))
    writer = _Writer(spec, Path(out_dir), regions, None)
    count = 0
    for t, rec in recs:
        writer.add(t, rec)
        count += 1
    summary = writer.finish()
    summary.unique_events = count
    return summary, planted


def rule_fixture(kind: str, seed: int = 5) -> tuple[list[dict], list[dict]]:
    """(anomaly events, history events) for one rule's match.json / nomatch.json.

    The history is the involved personas' routine (sparser than in the trail) plus anything
    planted but not a signal; it must not match, the anomaly events must.
    """
    plan = _Plan(seed, _accounts(seed))
    plan.build()
    match: list[tuple[int, dict]] = []
    history: list[tuple[int, dict]] = []
    for anomaly, events in plan.anomalies:
        if anomaly.kind == kind:
            signal = set(anomaly.event_ids)
            match += [e for e in events if e[1]["eventID"] in signal]
            history += [e for e in events if e[1]["eventID"] not in signal]
    if not match:
        raise KeyError(kind)
    for name in plan.kinds.get(kind, []):
        persona = plan.personas[name]
        persona.sessions, persona.calls = 1, (4, 8)
        history += plan.b.routine(persona)
    return ([r for _, r in sorted(match, key=lambda x: x[0])],
            [r for _, r in sorted(history, key=lambda x: x[0])])


def kinds() -> list[str]:
    """Every rule id an anomaly is planted for."""
    plan = _Plan(5, _accounts(5))
    plan.build()
    return sorted({a.kind for a, _ in plan.anomalies})


def main(argv: list[str] | None = None) -> int:
    """Write a behaviour trail, or (`--fixtures QUERIES`) the behavioural rules' test events."""
    parser = argparse.ArgumentParser(prog="python -m trailscan.synth_behaviour",
                                     description=main.__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="benign background events")
    parser.add_argument("--benign", action="store_true", help="no planted anomalies")
    parser.add_argument("--fixtures", action="store_true",
                        help="OUT is the queries/ directory: (re)write match/nomatch.json")
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.fixtures:
        for kind in kinds():
            folder = args.out / kind
            if not folder.is_dir():
                continue
            match, history = rule_fixture(kind)
            for name, recs in (("match.json", match), ("nomatch.json", history)):
                lines = ",\n".join(json.dumps(r, separators=(",", ":")) for r in recs)
                (folder / name).write_text('{"Records": [\n' + lines + "\n]}\n")
            print(f"{kind}: {len(match)} match, {len(history)} nomatch")
        return 0
    summary, planted = write_behaviour_trail(args.out, background_events=args.events,
                                             anomalies=not args.benign)
    print(f"{summary.log_files} log files, {summary.events} records, {len(planted)} anomalies "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
