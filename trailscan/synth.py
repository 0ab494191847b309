"""Deterministic synthetic CloudTrail trails: log files, digests, signatures, Insights, as in S3.

Tests, the bundled `sample_logs/` and benchmarks need realistic data nobody has to download or
anonymise, byte-identical for a seed, with known attacks planted in a background free of them.
Generation streams (about an hour of events in memory) so benchmarks can write millions of events.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import random
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

WINDOW = 300  # CloudTrail delivers a log file about every 5 minutes per account and region
GLOBAL_REGION = "us-east-1"  # IAM, STS (global endpoint) and sign-in events are logged here
UNSIGNED_FINGERPRINT = "0" * 32  # digestPublicKeyFingerprint of trails written without a key


@dataclass(frozen=True)
class TrailSpec:
    """What to generate; equal specs give byte-identical trails."""

    seed: int = 7
    start: datetime = datetime(2026, 3, 2, tzinfo=UTC)  # first hour covered
    days: float = 3
    accounts: tuple[str, ...] = ("111122223333", "444455556666", "777788889999")
    regions: tuple[str, ...] = ("us-east-1", "eu-west-1", "us-west-2")
    org_id: str | None = "o-a1b2c3d4e5"  # None => AWSLogs/<acct>/... layout
    bucket: str = "acme-org-trail"
    prefix: str = ""  # optional key prefix before AWSLogs/
    trail_name: str = "org-trail"
    home_region: str = "us-east-1"
    events: int = 3000  # approximate total benign events
    events_per_file: int = 250  # max records per log file
    attacks: bool = True  # plant the attack scenarios
    duplicates: bool = True  # re-deliver a few records in a later file (CloudTrail does this)
    insights: bool = True  # write a CloudTrail-Insight file with a start/end insight pair
    digests: bool = True  # hourly digest files (+ signature sidecars when a key is given)
    diurnal: bool = True  # False: flat rhythm and evenly loaded regions (benchmarks)


@dataclass(frozen=True)
class Planted:
    """One planted attack; `event_ids` are the records a detection for it should flag."""

    scenario: str
    account_id: str
    region: str
    principal_arn: str
    event_ids: tuple[str, ...]
    description: str


@dataclass
class TrailSummary:
    """What `write_trail` wrote; `bytes_uncompressed` counts log files only."""

    log_files: int = 0
    digest_files: int = 0
    insight_files: int = 0
    events: int = 0  # records written into log files, re-deliveries included
    unique_events: int = 0  # distinct eventIDs
    duplicate_records: int = 0  # records that are exact re-deliveries
    bytes_uncompressed: int = 0
    planted: list[Planted] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ keys

_SMALL_PRIMES = tuple(p for p in range(3, 3000, 2)
                      if all(p % q for q in range(3, int(p**0.5) + 1, 2)))


def _probable_prime(n: int, rng: random.Random) -> bool:
    """Miller-Rabin, 40 rounds: pure Python `pow` is fast enough for 1024-bit candidates."""
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(40):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int, e: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1  # top bits set: full-size n
        if candidate % e != 1 and _probable_prime(candidate, rng):
            return candidate


@functools.lru_cache(maxsize=8)
def derive_test_key(seed: int = 7, bits: int = 2048) -> RSAPrivateKey:
    """A deterministic RSA key to sign synthetic digests.

    PUBLIC TEST KEY: anyone can re-derive it from the seed, so its signatures prove nothing about
    real data. It exists because `cryptography` cannot generate keys from a seed and the bundled
    sample must be reproducible.
    """
    rng, e = random.Random(seed), 65537
    p = q = _prime(rng, bits // 2, e)
    while q == p:
        q = _prime(rng, bits - bits // 2, e)
    d = pow(e, -1, (p - 1) * (q - 1))
    crt = rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q)
    return rsa.RSAPrivateNumbers(p, q, d, *crt, rsa.RSAPublicNumbers(e, p * q)).private_key()


def _pkcs1_der(key: RSAPrivateKey | RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)


def public_key_fingerprint(key: RSAPublicKey) -> str:
    """Lowercase hex MD5 of the PKCS#1 DER, as CloudTrail's published fingerprints are."""
    return hashlib.md5(_pkcs1_der(key)).hexdigest()


def public_keys_document(key: RSAPrivateKey | RSAPublicKey, start: datetime, end: datetime) -> dict:
    """What `aws cloudtrail list-public-keys` prints, so validators can take keys from a file."""
    der = _pkcs1_der(key)
    return {"PublicKeyList": [{
        "Value": base64.b64encode(der).decode(),
        "ValidityStartTime": start.astimezone(UTC).isoformat(),
        "ValidityEndTime": end.astimezone(UTC).isoformat(),
        "Fingerprint": hashlib.md5(der).hexdigest()}]}


def sign_digest(key: RSAPrivateKey, digest_end_time: str, bucket: str, key_name: str,
                digest_bytes: bytes, previous_signature: str | None) -> str:
    """Hex SHA256withRSA signature over CloudTrail's documented string to sign."""
    message = (f"{digest_end_time}\n{bucket}/{key_name}\n"
               f"{hashlib.sha256(digest_bytes).hexdigest()}\n{previous_signature or 'null'}")
    return key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


# --------------------------------------------------------------------------------------- helpers

_SECONDS = tuple(f"{s:02d}Z" for s in range(60))
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def _minute(m: int) -> str:
    return _iso(m * 60)[:17]


def _ts(t: int) -> str:
    """`_iso` for the hot path: one strftime per minute."""
    return _minute(t // 60) + _SECONDS[t % 60]


def _uuid(rng: random.Random) -> str:
    n = rng.getrandbits(128)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[n >> 126]}{h[17:20]}-{h[20:]}"


def _chars(rng: random.Random, alphabet: str, k: int) -> str:
    return "".join(rng.choices(alphabet, k=k))


def _ip(rng: random.Random, first: int) -> str:
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _hexid(rng: random.Random, prefix: str) -> str:
    return f"{prefix}-0{rng.getrandbits(64):016x}"


def _aws_date(t: int) -> str:
    """The `Mar 2, 2026, 3:04:05 PM` style of IAM and STS responses."""
    d = datetime.fromtimestamp(t, UTC)
    return f"{d:%b} {d.day}, {d.year}, {d.hour % 12 or 12}:{d:%M:%S} {'AP'[d.hour >= 12]}M"


def _tls(host: str, v12: bool = False) -> dict:
    return {"tlsVersion": "TLSv1.2" if v12 else "TLSv1.3",
            "cipherSuite": "ECDHE-RSA-AES128-GCM-SHA256" if v12 else "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": host}


def _host(svc: str, region: str) -> str:
    if svc in ("iam", "sts"):
        return f"{svc}.amazonaws.com"
    return f"{region}.signin.aws.amazon.com" if svc == "signin" else f"{svc}.{region}.amazonaws.com"


def _cli_command(svc: str, name: str) -> str:
    """The `md/command#` of aws-cli user agents: ec2.describe-instances, lambda.list-functions."""
    verb = re.sub(r"(?<!^)(?=[A-Z])", "-", name.split("2015", 1)[0]).lower()
    return f"{ {'monitoring': 'cloudwatch', 's3': 's3api'}.get(svc, svc)}.{verb}"


_VERSIONS = {"s3": "1.10", "signin": "1.09", "sts": "1.10", "lambda": "1.09", "ssm": "1.09",
             "backup": "1.09", "guardduty": "1.10"}


def _record(ident: dict | None, when: str, source: str, name: str, region: str, ip: str, ua: str,
            acct: str, *, rp: Any = None, re: Any = None, aed: Any = None, rid: str | None = "",
            eid: str = "", ro: bool = False, res: list | None = None, etype: str = "AwsApiCall",
            data: bool = False, sed: dict | None = None, shared: str | None = None,
            tls: dict | None = None, console: bool = False, error: str | None = None) -> dict:
    """One record in CloudTrail's field order; optional parts that are None are left out."""
    r: dict[str, Any] = {"eventVersion": _VERSIONS.get(source.split(".", 1)[0], "1.11")}
    if ident is not None:
        r["userIdentity"] = ident
    r |= {"eventTime": when, "eventSource": source, "eventName": name, "awsRegion": region,
          "sourceIPAddress": ip, "userAgent": ua}
    optional = (("errorMessage", error), ("requestParameters", rp), ("responseElements", re),
                ("additionalEventData", aed), ("requestID", rid), ("eventID", eid),
                ("readOnly", ro), ("resources", res), ("eventType", etype),
                ("managementEvent", not data),
                ("recipientAccountId", acct), ("serviceEventDetails", sed),
                ("sharedEventID", shared), ("eventCategory", "Data" if data else "Management"),
                ("tlsDetails", tls), ("sessionCredentialFromConsole", "true" if console else None))
    always = ("requestParameters", "responseElements")
    r |= {k: v for k, v in optional if v is not None or k in always}
    return r


def _denied(rec: dict) -> dict:
    """A copy of `rec` as a call refused by IAM: error fields after userAgent, no response."""
    svc, arn = rec["eventSource"].split(".", 1)[0], rec["userIdentity"]["arn"]
    action = f"{'cloudwatch' if svc == 'monitoring' else svc}:{rec['eventName'].split('2015')[0]}"
    msg = (f"User: {arn} is not authorized to perform: {action} because no identity-based "
           f"policy allows the {action} action")
    code, msg = {"ec2": ("Client.UnauthorizedOperation",
                         "You are not authorized to perform this operation. " + msg),
                 "s3": ("AccessDenied", "Access Denied")}.get(svc, ("AccessDenied", msg))
    out: dict[str, Any] = {}
    for k, v in rec.items():
        out[k] = None if k == "responseElements" else v
        if k == "userAgent":
            out |= {"errorCode": code, "errorMessage": msg}
    return out


# ------------------------------------------------------------------------------------- org model

_CLI = ("aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 "
        "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
        "md/prompt#off")
_CLI_V1 = "aws-cli/1.32.51 Python/3.11.6 Darwin/23.2.0 botocore/1.34.51"
_CLI_LINUX = ("aws-cli/2.17.4 md/awscrt#0.20.11 ua/2.0 os/linux#6.5.0-1022-aws md/arch#x86_64 "
              "lang/python#3.11.9 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
              "md/distrib#ubuntu.22 md/prompt#off")
_KALI = ("aws-cli/2.13.0 md/awscrt#0.16.16 ua/2.0 os/linux#6.1.0-kali9-amd64 md/arch#x86_64 "
         "lang/python#3.11.4 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
         "md/distrib#kali.2023 md/prompt#off")
_PACU = ("Pacu/1.5.3 Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.6.9-amd64 "
         "md/arch#x86_64 lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy")
_BOTO = ("Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.15.0-1056-aws md/arch#x86_64 "
         "lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69")
_TERRAFORM = ("APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) "
              "terraform-provider-aws/5.42.0 aws-sdk-go-v2/1.26.0 ua/2.0 os/linux lang/go#1.22.1")
_JAVA = ("aws-sdk-java/2.25.16 Linux/6.1.79-99.167.amzn2023.x86_64 "
         "OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 vendor/Amazon.com_Inc. io/sync")
_LAMBDA_UA = ("Boto3/1.34.42 md/Botocore#1.34.42 ua/2.0 os/linux#5.10.213-223.838.amzn2.x86_64 "
              "lang/python#3.12.2 exec-env/AWS_Lambda_python3.12 Botocore/1.34.42")
_BROWSER = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36")
_S3_CONSOLE = "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 Linux/5.10.218 java/1.8.0]"
_CONSOLE_UAS = ("console.amazonaws.com", "AWS Internal", "console.amazonaws.com")

# IAM users in every account: name, IPs (documentation ranges), user agents.
_USERS = (
    ("alice", ("203.0.113.10", "203.0.113.45"), (_CLI_V1, _CLI)),
    ("bob", ("203.0.113.77", "192.0.2.140"), (_CLI, _BOTO)),
    ("carol", ("192.0.2.31",), (_CLI_LINUX, _BOTO)),
    ("ci-deployer", ("198.51.100.20", "198.51.100.21", "198.51.100.22"), (_TERRAFORM, _CLI_LINUX)),
    ("dev-intern", ("203.0.113.190",), (_CLI_V1,)),
)
# lambda-admin-role is only ever used by the planted attack.
_ROLES = ("DevOps", "DataEngineer", "app-server-role", "order-processor-role",
          "AWSServiceRoleForConfig", "lambda-admin-role")


@dataclass(frozen=True)
class _Principal:
    name: str
    pid: str  # AIDA... for users, AROA... for roles
    key: str  # a user's AKIA access key
    arn: str
    ips: tuple[str, ...] = ()
    uas: tuple[str, ...] = ()


class _Account:
    """Stable identities and resources of one account, derived from the seed only."""

    def __init__(self, seed: int, idx: int, acct: str, regions: tuple[str, ...]) -> None:
        rng = random.Random(f"{seed}|account|{acct}")
        self.idx, self.id = idx, acct
        self.users = {n: _Principal(n, "AIDA" + _chars(rng, _UPPER, 17), "AKIA" + _chars(
            rng, _UPPER, 16), f"arn:aws:iam::{acct}:user/{n}", ips, uas) for n, ips, uas in _USERS}
        self.roles = {n: _Principal(n, "AROA" + _chars(rng, _UPPER, 17), "",
                                    f"arn:aws:iam::{acct}:role/{n}") for n in _ROLES}
        self.res = {r: {p: tuple(_hexid(rng, p) for _ in range(3)) for p in
                        ("i", "sg", "subnet", "ami", "snap")} for r in regions}
        self.nat_ips = {r: (_ip(rng, 3), _ip(rng, 52)) for r in regions}
        self.kms = {r: _uuid(rng) for r in regions}
        self.buckets = (f"acme-app-data-{acct}", f"acme-reports-{acct}", f"acme-artifacts-{acct}")
        self.detector = f"{rng.getrandbits(128):032x}"

    def ident_user(self, u: _Principal, key: str = "", created: str = "") -> dict:
        """An IAM user with its access key, or in a console session when `key` (ASIA) is given."""
        ident = {"type": "IAMUser", "principalId": u.pid, "arn": u.arn, "accountId": self.id,
                 "accessKeyId": key or u.key, "userName": u.name}
        if key:
            ident["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                       "attributes": {"creationDate": created,
                                                      "mfaAuthenticated": "true"}}
        return ident

    def ident_role(self, role: _Principal, session: str, key: str, created: str, *,
                   mfa: bool = False, ec2: bool = False, invoked_by: str | None = None) -> dict:
        ctx: dict[str, Any] = {
            "sessionIssuer": {"type": "Role", "principalId": role.pid, "arn": role.arn,
                              "accountId": self.id, "userName": role.name},
            "webIdFederationData": {},
            "attributes": {"creationDate": created, "mfaAuthenticated": str(mfa).lower()}}
        ctx |= {"ec2RoleDelivery": "2.0"} if ec2 else {}
        ident = {"type": "AssumedRole", "principalId": f"{role.pid}:{session}",
                 "arn": f"arn:aws:sts::{self.id}:assumed-role/{role.name}/{session}",
                 "accountId": self.id, "accessKeyId": key, "sessionContext": ctx}
        return ident | ({"invokedBy": invoked_by} if invoked_by else {})

    def assume_role(self, rng: random.Random, role: _Principal, session: str, t: int) -> dict:
        """AssumeRole options for `_record`; the response names the ASIA key the session uses."""
        key = "ASIA" + _chars(rng, _UPPER, 16)
        token = "IQoJb3JpZ2luX2VjE" + base64.b64encode(rng.randbytes(200)).decode()
        return {"rp": {"roleArn": role.arn, "roleSessionName": session, "durationSeconds": 3600},
                "re": {"credentials": {"accessKeyId": key, "sessionToken": token,
                                       "expiration": _aws_date(t + 3600)},
                       "assumedRoleUser": {"assumedRoleId": f"{role.pid}:{session}", "arn":
                                           f"arn:aws:sts::{self.id}:assumed-role/{role.name}/{session}"}},
                "res": [{"accountId": self.id, "type": "AWS::IAM::Role", "ARN": role.arn}],
                "ro": True, "rid": _uuid(rng), "eid": _uuid(rng)}


# ----------------------------------------------------------------------------------- API catalog

# requestParameters, responseElements, additionalEventData, resources
Built = tuple[Any, Any, Any, Any]
Builder = Callable[[_Account, str, random.Random], Built]


class _Api:
    """One API as benign principals call it; flags follow from the name as in CloudTrail."""

    def __init__(self, svc: str, name: str, build: Builder, variants: int = 1) -> None:
        self.svc, self.source, self.name = svc, f"{svc}.amazonaws.com", name
        self.build, self.variants = build, variants
        self.ro = name.startswith(("Describe", "List", "Get")) or name == "Decrypt"
        self.data = name in ("GetObject", "PutObject")  # S3 data events
        self.glob = svc in ("iam", "sts") or name == "ListBuckets"  # logged in us-east-1
        self.echo = svc == "ec2" and not self.ro  # EC2 writes repeat requestID in the response


def _s3_aed(rng: random.Random, b_in: int, b_out: int) -> dict:
    return {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": b_in, "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": base64.b64encode(rng.randbytes(42)).decode(),
            "bytesTransferredOut": b_out}


def _s3_object(a: _Account, region: str, rng: random.Random, key: str, bucket: str,
               b_in: int = 0, b_out: int = 0) -> Built:
    rp = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}
    res = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
           {"accountId": a.id, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}]
    return rp, None, _s3_aed(rng, b_in, b_out), res


def _s3_io(put: bool) -> Builder:
    def build(a: _Account, region: str, rng: random.Random) -> Built:
        key = f"{rng.choice(('exports', 'reports', 'builds'))}/part-{rng.randrange(10**5):05d}.gz"
        size = rng.randrange(800, 4_000_000)
        rp, _, aed, res = _s3_object(a, region, rng, key, rng.choice(a.buckets),
                                     *((size, 0) if put else (0, size)))
        if not put:
            return rp, None, aed, res
        sse = {"x-amz-server-side-encryption": "AES256"}
        return rp | sse, sse, aed, res
    return build


def _pick(param: str, *values: Any, **extra: Any) -> Builder:
    return lambda a, region, rng: ({param: rng.choice(values), **extra}, None, None, None)


def _ec2_sets(*names: str) -> Builder:
    def build(a: _Account, region: str, rng: random.Random) -> Built:
        rp: dict[str, Any] = {n: {} for n in names} | {"filterSet": {}}
        if rng.random() < 0.5:
            rp["filterSet"] = {"items": [{"name": "tag:env", "valueSet": {"items": [
                {"value": "prod"}]}}]}
        return rp, None, None, None
    return build


def _run_instances(a: _Account, region: str, rng: random.Random) -> Built:
    res, itype = a.res[region], rng.choice(("t3.medium", "m6i.large"))
    ip = f"10.0.{rng.randrange(64)}.{rng.randrange(4, 250)}"
    tags = [{"key": "env", "value": "prod"}]
    rp = {"instancesSet": {"items": [{"imageId": res["ami"][0], "minCount": 1, "maxCount": 1}]},
          "instanceType": itype, "blockDeviceMapping": {}, "monitoring": {"enabled": False},
          "disableApiTermination": False, "clientToken": f"terraform-{rng.getrandbits(80):020x}",
          "networkInterfaceSet": {"items": [{"deviceIndex": 0, "subnetId": res["subnet"][0]}]},
          "iamInstanceProfile": {"name": "app-server-profile"},
          "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": tags}]}}
    item = {"instanceId": _hexid(rng, "i"), "imageId": res["ami"][0], "instanceType": itype,
            "instanceState": {"code": 0, "name": "pending"}, "privateIpAddress": ip,
            "privateDnsName": f"ip-{ip.replace('.', '-')}.{region}.compute.internal",
            "placement": {"availabilityZone": f"{region}a", "tenancy": "default"},
            "subnetId": res["subnet"][0], "architecture": "x86_64", "rootDeviceType": "ebs",
            "tagSet": {"items": tags}, "iamInstanceProfile": {
                "arn": f"arn:aws:iam::{a.id}:instance-profile/app-server-profile",
                "id": "AIPA" + _chars(rng, _UPPER, 17)}}
    return rp, {"requestId": "", "reservationId": _hexid(rng, "r"), "ownerId": a.id,
                "groupSet": {}, "instancesSet": {"items": [item]}}, None, None


def _create_tags(a: _Account, region: str, rng: random.Random) -> Built:
    rp = {"resourcesSet": {"items": [{"resourceId": rng.choice(a.res[region]["i"])}]},
          "tagSet": {"items": [{"key": "owner", "value": rng.choice(("platform", "data"))}]}}
    return rp, {"requestId": "", "_return": True}, None, None


def _ingress(a: _Account, sg: str, port: int, cidr: str, rng: random.Random) -> tuple[dict, dict]:
    """AuthorizeSecurityGroupIngress as the API logs it (ipPermissions.items[].ipRanges)."""
    perm = {"ipProtocol": "tcp", "fromPort": port, "toPort": port, "groups": {},
            "ipRanges": {"items": [{"cidrIp": cidr}]}, "ipv6Ranges": {}, "prefixListIds": {}}
    rule = {"groupOwnerId": a.id, "groupId": sg, "securityGroupRuleId": _hexid(rng, "sgr"),
            "isEgress": False, "ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "cidrIpv4": cidr}
    return ({"groupId": sg, "ipPermissions": {"items": [perm]}},
            {"requestId": "", "_return": True, "securityGroupRuleSet": {"items": [rule]}})


def _sg_internal(a: _Account, region: str, rng: random.Random) -> Built:
    """Benign counterpart of the open-port attack: HTTPS from inside the VPC."""
    return *_ingress(a, rng.choice(a.res[region]["sg"]), 443, "10.0.0.0/16", rng), None, None


def _fn_config(a: _Account, region: str, rng: random.Random, fn: str, role: str) -> dict:
    return {"functionName": fn, "functionArn": f"arn:aws:lambda:{region}:{a.id}:function:{fn}",
            "runtime": "python3.12", "role": f"arn:aws:iam::{a.id}:role/{role}",
            "handler": "app.handler", "codeSize": rng.randrange(2000, 9_000_000), "timeout": 30,
            "memorySize": 512, "codeSha256": base64.b64encode(rng.randbytes(32)).decode(),
            "version": "$LATEST", "revisionId": _uuid(rng), "state": "Active",
            "lastUpdateStatus": "InProgress", "packageType": "Zip", "architectures": ["x86_64"]}


def _update_code(a: _Account, region: str, rng: random.Random) -> Built:
    fn = rng.choice(("order-processor", "thumbnailer", "report-builder"))
    rp = {"functionName": f"arn:aws:lambda:{region}:{a.id}:function:{fn}", "publish": False,
          "s3Bucket": a.buckets[2], "s3Key": f"lambda/{fn}/{rng.getrandbits(40):010x}.zip"}
    return rp, _fn_config(a, region, rng, fn, "order-processor-role"), None, None


def _decrypt(a: _Account, region: str, rng: random.Random) -> Built:
    ctx = {"PARAMETER_ARN": f"arn:aws:ssm:{region}:{a.id}:parameter/app/prod/db-password"}
    res = [{"accountId": a.id, "type": "AWS::KMS::Key",
            "ARN": f"arn:aws:kms:{region}:{a.id}:key/{a.kms[region]}"}]
    return {"encryptionContext": ctx, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, None, None, res


def _none(a: _Account, region: str, rng: random.Random) -> Built:
    return None, None, None, None


_APIS = {api.name: api for api in (
    _Api("ec2", "DescribeInstances", _ec2_sets("instancesSet"), 2),
    _Api("ec2", "DescribeSecurityGroups", _ec2_sets("securityGroupSet", "securityGroupIdSet"), 2),
    _Api("ec2", "DescribeVpcs", _ec2_sets("vpcSet")),
    _Api("ec2", "DescribeVolumes", _ec2_sets("volumeSet"), 2),
    _Api("ec2", "RunInstances", _run_instances, 4),
    _Api("ec2", "CreateTags", _create_tags, 3),
    _Api("ec2", "AuthorizeSecurityGroupIngress", _sg_internal, 2),
    _Api("s3", "ListBuckets", lambda a, r, rng: ({"Host": "s3.amazonaws.com"}, None,
                                                 _s3_aed(rng, 0, rng.randrange(900, 1600)), None)),
    _Api("s3", "GetObject", _s3_io(False), 12),
    _Api("s3", "PutObject", _s3_io(True), 8),
    _Api("iam", "ListUsers", _none),
    _Api("iam", "ListRoles", _none),
    _Api("iam", "GetRole", _pick("roleName", "DevOps", "DataEngineer", "app-server-role"), 3),
    _Api("iam", "GetUser", _pick("userName", "alice", "bob", "carol"), 3),
    _Api("iam", "ListAttachedRolePolicies", _pick("roleName", "DevOps", "app-server-role"), 2),
    _Api("sts", "GetCallerIdentity", _none),
    _Api("kms", "Decrypt", _decrypt),
    _Api("ssm", "GetParameter", _pick("name", "/app/prod/db-host", "/app/prod/flags",
                                      withDecryption=False), 2),
    _Api("lambda", "ListFunctions20150331", _none),
    _Api("lambda", "GetFunction20150331v2", _pick("functionName", "order-processor", "thumbnailer"),
         2),
    _Api("lambda", "UpdateFunctionCode20150331v2", _update_code, 3),
    _Api("logs", "DescribeLogGroups", _pick("limit", 50)),
    _Api("logs", "DescribeLogStreams", _pick("logGroupName", "/aws/lambda/order-processor",
                                             descending=True, orderBy="LastEventTime"), 1),
    _Api("monitoring", "DescribeAlarms", _pick("maxRecords", 100)),
    _Api("cloudformation", "DescribeStacks", _pick("stackName", "network-prod", "app-prod"), 2),
)}


def _profile(spec: str) -> tuple[list[_Api], tuple[int, ...]]:
    pairs = [p.split(":") for p in spec.split()]
    return [_APIS[n] for n, _ in pairs], tuple(int(w) for _, w in pairs)


# What each kind of principal calls, with weights. None of it is an attack pattern.
_PROFILES = {k: _profile(v) for k, v in {
    "dev": "DescribeInstances:8 DescribeSecurityGroups:4 DescribeVpcs:3 ListBuckets:3 "
           "GetObject:4 PutObject:1 GetCallerIdentity:3 ListFunctions20150331:3 GetUser:1 "
           "GetFunction20150331v2:2 DescribeLogGroups:3 DescribeLogStreams:2 GetParameter:3 "
           "ListRoles:1 GetRole:2 DescribeAlarms:2 DescribeStacks:3",
    "intern": "DescribeInstances:4 ListBuckets:3 GetObject:2 GetCallerIdentity:2 ListUsers:1 "
              "DescribeLogGroups:1",
    "data": "GetObject:6 PutObject:2 ListBuckets:2 GetCallerIdentity:2 DescribeLogStreams:2",
    "ci": "DescribeInstances:5 DescribeSecurityGroups:3 RunInstances:1 CreateTags:2 "
          "UpdateFunctionCode20150331v2:1 PutObject:3 GetObject:2 DescribeStacks:4 "
          "GetCallerIdentity:3 AuthorizeSecurityGroupIngress:1 DescribeVolumes:2",
    "console": "DescribeInstances:6 DescribeSecurityGroups:3 DescribeVpcs:2 ListBuckets:3 "
               "ListUsers:1 ListRoles:1 GetRole:1 DescribeAlarms:2 ListFunctions20150331:2 "
               "DescribeLogGroups:1 GetObject:2 DescribeVolumes:1",
    "instance": "GetObject:4 PutObject:2 GetParameter:5 Decrypt:2 GetCallerIdentity:3 "
                "DescribeInstances:1",
    "lambda": "GetObject:3 PutObject:2 Decrypt:2 GetParameter:3",
    "config": "DescribeInstances:3 DescribeSecurityGroups:3 DescribeVpcs:2 DescribeVolumes:2 "
              "ListRoles:1 ListAttachedRolePolicies:1",
}.items()}

# Session kinds: (kind, user, role, profile, weight)
_KINDS = (
    ("cli", "alice", None, "dev", 8), ("cli", "bob", None, "dev", 10),
    ("cli", "carol", None, "data", 3), ("cli", "ci-deployer", None, "ci", 9),
    ("cli", "dev-intern", None, "intern", 2), ("console", "alice", None, "console", 4),
    ("console", "carol", None, "console", 1), ("assume", "bob", "DevOps", "ci", 3),
    ("assume", "alice", "DevOps", "dev", 2), ("assume", "carol", "DataEngineer", "data", 3),
    ("instance", None, "app-server-role", "instance", 7),
    ("lambda", None, "order-processor-role", "lambda", 4),
    ("config", None, "AWSServiceRoleForConfig", "config", 3), ("service", None, None, "", 1),
)
_KIND_WEIGHTS = tuple(k[-1] for k in _KINDS)


# -------------------------------------------------------------------------------- benign traffic


class _Background:
    """Benign sessions of people, CI, instance and Lambda roles and AWS services, in time order."""

    def __init__(self, spec: TrailSpec, accounts: list[_Account]) -> None:
        self.spec, self.accounts = spec, accounts
        self.rng = random.Random(f"{spec.seed}|benign")
        self.templates: dict[tuple, dict] = {}
        self.uas: dict[tuple[str, str], str] = {}
        self.creds: dict[tuple, tuple[str, str]] = {}  # workload session -> key, creation time
        # Home region busiest; flat mode offsets us-east-1's global events so cells fill alike.
        self.region_weights = tuple((3.0 if i == 0 else 1.0) if spec.diurnal else
                                    (0.6 if r == GLOBAL_REGION else 1.0)
                                    for i, r in enumerate(spec.regions))

    def records(self) -> Iterator[tuple[int, dict]]:
        spec, rng = self.spec, self.rng
        start = int(spec.start.timestamp())
        end = start + int(spec.days * 86400)
        hours = range(start - start % 3600, end, 3600)
        weights = [self._weight(h, start, end) for h in hours]
        total, acc, done, seq = sum(weights) or 1.0, 0.0, 0, 0
        pending: list[tuple[int, int, dict]] = []
        for h, w in zip(hours, weights, strict=True):
            acc += w
            budget = round(spec.events * acc / total) - done
            done += max(budget, 0)
            while budget > 0:
                a = self.accounts[rng.randrange(len(self.accounts))]
                t0 = rng.randrange(max(h, start), min(h + 3600, end))
                for t, rec in self._session(a, t0, budget):
                    pending.append((t, seq, rec))
                    seq, budget = seq + 1, budget - 1
            pending.sort(key=lambda x: (x[0], x[1]))
            cut = next((i for i, p in enumerate(pending) if p[0] >= h + 3600), len(pending))
            yield from ((t, rec) for t, _, rec in pending[:cut])
            del pending[:cut]
        yield from ((t, rec) for t, _, rec in pending)

    def _weight(self, h: int, start: int, end: int) -> float:
        covered = (min(h + 3600, end) - max(h, start)) / 3600
        if not self.spec.diurnal:
            return covered
        d = datetime.fromtimestamp(h, UTC)
        work = 1.0 if 8 <= d.hour < 18 else 0.55 if d.hour in (6, 7, 18, 19, 20) else 0.18
        return covered * work * (0.35 if d.weekday() >= 5 else 1.0)

    def _template(self, key: tuple, a: _Account, api: _Api, region: str) -> dict:
        """A record with all but identity, time, IP, user agent and ids: built once, then copied."""
        _, _, _, variant, mode = key
        rng = random.Random(f"{self.spec.seed}|tpl|{a.id}|{api.name}|{region}|{variant}|{mode}")
        rp, re_, aed, res = api.build(a, region, rng)
        host = rp["Host"] if api.data or api.name == "ListBuckets" else _host(api.svc, region)
        tls = None if mode == "svc" else _tls(host, rng.random() < 0.2)
        rec = _record({}, "", api.source, api.name, region, "", "", a.id, rp=rp, re=re_, aed=aed,
                      ro=api.ro, res=res, data=api.data, tls=tls, console=mode == "console")
        self.templates[key] = rec
        return rec

    def _call(self, a: _Account, api: _Api, region: str, t: int, ident: dict, ip: str, ua: str,
              mode: str, error_rate: float) -> dict:
        rng = self.rng
        region = GLOBAL_REGION if api.glob else region
        variant = rng.randrange(api.variants) if api.variants > 1 else 0
        key = (a.idx, api.name, region, variant, mode)
        tpl = self.templates.get(key) or self._template(key, a, api, region)
        rec = tpl.copy()
        if ua.startswith("aws-cli/2"):
            ua = self.uas.get((ua, api.name)) or self.uas.setdefault(
                (ua, api.name), f"{ua} md/command#{_cli_command(api.svc, api.name)}")
        elif mode == "console" and api.data:
            ua = _S3_CONSOLE
        rec["userIdentity"], rec["eventTime"], rec["sourceIPAddress"] = ident, _ts(t), ip
        rec["userAgent"] = ua
        rec["requestID"] = f"{rng.getrandbits(64):016X}" if api.svc == "s3" else _uuid(rng)
        rec["eventID"] = _uuid(rng)
        if api.echo:
            rec["responseElements"] = tpl["responseElements"] | {"requestId": rec["requestID"]}
        return _denied(rec) if error_rate and rng.random() < error_rate else rec

    def _session(self, a: _Account, t: int, budget: int) -> Iterator[tuple[int, dict]]:
        rng = self.rng
        kind, who, role_name, profile, _ = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
        region = rng.choices(self.spec.regions, self.region_weights)[0]
        n = min(budget, 1 + min(int(rng.expovariate(0.18)), 24))
        if kind == "service":
            yield from self._service(a, t, region, n)
            return
        mode, errors, created, first = "", 0.0, _ts(t), None
        if who:  # a person or CI: long-term access key, console session or assumed role
            user = a.users[who]
            ip, ua, ident = rng.choice(user.ips), rng.choice(user.uas), a.ident_user(user)
            errors = 0.012
            if kind == "console":
                first = self._console_login(a, user, t, ip)
                ident = a.ident_user(user, "ASIA" + _chars(rng, _UPPER, 16), created)
                ua, mode = rng.choice(_CONSOLE_UAS), "console"
            elif kind == "assume":
                role = a.roles[role_name]
                session = who if rng.random() < 0.5 else f"botocore-session-{t}"
                opts = a.assume_role(rng, role, session, t)
                cli = f"{ua} md/command#sts.assume-role" if ua.startswith("aws-cli/2") else ua
                first = _record(ident, created, "sts.amazonaws.com", "AssumeRole", GLOBAL_REGION,
                                ip, cli, a.id, tls=_tls("sts.amazonaws.com"), **opts)
                key = opts["re"]["credentials"]["accessKeyId"]
                ident = a.ident_role(role, session, key, created, mfa=rng.random() < 0.5)
        else:  # a workload: EC2 instance, Lambda function or AWS Config's service role
            role, svc = a.roles[role_name], f"{'ec2' if kind == 'instance' else kind}.amazonaws.com"
            if kind == "instance":
                session, ip = rng.choice(a.res[region]["i"]), rng.choice(a.nat_ips[region])
                ua = rng.choice((_JAVA, _BOTO))
            elif kind == "lambda":
                session, ua = "order-processor", _LAMBDA_UA
                ip = _ip(rng, 18)
            else:
                session, ip, ua, mode = "AWSConfig-Describe", svc, svc, "svc"
            cred = self.creds.get((a.idx, session, region))
            if cred is None or rng.random() < 0.2:  # fresh credentials: the service's AssumeRole
                opts = a.assume_role(rng, role, session, t)
                first = _record({"type": "AWSService", "invokedBy": svc}, created,
                                "sts.amazonaws.com", "AssumeRole", region, svc, svc, a.id,
                                shared=_uuid(rng), **opts)
                cred = (opts["re"]["credentials"]["accessKeyId"], created)
                self.creds[(a.idx, session, region)] = cred
            ident = a.ident_role(role, session, *cred, ec2=kind == "instance",
                                 invoked_by=svc if kind == "config" else None)
        if first is not None:
            yield t, first
            n, t = n - 1, t + rng.randrange(2, 12)
        apis, weights = _PROFILES[profile]
        for api in rng.choices(apis, weights, k=max(n, 0)):
            yield t, self._call(a, api, region, t, ident, ip, ua, mode, errors)
            t += 1 + int(rng.expovariate(0.08))

    def _console_login(self, a: _Account, user: _Principal, t: int, ip: str) -> dict:
        ident = {"type": "IAMUser", "principalId": user.pid, "arn": user.arn,
                 "accountId": a.id, "userName": user.name}
        aed = {"LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode="
                          f"true&state=hashArgsFromTB_us-east-1_{self.rng.getrandbits(64):016x}",
               "MobileVersion": "No", "MFAIdentifier": f"arn:aws:iam::{a.id}:mfa/{user.name}",
               "MFAUsed": "Yes"}
        return _record(ident, _ts(t), "signin.amazonaws.com", "ConsoleLogin", GLOBAL_REGION, ip,
                       _BROWSER, a.id, re={"ConsoleLogin": "Success"}, aed=aed, rid=None,
                       eid=_uuid(self.rng), etype="AwsConsoleSignIn",
                       tls=_tls(_host("signin", GLOBAL_REGION)))

    def _service(self, a: _Account, t: int, region: str, n: int) -> Iterator[tuple[int, dict]]:
        """Events an AWS service logs on its own behalf (AwsServiceEvent): AWS Backup jobs."""
        svc, rng = "backup.amazonaws.com", self.rng
        for _ in range(n):
            sed = {"backupJobId": _uuid(rng).upper(), "backupVaultName": "Default",
                   "resourceArn": f"arn:aws:ec2:{region}:{a.id}:volume/{_hexid(rng, 'vol')}",
                   "resourceType": "EBS", "state": "COMPLETED",
                   "backupSizeInBytes": rng.randrange(10**9, 10**11)}
            yield t, _record({"accountId": a.id, "invokedBy": svc}, _ts(t), svc,
                             "BackupJobCompleted", region, svc, svc, a.id, rid=None,
                             eid=_uuid(rng), etype="AwsServiceEvent", sed=sed)
            t += rng.randrange(1, 90)


# --------------------------------------------------------------------------------------- attacks

_EVIL_IPS = ("198.51.100.200", "198.51.100.163", "198.51.100.231", "198.51.100.147",
             "198.51.100.140", "198.51.100.166", "198.51.100.199")  # no benign user has these
_ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
Call = tuple[int, str, dict]  # delay in seconds, "svc:EventName", `_record` options + overrides


class _Attacks:
    """The planted scenarios: built up front (a few hundred records), merged into the stream."""

    def __init__(self, spec: TrailSpec, accounts: list[_Account]) -> None:
        self.spec, self.rng = spec, random.Random(f"{spec.seed}|attacks")
        self.acct = [accounts[i % len(accounts)] for i in range(3)]
        self.records: list[tuple[int, int, dict]] = []
        self.planted: list[Planted] = []
        start, span = int(spec.start.timestamp()), int(spec.days * 86400)
        self.insight_time = start + span // 2
        for i, scenario in enumerate((
                self.policy_version, self.attach_admin, self.stop_logging, self.s3_exfil,
                self.root_login, self.offensive_ua, self.sg_open, self.passrole_lambda,
                self.bruteforce, self.snapshot_public)):
            scenario(start + int(span * (0.08 + 0.09 * i)) + self.rng.randrange(60, 900))
        self.records.sort(key=lambda x: (x[0], x[1]))

    def _region(self, preferred: str) -> str:
        return preferred if preferred in self.spec.regions else self.spec.regions[-1]

    def _asia(self) -> str:
        return "ASIA" + _chars(self.rng, _UPPER, 16)

    def _run(self, scenario: str, a: _Account, region: str, t: int, actor: tuple[dict, str, str],
             calls: list[Call], description: str) -> None:
        """Record the calls of one actor (ident, ip, ua); a call may override ident/ip/ua/region,
        be `denied`, or be `context` (planted but not a signal, so not in event_ids)."""
        ids = []
        for delay, api, kw in calls:
            t += delay
            svc, name = api.split(":")
            ident, ip = kw.pop("ident", actor[0]), kw.pop("ip", actor[1])
            ua = kw.pop("ua", actor[2])
            context, denied = kw.pop("context", False), kw.pop("denied", False)
            where = kw.pop("region", GLOBAL_REGION if svc in ("iam", "sts", "signin") else region)
            if ua.startswith("aws-cli/2") and "md/command#" not in ua:
                ua += f" md/command#{_cli_command(svc, name)}"
            kw = {"tls": _tls(_host(svc, where)), "rid": _uuid(self.rng),
                  "ro": name.startswith(("Describe", "List", "Get"))} | kw
            kw.setdefault("eid", _uuid(self.rng))
            rec = _record(ident, _ts(t), f"{svc}.amazonaws.com", name, where, ip, ua, a.id, **kw)
            self.records.append((t, len(self.records), _denied(rec) if denied else rec))
            ids += [] if context else [rec["eventID"]]
        arn = actor[0].get("arn") or f"arn:aws:iam::{a.id}:user/{actor[0]['userName']}"
        self.planted.append(Planted(scenario, a.id, region, arn, tuple(ids), description))

    def policy_version(self, t: int) -> None:
        a = self.acct[0]
        pol = f"arn:aws:iam::{a.id}:policy/"
        doc = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*",'
               '"Resource":"*"}]}')
        version = {"versionId": "v4", "isDefaultVersion": True, "createDate": _aws_date(t)}
        self._run("iam_privesc_policy_version", a, GLOBAL_REGION, t,
                  (a.ident_user(a.users["bob"]), _EVIL_IPS[0], _CLI_LINUX), [
                      (0, "iam:CreatePolicyVersion", {"re": {"policyVersion": version}, "rp": {
                          "policyArn": pol + "dev-deploy-policy", "policyDocument": doc,
                          "setAsDefault": True}}),
                      (47, "iam:SetDefaultPolicyVersion", {"rp": {
                          "policyArn": pol + "s3-reports-access", "versionId": "v2"}})],
                  "bob's key, from a new IP, makes an allow-*:* version of dev-deploy-policy the "
                  "default and switches s3-reports-access to another version")

    def attach_admin(self, t: int) -> None:
        a = self.acct[1]
        key = {"userName": "ci-deployer", "accessKeyId": "AKIA" + _chars(self.rng, _UPPER, 16),
               "status": "Active", "createDate": _aws_date(t + 95)}
        self._run("iam_privesc_attach_admin", a, GLOBAL_REGION, t,
                  (a.ident_user(a.users["dev-intern"]), _EVIL_IPS[1], _CLI), [
                      (0, "iam:AttachUserPolicy", {"rp": {"userName": "dev-intern",
                                                          "policyArn": _ADMIN}}),
                      (95, "iam:CreateAccessKey", {"rp": {"userName": "ci-deployer"},
                                                   "re": {"accessKey": key}})],
                  "dev-intern attaches AdministratorAccess to itself, then creates an access key "
                  "for ci-deployer")

    def stop_logging(self, t: int) -> None:
        a = self.acct[2]
        ident = a.ident_role(a.roles["DevOps"], "bob", self._asia(), _ts(t - 400))
        trail = {"name": f"arn:aws:cloudtrail:{GLOBAL_REGION}:{a.id}:trail/account-audit"}
        self._run("cloudtrail_stop_logging", a, GLOBAL_REGION, t,
                  (ident, _EVIL_IPS[2], _CLI_LINUX), [
                      (0, "cloudtrail:StopLogging", {"rp": trail}),
                      (31, "cloudtrail:DeleteTrail", {"rp": trail}),
                      (45, "guardduty:DeleteDetector", {"rp": {"detectorId": a.detector}})],
                  "a DevOps role session stops and deletes the account trail, then deletes the "
                  "GuardDuty detector")

    def s3_exfil(self, t: int) -> None:
        a, region, rng = self.acct[0], self._region("eu-west-1"), self.rng
        ident = a.ident_role(a.roles["DataEngineer"], "carol", self._asia(), _ts(t - 120))
        calls: list[Call] = []
        for i in range(max(150, min(400, self.spec.events // 10))):
            key = f"finance/ledger/2025/{i // 40 + 1:02d}/ledger-{i:05d}.parquet"
            rp, _, aed, res = _s3_object(a, region, rng, key, a.buckets[1],
                                         b_out=rng.randrange(8 << 20, 64 << 20))
            calls.append((rng.randrange(3, 12) if i else 0, "s3:GetObject", {
                "rp": rp, "aed": aed, "res": res, "ro": True, "data": True, "tls": _tls(rp["Host"]),
                "rid": f"{rng.getrandbits(64):016X}", "ua": f"{_CLI_LINUX} md/command#s3.cp"}))
        self._run("s3_exfil_burst", a, region, t, (ident, _EVIL_IPS[3], _CLI_LINUX), calls,
                  f"one DataEngineer session downloads {len(calls)} large objects from "
                  f"{a.buckets[1]} within the hour")

    def root_login(self, t: int) -> None:
        a = self.acct[2]
        root = {"type": "Root", "principalId": a.id, "arn": f"arn:aws:iam::{a.id}:root",
                "accountId": a.id}
        session = root | {"accessKeyId": self._asia(), "sessionContext": {
            "sessionIssuer": {}, "webIdFederationData": {},
            "attributes": {"creationDate": _ts(t), "mfaAuthenticated": "false"}}}
        aed = {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode"
                          "=true", "MobileVersion": "No", "MFAUsed": "No"}
        login = {"re": {"ConsoleLogin": "Success"}, "aed": aed, "rid": None,
                 "etype": "AwsConsoleSignIn"}
        browse = ("GetAccountSummary", "ListAccessKeys", "ListMFADevices", "ListUsers")
        self._run("root_console_login_no_mfa", a, GLOBAL_REGION, t,
                  (root, _EVIL_IPS[4], _BROWSER), [
                      (0, "signin:ConsoleLogin", login),
                      *((40, f"iam:{name}", {"ident": session, "ua": "AWS Internal",
                                             "console": True}) for name in browse)],
                  "root signs in to the console without MFA and browses IAM")

    def offensive_ua(self, t: int) -> None:
        a = self.acct[1]
        pacu_ec2 = {"ua": _PACU, "denied": True, "rp": {"instancesSet": {}, "filterSet": {}}}
        self._run("offensive_user_agent", a, GLOBAL_REGION, t,
                  (a.ident_user(a.users["ci-deployer"]), _EVIL_IPS[5], _KALI), [
                      (0, "sts:GetCallerIdentity", {}), (3, "iam:ListUsers", {}),
                      (4, "iam:ListRoles", {}),
                      (2, "iam:GetAccountAuthorizationDetails", {"denied": True}),
                      (5, "iam:ListAttachedUserPolicies", {"rp": {"userName": "ci-deployer"}}),
                      (3, "s3:ListBuckets", {}), (6, "lambda:ListFunctions20150331", {}),
                      (4, "secretsmanager:ListSecrets", {"denied": True}),
                      *((2, "ec2:DescribeInstances", dict(pacu_ec2)) for _ in range(8)),
                      (3, "ec2:DescribeSnapshots", {"ua": _PACU, "rp": {"ownersSet": {"items": [
                          {"owner": "self"}]}, "filterSet": {}}})],
                  "ci-deployer's key enumerates the account from a Kali host, then with Pacu")
        self.insight_time = t + 40

    def sg_open(self, t: int) -> None:
        a, region = self.acct[2], self._region("us-west-2")
        bob, sg, rid = a.users["bob"], a.res[region]["sg"][1], _uuid(self.rng)
        rp, re_ = _ingress(a, sg, 22, "0.0.0.0/0", self.rng)
        self._run("sg_open_admin_port", a, region, t, (a.ident_user(bob), bob.ips[0], _CLI), [
                      (0, "ec2:AuthorizeSecurityGroupIngress",
                       {"rp": rp, "re": re_ | {"requestId": rid}, "rid": rid})],
                  f"bob opens tcp/22 on {sg} to 0.0.0.0/0")

    def passrole_lambda(self, t: int) -> None:
        a, region, rng = self.acct[0], self._region("eu-west-1"), self.rng
        intern, role, fn = a.users["dev-intern"], a.roles["lambda-admin-role"], "data-sync-helper"
        rp = {"functionName": fn, "runtime": "python3.12", "role": role.arn, "code": {},
              "handler": "lambda_function.lambda_handler", "timeout": 30, "publish": True}
        assume, svc = a.assume_role(rng, role, fn, t + 40), "lambda.amazonaws.com"
        session = a.ident_role(role, fn, assume["re"]["credentials"]["accessKeyId"], _ts(t + 40))
        attach = {"ident": session, "ua": _LAMBDA_UA, "ip": _ip(rng, 54), "rp": {
            "roleName": "ci-runner-role", "policyArn": "arn:aws:iam::aws:policy/IAMFullAccess"}}
        lambda_assumes = assume | {  # context, not signal: Lambda assumes the function's role
            "context": True, "ident": {"type": "AWSService", "invokedBy": svc}, "ip": svc,
            "ua": svc, "region": region, "shared": _uuid(rng), "tls": None}
        self._run("passrole_lambda_privesc", a, region, t,
                  (a.ident_user(intern), intern.ips[0], _CLI), [
                      (0, "lambda:CreateFunction20150331",
                       {"rp": rp, "re": _fn_config(a, region, rng, fn, role.name)}),
                      (40, "sts:AssumeRole", lambda_assumes),
                      (2, "iam:AttachRolePolicy", attach)],
                  "dev-intern creates a function with lambda-admin-role; the function's session "
                  "attaches IAMFullAccess to ci-runner-role (Lambda's AssumeRole is not listed)")

    def bruteforce(self, t: int) -> None:
        a = self.acct[1]
        alice = a.users["alice"]
        failed = {"type": "IAMUser", "principalId": alice.pid, "accountId": a.id,
                  "accessKeyId": "", "userName": alice.name}
        aed = {"LoginTo": "https://console.aws.amazon.com/console/home?state=hashArgs%23",
               "MobileVersion": "No", "MFAUsed": "No"}
        login = {"aed": aed, "rid": None, "etype": "AwsConsoleSignIn"}
        calls: list[Call] = [(self.rng.randrange(8, 35), "signin:ConsoleLogin", login | {
            "re": {"ConsoleLogin": "Failure"}, "error": "Failed authentication"}) for _ in range(8)]
        ok = {k: v for k, v in a.ident_user(alice).items() if k != "accessKeyId"}
        calls.append((21, "signin:ConsoleLogin", login | {"ident": ok,
                                                          "re": {"ConsoleLogin": "Success"}}))
        self._run("console_login_bruteforce", a, GLOBAL_REGION, t, (failed, _EVIL_IPS[6], _BROWSER),
                  calls, "8 failed console logins for alice from one IP, then a success "
                  "without MFA")

    def snapshot_public(self, t: int) -> None:
        a, region = self.acct[2], self._region("eu-west-1")
        bob, rid = a.users["bob"], _uuid(self.rng)
        rp = {"snapshotId": a.res[region]["snap"][0], "attributeType": "CREATE_VOLUME_PERMISSION",
              "createVolumePermission": {"add": {"items": [{"group": "all"}]}}}
        self._run("snapshot_shared_public", a, region, t,
                  (a.ident_user(bob), _EVIL_IPS[0], _CLI_LINUX), [
                      (0, "ec2:ModifySnapshotAttribute", {
                          "rp": rp, "re": {"requestId": rid, "_return": True}, "rid": rid})],
                  f"bob makes {rp['snapshotId']} public (createVolumePermission group all)")


# ---------------------------------------------------------------------------------------- stream


class _Trail:
    """Benign and planted records of a spec, merged in eventTime order."""

    def __init__(self, spec: TrailSpec) -> None:
        if not spec.accounts or not spec.regions or spec.events_per_file < 1:
            raise ValueError("a trail needs accounts, regions and events_per_file >= 1")
        self.spec = spec
        self.regions = tuple(dict.fromkeys((*spec.regions, GLOBAL_REGION)))  # global events
        self.accounts = [_Account(spec.seed, i, a, self.regions)
                         for i, a in enumerate(spec.accounts)]
        self.attacks = _Attacks(spec, self.accounts) if spec.attacks else None

    def records(self) -> Iterator[tuple[int, dict]]:
        planted, i = (self.attacks.records if self.attacks else []), 0
        for t, rec in _Background(self.spec, self.accounts).records():
            while i < len(planted) and planted[i][0] <= t:
                yield planted[i][0], planted[i][2]
                i += 1
            yield t, rec
        yield from ((t, rec) for t, _, rec in planted[i:])


def iter_records(spec: TrailSpec) -> Iterator[dict]:
    """Every log-file record of the trail in eventTime order, without re-deliveries or Insights."""
    return (rec for _, rec in _Trail(spec).records())


# ---------------------------------------------------------------------------------------- writer


def _gzip(data: bytes) -> bytes:
    return zlib.compress(data, 6, wbits=31)  # gzip container with mtime 0: reproducible bytes


@dataclass
class _Chain:
    """One digest chain (account x region): the open digest's window and what it will list."""

    account: str
    region: str
    start: int
    end: int
    files: list[dict] = field(default_factory=list)
    prev: tuple[str, str, str] | None = None  # key, sha256 and signature of the previous digest


Cell = tuple[str, str]  # account, region
Batch = dict[int, dict[Cell, list[tuple[int, bytes]]]]  # delivery window -> cell -> (time, JSON)


class _Writer:
    """Turns the record stream into delivered log files, re-deliveries, digests and sidecars."""

    def __init__(self, spec: TrailSpec, out: Path, regions: tuple[str, ...],
                 key: RSAPrivateKey | None) -> None:
        self.spec, self.out, self.key = spec, out, key
        self.rng = random.Random(f"{spec.seed}|delivery")
        self.dup_rng = random.Random(f"{spec.seed}|duplicates")
        self.dup_budget = int(spec.events * 0.006) + 1 if spec.duplicates else 0
        self.fingerprint = public_key_fingerprint(key.public_key()) if key else UNSIGNED_FINGERPRINT
        self.pending: Batch = {}
        self.redeliver: Batch = {}
        self.summary, self.dirs, self.last_delivery = TrailSummary(), set[Path](), 0
        prefix = spec.prefix.strip("/")
        self.base = f"{prefix}/" * bool(prefix) + "AWSLogs/" + f"{spec.org_id}/" * bool(spec.org_id)
        start = int(spec.start.timestamp())
        self.chains = {(acct, r): _Chain(acct, r, start, start + 3600 + random.Random(
            f"{spec.seed}|chain|{acct}|{r}").randrange(-1800, 1800))
                       for acct in spec.accounts for r in regions}

    def add(self, t: int, rec: dict) -> None:
        window = t // WINDOW
        if self.pending and window > min(self.pending):
            self._flush_before(window)
        late = self.rng.randint(1, 3) if self.rng.random() < 0.01 else 0  # some come a file later
        cell = (rec["recipientAccountId"], rec["awsRegion"])
        self.pending.setdefault(window + late, {}).setdefault(cell, []).append(
            (t, orjson.dumps(rec)))

    def finish(self) -> TrailSummary:
        self._flush_before(None)
        end = int(self.spec.start.timestamp() + self.spec.days * 86400)
        for chain in self.chains.values() if self.spec.digests else ():
            self._advance(chain, max(end, self.last_delivery) + 3600)  # covers every delivery
        return self.summary

    def _flush_before(self, window: int | None) -> None:
        while ready := [w for w in (*self.pending, *self.redeliver)
                        if window is None or w < window]:
            w = min(ready)
            delivered = (w + 1) * WINDOW  # a file is named after the end of its 5-minute window
            for chain in self.chains.values() if self.spec.digests else ():
                self._advance(chain, delivered)
            for cell, recs in sorted(self.pending.pop(w, {}).items()):
                for i in range(0, len(recs), self.spec.events_per_file):
                    part = recs[i:i + self.spec.events_per_file]
                    self._write_log(cell, delivered, part)
                    for item in part:  # CloudTrail re-delivers a few records in a later file
                        if self.dup_budget and self.dup_rng.random() < 0.005:
                            self.dup_budget -= 1
                            later = self.redeliver.setdefault(w + self.dup_rng.randint(1, 6), {})
                            later.setdefault(cell, []).append(item)
            for cell, recs in sorted(self.redeliver.pop(w, {}).items()):
                self._write_log(cell, delivered, recs)
                self.summary.duplicate_records += len(recs)

    def _write(self, key: str, data: bytes) -> Path:
        path = self.out / key
        if path.parent not in self.dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.dirs.add(path.parent)
        path.write_bytes(_gzip(data))
        return path

    def _write_log(self, cell: Cell, delivered: int, recs: list[tuple[int, bytes]]) -> None:
        (acct, region), d = cell, datetime.fromtimestamp(delivered, UTC)
        key = (f"{self.base}{acct}/CloudTrail/{region}/{d:%Y/%m/%d}/{acct}_CloudTrail_{region}_"
               f"{d:%Y%m%dT%H%M}Z_{_chars(self.rng, _ALNUM, 16)}.json.gz")
        data = b'{"Records":[' + b",".join(r for _, r in recs) + b"]}"
        self._write(key, data)
        s = self.summary
        s.log_files, s.events, s.bytes_uncompressed = (
            s.log_files + 1, s.events + len(recs), s.bytes_uncompressed + len(data))
        self.last_delivery = delivered
        if self.spec.digests:
            times = [t for t, _ in recs]
            self.chains[cell].files.append({
                "s3Bucket": self.spec.bucket, "s3Object": key,
                "hashValue": hashlib.sha256(data).hexdigest(), "hashAlgorithm": "SHA-256",
                "newestEventTime": _iso(max(times)), "oldestEventTime": _iso(min(times))})

    def _advance(self, chain: _Chain, until: int) -> None:
        """Write the chain's digests that end at or before `until` (each lists [start, end))."""
        while chain.end <= until:
            self._write_digest(chain)
            chain.start, chain.end, chain.files = chain.end, chain.end + 3600, []

    def _write_digest(self, c: _Chain) -> None:
        spec, end, d = self.spec, _iso(c.end), datetime.fromtimestamp(c.end, UTC)
        key = (f"{self.base}{c.account}/CloudTrail-Digest/{c.region}/{d:%Y/%m/%d}/{c.account}_"
               f"CloudTrail-Digest_{c.region}_{spec.trail_name}_{spec.home_region}_"
               f"{d:%Y%m%dT%H%M%S}Z.json.gz")
        prev_key, prev_hash, prev_sig = c.prev or (None, None, None)
        doc = {"awsAccountId": c.account, "digestStartTime": _iso(c.start), "digestEndTime": end,
               "digestS3Bucket": spec.bucket, "digestS3Object": key,
               "digestPublicKeyFingerprint": self.fingerprint,
               "digestSignatureAlgorithm": "SHA256withRSA",
               "newestEventTime": max((f["newestEventTime"] for f in c.files), default=None),
               "oldestEventTime": min((f["oldestEventTime"] for f in c.files), default=None),
               "previousDigestS3Bucket": spec.bucket if c.prev else None,
               "previousDigestS3Object": prev_key, "previousDigestHashValue": prev_hash,
               "previousDigestHashAlgorithm": "SHA-256" if c.prev else None,
               "previousDigestSignature": prev_sig, "logFiles": c.files}
        data = orjson.dumps(doc).replace(b"/", b"\\/")  # real digests escape slashes
        path = self._write(key, data)
        if self.key is not None:
            sig = sign_digest(self.key, end, spec.bucket, key, data, prev_sig)
            meta = {"signature": sig, "signature-algorithm": "SHA256withRSA"}
            path.with_name(path.name + ".metadata.json").write_text(json.dumps(meta))
        else:  # unsigned trails still chain a signature-shaped (unverifiable) value
            sig = hashlib.sha512(data).hexdigest() * 4
        c.prev = (key, hashlib.sha256(data).hexdigest(), sig)
        self.summary.digest_files += 1

    def write_insight(self, a: _Account, t: int) -> None:
        """An ApiErrorRateInsight start/end pair in one Insight file (digests do not list it)."""
        rng, begin = random.Random(f"{self.spec.seed}|insight"), t - t % 60
        shared, recs = _uuid(rng), []
        for state, when in (("Start", begin), ("End", begin + 300)):
            stats: dict[str, Any] = {"baseline": {"average": 0.0006}, "insight": {"average": 1.6}}
            stats |= {"insightDuration": 5, "baselineDuration": 10079} if state == "End" else {}
            attributions = [{"attribute": k, "insight": [{"value": v, "average": 1.6}],
                             "baseline": []} for k, v in (
                ("userIdentityArn", a.users["ci-deployer"].arn), ("userAgent", _PACU),
                ("errorCode", "Client.UnauthorizedOperation"))]
            details = {"state": state, "eventSource": "ec2.amazonaws.com",
                       "eventName": "DescribeInstances", "insightType": "ApiErrorRateInsight",
                       "errorCode": "Client.UnauthorizedOperation", "insightContext": {
                           "statistics": stats, "attributions": attributions}}
            recs.append({"eventVersion": "1.08", "eventTime": _iso(when),
                         "awsRegion": GLOBAL_REGION, "eventID": _uuid(rng),
                         "eventType": "AwsCloudTrailInsight", "recipientAccountId": a.id,
                         "sharedEventID": shared, "insightDetails": details,
                         "eventCategory": "Insight"})
        d, r = datetime.fromtimestamp((begin // WINDOW + 4) * WINDOW, UTC), GLOBAL_REGION
        self._write(f"{self.base}{a.id}/CloudTrail-Insight/{r}/{d:%Y/%m/%d}/{a.id}_CloudTrail-"
                    f"Insight_{r}_{d:%Y%m%dT%H%M}Z_{_chars(rng, _ALNUM, 16)}.json.gz",
                    orjson.dumps({"Records": recs}))
        self.summary.insight_files += 1


# ------------------------------------------------------------------------------------ public API


def write_trail(spec: TrailSpec, out_dir: Path, *,
                signing_key: RSAPrivateKey | None = None) -> TrailSummary:
    """Write the trail under `out_dir` as its S3 keys; digests are signed when a key is given."""
    trail = _Trail(spec)
    writer, unique = _Writer(spec, Path(out_dir), trail.regions, signing_key), 0
    for t, rec in trail.records():
        writer.add(t, rec)
        unique += 1
    summary = writer.finish()
    if spec.insights:
        when = trail.attacks.insight_time if trail.attacks else int(
            spec.start.timestamp() + spec.days * 43200)
        writer.write_insight(trail.accounts[1 % len(trail.accounts)], when)
    summary.unique_events = unique
    summary.planted = trail.attacks.planted if trail.attacks else []
    return summary


def write_sample_logs(out_dir: Path) -> TrailSummary:
    """The bundled sample: default spec, signed with the public test key, plus public-keys.json."""
    spec, key = TrailSpec(), derive_test_key(7)
    summary = write_trail(spec, out_dir, signing_key=key)
    end = spec.start + timedelta(days=spec.days)
    doc = public_keys_document(key, spec.start - timedelta(days=1), end + timedelta(days=30))
    (Path(out_dir) / "public-keys.json").write_text(json.dumps(doc, indent=4) + "\n")
    return summary


def write_bench_trail(out_dir: Path, n_events: int, *, seed: int = 11,
                      events_per_file: int = 250, digests: bool = False) -> TrailSummary:
    """About `n_events` benign events over a span chosen so log files hold ~events_per_file."""
    accounts, regions = ("111122223333", "444455556666"), ("us-east-1", "eu-west-1", "us-west-2")
    windows = n_events / (len(accounts) * len(regions) * events_per_file * 0.8)
    spec = TrailSpec(seed=seed, days=max(windows * WINDOW / 86400, 1 / 288), accounts=accounts,
                     regions=regions, events=n_events, events_per_file=events_per_file,
                     attacks=False, duplicates=False, insights=False, digests=digests,
                     diurnal=False)
    return write_trail(spec, out_dir)


def main(argv: list[str] | None = None) -> int:
    """`python -m trailscan.synth DIR` writes the bundled sample, `--bench N DIR` a bench trail."""
    parser = argparse.ArgumentParser(prog="python -m trailscan.synth", description=main.__doc__)
    parser.add_argument("--bench", type=int, metavar="N", help="write ~N benign events instead")
    parser.add_argument("--digests", action="store_true", help="with --bench: write digests too")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if args.bench:
        s = write_bench_trail(args.out_dir, args.bench, digests=args.digests)
    else:
        s = write_sample_logs(args.out_dir)
    print(f"{s.log_files} log files, {s.digest_files} digests, {s.insight_files} insight files, "
          f"{s.events} records ({s.unique_events} unique, {s.duplicate_records} re-delivered), "
          f"{s.bytes_uncompressed} bytes uncompressed, {len(s.planted)} planted -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
