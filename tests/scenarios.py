"""Identity scenarios for investigations: STS hand-offs shaped like real CloudTrail records.

A cross-account role chain started by an IAM user's access key, a SAML federation, a GitHub
Actions OIDC federation and an IAM Identity Center sign-in, each with the AssumeRole* event whose
`responseElements.credentials.accessKeyId` is the key the session then signs its calls with.
Plus the records the Athena documentation samples look for (a DeleteBucket, an object whose ARN
ends in example/datafile.txt, an anonymous GetObject).
"""

from __future__ import annotations

from typing import Any

from conftest import make_record

A, B, C = "111122223333", "444455556666", "777788889999"
DAY = "2026-03-03"
USER_ARN = f"arn:aws:iam::{A}:user/mallory-ops"
USER_KEY = "AKIAMALLORYOPS000001"
HOP1_KEY, HOP2_KEY = "ASIACHAINHOP10000001", "ASIACHAINHOP20000002"
HOP1_ARN = f"arn:aws:sts::{B}:assumed-role/CrossAccountAdmin/mallory"
HOP2_ARN = f"arn:aws:sts::{C}:assumed-role/DeployRole/chain-2"
ATTACKER_IP = "203.0.113.66"
XSS_UA = "<script>document.title='pwned'</script>aws-cli/2.15.0"
SAML_KEY, OIDC_KEY, SSO_KEY = "ASIASAMLSESSION00001", "ASIAOIDCSESSION00001", "ASIASSOSESSION000001"
SAML_ARN = f"arn:aws:sts::{B}:assumed-role/SAMLAnalyst/dana@example.com"
OIDC_ARN = f"arn:aws:sts::{C}:assumed-role/GitHubDeploy/GitHubActions"
SSO_ROLE = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
SSO_ARN = f"arn:aws:sts::{C}:assumed-role/{SSO_ROLE}/carol@example.com"
ORPHAN_KEY = "ASIAORPHANSESSION001"
SSO_PROVIDER = f"arn:aws:iam::{C}:saml-provider/AWSSSO_8f3c2a1b9d7e6f50_DO_NOT_DELETE"


def _t(hms: str) -> str:
    return f"{DAY}T{hms}Z"


def _user() -> dict[str, Any]:
    return {"type": "IAMUser", "principalId": "AIDAMALLORYOPS0000001", "arn": USER_ARN,
            "accountId": A, "accessKeyId": USER_KEY, "userName": "mallory-ops"}


def _foreign(account: str, principal_id: str) -> dict[str, Any]:
    """How the resource owner's copy of a cross-account call names the caller."""
    return {"type": "AWSAccount", "principalId": principal_id, "accountId": account}


def _session(acct: str, role: str, session: str, key: str, created: str,
             source_identity: str | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {
        "sessionIssuer": {"type": "Role", "principalId": f"AROA{role.upper()[:13]:X<13}0001",
                          "arn": f"arn:aws:iam::{acct}:role/{role}", "accountId": acct,
                          "userName": role},
        "webIdFederationData": {},
        "attributes": {"creationDate": created, "mfaAuthenticated": "false"}}
    if source_identity:
        ctx["sourceIdentity"] = source_identity
    return {"type": "AssumedRole", "principalId": f"AROA{role.upper()[:13]:X<13}0001:{session}",
            "arn": f"arn:aws:sts::{acct}:assumed-role/{role}/{session}", "accountId": acct,
            "accessKeyId": key, "sessionContext": ctx}


def _credentials(key: str, when: str) -> dict[str, Any]:
    return {"accessKeyId": key, "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLETOKEN" + key,
            "expiration": "Mar 3, 2026, 11:00:00 PM"}


def _sts(ident: dict[str, Any], when: str, name: str, account: str, params: dict[str, Any],
         response: dict[str, Any], ip: str, ua: str, role_arn: str, **extra: Any) -> dict:
    return make_record(
        userIdentity=ident, eventTime=when, eventSource="sts.amazonaws.com", eventName=name,
        awsRegion="us-east-1", sourceIPAddress=ip, userAgent=ua, requestParameters=params,
        responseElements=response, additionalEventData=None, readOnly=True,
        resources=[{"ARN": role_arn, "accountId": role_arn.split(":")[4],
                    "type": "AWS::IAM::Role"}],
        eventType="AwsApiCall", managementEvent=True, recipientAccountId=account,
        eventCategory="Management",
        tlsDetails={"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                    "clientProvidedHostHeader": "sts.amazonaws.com"}, **extra)


def _call(ident: dict[str, Any], when: str, source: str, name: str, account: str, ip: str,
          ua: str, params: dict[str, Any] | None = None, resources: list | None = None,
          **extra: Any) -> dict:
    return make_record(
        userIdentity=ident, eventTime=when, eventSource=source, eventName=name,
        awsRegion=extra.pop("region", "eu-west-1"), sourceIPAddress=ip, userAgent=ua,
        requestParameters=params, responseElements=None, additionalEventData=None,
        readOnly=name.startswith(("List", "Get", "Describe")), resources=resources or [],
        eventType="AwsApiCall", managementEvent=True, recipientAccountId=account,
        eventCategory="Management", **extra)


def chain_records() -> list[dict]:
    """IAM user (A) -> CrossAccountAdmin (B) -> DeployRole (C), with activity at each hop."""
    ua = "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 md/command#sts.assume-role"
    role1 = f"arn:aws:iam::{B}:role/CrossAccountAdmin"
    role2 = f"arn:aws:iam::{C}:role/DeployRole"
    hop1 = {"roleArn": role1, "roleSessionName": "mallory", "sourceIdentity": "mallory@example.com",
            "durationSeconds": 3600}
    hop1_re = {"credentials": _credentials(HOP1_KEY, _t("10:00:00")),
               "assumedRoleUser": {"assumedRoleId": "AROACROSSACCOUNTA0001:mallory",
                                   "arn": HOP1_ARN}, "sourceIdentity": "mallory@example.com"}
    shared = "5f0e1d2c-3b4a-4958-8776-a5b4c3d2e1f0"
    s1 = _session(B, "CrossAccountAdmin", "mallory", HOP1_KEY, _t("10:00:00"),
                  "mallory@example.com")
    hop2 = {"roleArn": role2, "roleSessionName": "chain-2", "durationSeconds": 3600}
    hop2_re = {"credentials": _credentials(HOP2_KEY, _t("10:05:00")),
               "assumedRoleUser": {"assumedRoleId": "AROADEPLOYROLEXXX0001:chain-2",
                                   "arn": HOP2_ARN}, "sourceIdentity": "mallory@example.com"}
    s2 = _session(C, "DeployRole", "chain-2", HOP2_KEY, _t("10:05:00"), "mallory@example.com")
    return [
        _call(_user(), _t("09:58:00"), "sts.amazonaws.com", "GetCallerIdentity", A, ATTACKER_IP,
              ua, region="us-east-1"),
        # A cross-account AssumeRole is logged in the role's account (where the caller is only
        # an AWSAccount) and in the caller's account (full identity). The role owner's copy
        # comes first here so that attribution has to prefer the other one.
        _sts(_foreign(A, "AIDAMALLORYOPS0000001"), _t("10:00:00"), "AssumeRole", B, hop1,
             hop1_re, ATTACKER_IP, ua, role1, sharedEventID=shared),
        _sts(_user(), _t("10:00:00"), "AssumeRole", A, hop1, hop1_re, ATTACKER_IP, ua, role1,
             sharedEventID=shared),
        _call(s1, _t("10:01:00"), "s3.amazonaws.com", "ListBuckets", B, ATTACKER_IP, ua),
        _call(s1, _t("10:02:00"), "iam.amazonaws.com", "ListRoles", B, ATTACKER_IP, ua,
              region="us-east-1"),
        _sts(_foreign(B, "AROACROSSACCOUNTA0001:mallory"), _t("10:05:00"), "AssumeRole", C,
             hop2, hop2_re, ATTACKER_IP, ua, role2),
        _sts(s1, _t("10:05:00"), "AssumeRole", B, hop2, hop2_re, ATTACKER_IP, ua, role2),
        _call(s2, _t("10:06:00"), "s3.amazonaws.com", "GetBucketPolicy", C, ATTACKER_IP, XSS_UA,
              {"bucketName": "acme-prod-secrets"},
              [{"ARN": "arn:aws:s3:::acme-prod-secrets", "accountId": C,
                "type": "AWS::S3::Bucket"}]),
        _call(s2, _t("10:07:00"), "s3.amazonaws.com", "PutBucketPolicy", C, ATTACKER_IP, XSS_UA,
              {"bucketName": "acme-prod-secrets", "bucketPolicy": {"Statement": []}},
              [{"ARN": "arn:aws:s3:::acme-prod-secrets", "accountId": C,
                "type": "AWS::S3::Bucket"}]),
        _call(s2, _t("10:08:00"), "iam.amazonaws.com", "CreateUser", C, ATTACKER_IP, XSS_UA,
              {"userName": "backdoor"}, region="us-east-1", errorCode="AccessDenied",
              errorMessage="User: " + HOP2_ARN + " is not authorized to perform: "
                                                 "iam:CreateUser"),
    ]


def federation_records() -> list[dict]:
    """SAML (Shibboleth), OIDC (GitHub Actions) and IAM Identity Center sessions."""
    saml_role = f"arn:aws:iam::{B}:role/SAMLAnalyst"
    saml_ident = {"type": "SAMLUser", "principalId": "Shib3xampleIssuerHash=:dana@example.com",
                  "userName": "dana@example.com", "identityProvider": "Shib3xampleIssuerHash="}
    saml = _sts(saml_ident, _t("11:00:00"), "AssumeRoleWithSAML", B, {
        "sAMLAssertionID": "_c0a8f2e1d3b4", "roleSessionName": "dana@example.com",
        "durationSeconds": 3600, "roleArn": saml_role,
        "principalArn": f"arn:aws:iam::{B}:saml-provider/Shibboleth"}, {
        "subjectType": "persistent", "issuer": "https://idp.example.com/idp/shibboleth",
        "credentials": _credentials(SAML_KEY, _t("11:00:00")),
        "nameQualifier": "Shib3xampleIssuerHash=",
        "assumedRoleUser": {"assumedRoleId": "AROASAMLANALYSTX0001:dana@example.com",
                            "arn": SAML_ARN},
        "subject": "dana@example.com", "audience": "https://signin.aws.amazon.com/saml"},
        "198.51.100.44", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", saml_role)
    oidc_role = f"arn:aws:iam::{C}:role/GitHubDeploy"
    sub = "repo:acme/payments:ref:refs/heads/main"
    oidc_ident = {"type": "WebIdentityUser",
                  "principalId": f"arn:aws:iam::{C}:oidc-provider/token.actions."
                                 f"githubusercontent.com:sts.amazonaws.com:{sub}",
                  "userName": sub, "identityProvider": f"arn:aws:iam::{C}:oidc-provider/"
                                                       "token.actions.githubusercontent.com"}
    oidc = _sts(oidc_ident, _t("12:00:00"), "AssumeRoleWithWebIdentity", C, {
        "roleArn": oidc_role, "roleSessionName": "GitHubActions", "durationSeconds": 3600}, {
        "credentials": _credentials(OIDC_KEY, _t("12:00:00")),
        "subjectFromWebIdentityToken": sub,
        "assumedRoleUser": {"assumedRoleId": "AROAGITHUBDEPLOY0001:GitHubActions",
                            "arn": OIDC_ARN},
        "provider": f"arn:aws:iam::{C}:oidc-provider/token.actions.githubusercontent.com",
        "audience": "sts.amazonaws.com"}, "20.42.7.9", "aws-sdk-js/3.540.0", oidc_role)
    sso_role = f"arn:aws:iam::{C}:role/aws-reserved/sso.amazonaws.com/eu-west-1/{SSO_ROLE}"
    sso_ident = {"type": "SAMLUser", "principalId": "q8Bx2ssoIssuerHash=:carol@example.com",
                 "userName": "carol@example.com", "identityProvider": "q8Bx2ssoIssuerHash="}
    portal = {"type": "Unknown", "principalId": "94482488-3041-7026-18f3-be45837cd0e4",
              "accountId": A, "userName": "carol@example.com",
              "onBehalfOf": {"userId": "94482488-3041-7026-18f3-be45837cd0e4",
                             "identityStoreArn": "arn:aws:identitystore::111122223333:"
                                                 "identitystore/d-9067230d7a"}}
    get_creds = make_record(
        userIdentity=portal, eventTime=_t("12:59:58"), eventSource="sso.amazonaws.com",
        eventName="GetRoleCredentials", awsRegion="eu-west-1", sourceIPAddress="192.0.2.77",
        userAgent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)",
        requestParameters={"roleName": "AdministratorAccess", "accountId": C},
        responseElements=None, additionalEventData=None, readOnly=True, resources=[],
        eventType="AwsServiceEvent", managementEvent=True, recipientAccountId=A,
        eventCategory="Management")
    sso = _sts(sso_ident, _t("13:00:00"), "AssumeRoleWithSAML", C, {
        "sAMLAssertionID": "_sso5e2c9a", "roleSessionName": "carol@example.com",
        "durationSeconds": 3600, "roleArn": sso_role, "principalArn": SSO_PROVIDER}, {
        "subjectType": "persistent", "issuer": "https://portal.sso.eu-west-1.amazonaws.com/saml/"
                                               "assertion/MDk3MjAwNTg5MjY3X2lucy1mMmI1",
        "credentials": _credentials(SSO_KEY, _t("13:00:00")),
        "nameQualifier": "q8Bx2ssoIssuerHash=",
        "assumedRoleUser": {"assumedRoleId": "AROASSOADMINXXXX0001:carol@example.com",
                            "arn": SSO_ARN},
        "subject": "carol@example.com", "audience": "https://signin.aws.amazon.com/saml"},
        "192.0.2.77", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)", sso_role)
    return [
        saml, _call(_session(B, "SAMLAnalyst", "dana@example.com", SAML_KEY, _t("11:00:00")),
                    _t("11:03:00"), "athena.amazonaws.com", "StartQueryExecution", B,
                    "198.51.100.44", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
        oidc, _call(_session(C, "GitHubDeploy", "GitHubActions", OIDC_KEY, _t("12:00:00")),
                    _t("12:01:00"), "lambda.amazonaws.com", "UpdateFunctionCode20150331v2", C,
                    "20.42.7.9", "aws-sdk-js/3.540.0"),
        get_creds, sso,
        # A session whose AssumeRole is not in the lake: only its sourceIdentity says who.
        _call(_session(B, "BreakGlass", "eve", ORPHAN_KEY, _t("08:00:00"), "eve@example.com"),
              _t("13:30:00"), "iam.amazonaws.com", "ListUsers", B, "198.51.100.9",
              "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64", region="us-east-1"),
        _call(_session(C, SSO_ROLE, "carol@example.com", SSO_KEY, _t("13:00:00")),
              _t("13:02:00"), "ec2.amazonaws.com", "DescribeInstances", C, "192.0.2.77",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)"),
    ]


def athena_doc_records() -> list[dict]:
    """What the Athena documentation's sample queries look for."""
    return [
        make_record(eventTime=_t("14:00:00"), eventName="GetObject",
                    requestParameters={"bucketName": "example", "key": "datafile.txt"},
                    resources=[{"type": "AWS::S3::Object",
                                "ARN": "arn:aws:s3:::example/datafile.txt"},
                               {"accountId": A, "type": "AWS::S3::Bucket",
                                "ARN": "arn:aws:s3:::example"}], recipientAccountId=A),
        make_record(eventTime=_t("14:10:00"), eventName="DeleteBucket",
                    userIdentity=_user() | {"accessKeyId": USER_KEY},
                    requestParameters={"bucketName": "old-logs-bucket"}, readOnly=False,
                    managementEvent=True, eventCategory="Management",
                    resources=[{"accountId": A, "type": "AWS::S3::Bucket",
                                "ARN": "arn:aws:s3:::old-logs-bucket"}], recipientAccountId=A),
        make_record(eventTime=_t("14:20:00"), eventName="GetObject",
                    userIdentity={"type": "AWSAccount", "principalId": "",
                                  "accountId": "ANONYMOUS_PRINCIPAL"},
                    sourceIPAddress="192.0.2.200", userAgent="curl/8.5.0",
                    requestParameters={"bucketName": "public-site-assets",
                                       "key": "index.html"},
                    resources=[{"type": "AWS::S3::Object",
                                "ARN": "arn:aws:s3:::public-site-assets/index.html"}],
                    recipientAccountId=A),
    ]


def s3_guide_records() -> list[dict]:
    """Dated like the S3 User Guide's Athena examples (2019-02-19, 2019-07-05)."""
    def s3(when: str, name: str, key: str, **extra: Any) -> dict:
        aed = {"SignatureVersion": extra.pop("sig", "SigV4"), "bytesTransferredIn": 0,
               "bytesTransferredOut": 512, "x-amz-id-2": "abc/def="}
        return make_record(eventTime=when, eventName=name, additionalEventData=aed,
                           requestParameters={"bucketName": "myawsexamplebucket1", "key": key},
                           resources=[{"type": "AWS::S3::Object",
                                       "ARN": f"arn:aws:s3:::myawsexamplebucket1/{key}"}],
                           **extra)
    legacy = _user() | {"arn": f"arn:aws:iam::{A}:user/legacy-app", "userName": "legacy-app"}
    anonymous = {"type": "AWSAccount", "principalId": "", "accountId": "ANONYMOUS_PRINCIPAL"}
    return [
        s3("2019-02-19T10:00:00Z", "GetObject", "old/a.txt", sig="SigV2", userIdentity=legacy,
           userAgent="aws-sdk-java/1.4.2 Linux/2.6"),
        s3("2019-02-19T10:05:00Z", "GetObject", "old/b.txt"),
        s3("2019-07-05T12:00:00Z", "PutObject", "data/report.csv", readOnly=False),
        s3("2019-07-05T13:00:00Z", "GetObject", "data/report.csv"),
        s3("2019-07-05T14:00:00Z", "GetObject", "site/index.html", userIdentity=anonymous,
           sourceIPAddress="192.0.2.200", userAgent="curl/8.5.0"),
        s3("2019-07-07T09:00:00Z", "PutObject", "data/later.csv", readOnly=False),
    ]


def all_records() -> list[dict]:
    return chain_records() + federation_records() + athena_doc_records()
