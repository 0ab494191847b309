"""records.py and schema.py: bytes in, typed Arrow rows (or reasons) out; no lake involved."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import zlib
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from conftest import encode, make_insight, make_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailscan import records, schema
from trailscan.errors import BadInput, NotEvents

# Top-level fields CloudTrail documents (eventVersion 1.11), in CloudTrail's own spelling.
DOCUMENTED_FIELDS = [
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
    "responseElements", "additionalEventData", "requestID", "eventID", "eventType", "apiVersion",
    "managementEvent", "readOnly", "resources", "recipientAccountId", "serviceEventDetails",
    "sharedEventID", "vpcEndpointId", "vpcEndpointAccountId", "eventCategory", "addendum",
    "sessionCredentialFromConsole", "edgeDeviceDetails", "tlsDetails", "insightDetails",
    "eventContext",
]
VARIANT_FIELDS = ["requestParameters", "responseElements", "additionalEventData",
                  "serviceEventDetails", "insightDetails", "addendum", "edgeDeviceDetails",
                  "eventContext"]


def parse_records(recs: list[Any], fmt: str = "records", source: str = "mem://x") -> records.Parsed:
    return records.parse(encode(recs, fmt), source)


def rows_of(parsed: records.Parsed) -> list[dict[str, Any]]:
    assert parsed.table is not None
    return parsed.table.to_pylist()


def one_row(record: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_records([record])
    assert parsed.rejected == [], parsed.rejected
    [row] = rows_of(parsed)
    return row


def reasons(parsed: records.Parsed) -> list[str]:
    return [r.reason for r in parsed.rejected]


# --- schema ----------------------------------------------------------------------------------


def test_every_documented_field_is_its_own_column_with_cloudtrails_name():
    names = schema.arrow_schema().names
    for field in DOCUMENTED_FIELDS:
        assert field in names
    assert schema.cloudtrail_columns() == [n for n in names if n in schema.cloudtrail_columns()]
    assert names[-4:] == ["unknown_fields", "source_object", "integrity_status",
                          "covering_digest"]


def test_column_types_identity_resources_tls_are_structs_time_is_utc_variants_are_text():
    s = schema.arrow_schema()
    assert s.field("eventTime").type == pa.timestamp("us", tz="UTC")
    assert s.field("readOnly").type == pa.bool_()
    assert s.field("managementEvent").type == pa.bool_()
    for name in VARIANT_FIELDS:
        assert s.field(name).type == pa.string(), name
    identity = s.field("userIdentity").type
    assert pa.types.is_struct(identity)
    assert {identity.field(i).name for i in range(identity.num_fields)} >= {
        "type", "principalId", "arn", "accountId", "accessKeyId", "userName", "invokedBy",
        "identityProvider", "credentialId", "onBehalfOf", "sessionContext"}
    session = identity.field("sessionContext").type
    assert {session.field(i).name for i in range(session.num_fields)} >= {
        "attributes", "sessionIssuer", "webIdFederationData", "sourceIdentity",
        "ec2RoleDelivery", "assumedRoot"}
    issuer = session.field("sessionIssuer").type
    assert [issuer.field(i).name for i in range(issuer.num_fields)] == [
        "type", "principalId", "arn", "accountId", "userName"]
    resources = s.field("resources").type
    assert pa.types.is_list(resources) and pa.types.is_struct(resources.value_type)
    assert {resources.value_type.field(i).name for i in range(resources.value_type.num_fields)
            } >= {"ARN", "accountId", "type"}
    tls = s.field("tlsDetails").type
    assert [tls.field(i).name for i in range(tls.num_fields)] == [
        "tlsVersion", "cipherSuite", "clientProvidedHostHeader"]


# --- decompression ---------------------------------------------------------------------------


def test_decompress_passes_plain_bytes_through_and_inflates_gzip_by_magic():
    text = encode([make_record()])
    assert records.decompress(text) == text
    assert records.decompress(gzip.compress(text)) == text


def test_decompress_joins_concatenated_gzip_members():
    text = encode([make_record(), make_record()])
    cut = len(text) // 3
    data = gzip.compress(text[:cut]) + gzip.compress(text[cut:])
    assert records.decompress(data) == text


def test_decompress_limit_is_exact_and_applies_to_output_size():
    text = b"x" * 10_000
    data = gzip.compress(text)
    assert records.decompress(data, limit=10_000) == text
    with pytest.raises(BadInput, match="exceeds the limit of 9999 bytes"):
        records.decompress(data, limit=9_999)
    # Plain files obey the same limit.
    assert records.decompress(text, limit=10_000) == text
    with pytest.raises(BadInput, match="larger than the limit of 9999 bytes"):
        records.decompress(text, limit=9_999)


def test_decompress_limit_counts_all_members_together():
    data = gzip.compress(b"a" * 600) + gzip.compress(b"b" * 600)
    assert len(records.decompress(data, limit=1200)) == 1200
    with pytest.raises(BadInput, match="exceeds the limit"):
        records.decompress(data, limit=1000)


@pytest.mark.parametrize(("mangle", "expected"), [
    (lambda d: d[: len(d) // 2], "truncated gzip stream"),
    (lambda d: d[:-4], "truncated gzip stream"),
    (lambda d: d + b"GARBAGE!", "8 bytes of trailing data after the gzip stream"),
    (lambda d: d[:-8] + bytes([d[-8] ^ 0xFF]) + d[-7:], "corrupt gzip data"),  # bad CRC
    (lambda d: d[:10] + b"\xff" * 20 + d[30:], "corrupt gzip data"),
], ids=["half", "no-trailer", "trailing-garbage", "bad-crc", "bad-deflate"])
def test_decompress_damaged_gzip_gives_a_reason(mangle, expected):
    data = gzip.compress(encode([make_record() for _ in range(20)]))
    with pytest.raises(BadInput, match=expected):
        records.decompress(mangle(data))


# --- containers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "container"), [
    ("records", "records"), ("array", "array"), ("ndjson", "ndjson"),
    ("lookup", "lookup-events"), ("lookup-lines", "ndjson"),
])
def test_every_container_yields_the_same_rows(fmt, container):
    recs = [make_record(eventName=f"Op{i}") for i in range(3)]
    parsed = parse_records(recs, fmt)
    assert parsed.container == container
    assert parsed.events_read == 3
    assert parsed.rejected == []
    rows = rows_of(parsed)
    assert [r["eventID"] for r in rows] == [r["eventID"] for r in recs]
    assert [r["eventName"] for r in rows] == ["Op0", "Op1", "Op2"]
    assert rows[1]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == (
        "arn:aws:iam::111122223333:role/Admin")
    assert json.loads(rows[2]["requestParameters"]) == recs[2]["requestParameters"]


def test_single_lookup_events_item_and_single_record_objects():
    rec = make_record()
    item = json.loads(encode([rec], "lookup-lines"))
    parsed = records.parse(json.dumps(item).encode(), "x")
    assert parsed.container == "lookup-events"
    assert rows_of(parsed)[0]["eventID"] == rec["eventID"]
    parsed = records.parse(json.dumps(rec).encode(), "x")
    assert parsed.container == "record"
    assert rows_of(parsed)[0]["eventID"] == rec["eventID"]


def test_ndjson_lines_may_be_whole_envelopes():
    a, b, c = make_record(), make_record(), make_record()
    text = (json.dumps({"Records": [a, b]}) + "\n\n" + json.dumps(c) + "\n").encode()
    parsed = records.parse(text, "x")
    assert parsed.container == "ndjson"
    assert [r["eventID"] for r in rows_of(parsed)] == [a["eventID"], b["eventID"], c["eventID"]]


def test_ndjson_bad_line_is_rejected_with_its_line_number_and_the_rest_kept():
    a, b = make_record(), make_record()
    text = (json.dumps(a) + "\n{not json\n" + json.dumps(b) + "\n").encode()
    parsed = records.parse(text, "x")
    assert [r["eventID"] for r in rows_of(parsed)] == [a["eventID"], b["eventID"]]
    assert parsed.events_read == 3
    [bad] = parsed.rejected
    assert bad.reason.startswith("line 2: invalid JSON")
    assert bad.raw == "{not json"


def test_lookup_events_with_unparseable_cloudtrail_event_keeps_the_others():
    good = make_record()
    doc = {"Events": [{"EventId": "x", "CloudTrailEvent": "{truncated"},
                      {"EventId": good["eventID"], "CloudTrailEvent": json.dumps(good)}]}
    parsed = records.parse(json.dumps(doc).encode(), "x")
    assert parsed.container == "lookup-events"
    assert [r["eventID"] for r in rows_of(parsed)] == [good["eventID"]]
    [bad] = parsed.rejected
    assert bad.index == 0
    assert bad.reason.startswith("CloudTrailEvent: invalid JSON")
    assert bad.raw == "{truncated"


def test_digest_content_is_recognised_not_read():
    digest = {"awsAccountId": "111122223333", "digestStartTime": "2024-03-01T00:00:00Z",
              "digestEndTime": "2024-03-01T01:00:00Z", "logFiles": [],
              "digestSignatureAlgorithm": "SHA256withRSA"}
    with pytest.raises(NotEvents):
        records.parse(gzip.compress(json.dumps(digest).encode()), "x")


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "empty file"),
    (b"  \n\t\n", "empty file"),
    (gzip.compress(b""), "empty file"),
    (b'{"Records": [', "invalid JSON"),
    (b'{"Records": {"a": 1}}', "JSON is not CloudTrail (Records is not an array)"),
    (b'{"Type": "Notification", "Message": "x"}', "JSON is not CloudTrail"),
    (b"42", "JSON is not CloudTrail (top level is int)"),
    (b'{"Events": "nope"}', "Events is not an array"),
])
def test_whole_file_problems_raise_bad_input_with_a_reason(data, expected):
    with pytest.raises(BadInput) as info:
        records.parse(data, "x")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_utf8_names_the_byte_offset():
    data = b'{"Records": [{"eventName": "caf\xe9"}]}'
    offset = data.index(b"\xe9")
    with pytest.raises(BadInput, match=f"invalid UTF-8 at byte {offset}"):
        records.parse(data, "x")


def test_utf8_bom_and_utf16_are_read():
    rec = make_record(eventName="Überprüfen")
    for data in (b"\xef\xbb\xbf" + encode([rec]), json.dumps({"Records": [rec]}).encode("utf-16")):
        assert rows_of(records.parse(data, "x"))[0]["eventName"] == "Überprüfen"


def test_sha256_and_size_are_of_the_uncompressed_bytes():
    text = encode([make_record()])
    parsed = records.parse(gzip.compress(text), "x")
    assert parsed.sha256 == hashlib.sha256(text).hexdigest()
    assert parsed.size == len(text)


# --- values ----------------------------------------------------------------------------------


def test_typed_values_and_provenance():
    rec = make_record(eventTime="2024-03-01T23:59:59Z", readOnly=False, errorCode="AccessDenied")
    row = one_row(rec)
    assert row["eventTime"] == datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)
    assert row["readOnly"] is False
    assert row["managementEvent"] is False
    assert row["errorCode"] == "AccessDenied"
    assert row["userIdentity"]["arn"] == rec["userIdentity"]["arn"]
    assert row["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] == "true"
    assert row["userIdentity"]["userName"] is None
    assert row["resources"][1] == {"ARN": "arn:aws:s3:::audit-bucket", "accountId": "111122223333",
                                   "type": "AWS::S3::Bucket", "ARNPrefix": None}
    assert row["tlsDetails"]["cipherSuite"] == "TLS_AES_128_GCM_SHA256"
    assert row["responseElements"] is None
    assert row["source_object"] == "mem://x"
    assert row["integrity_status"] == "unchecked"
    assert row["covering_digest"] is None
    assert row["unknown_fields"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-01T12:00:00Z", datetime(2024, 3, 1, 12, tzinfo=UTC)),
    ("2024-03-01T12:00:00.250Z", datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ("2024-03-01T01:30:00+02:00", datetime(2024, 2, 29, 23, 30, tzinfo=UTC)),
])
def test_event_time_is_converted_to_utc(text, expected):
    assert one_row(make_record(eventTime=text))["eventTime"] == expected


def test_variant_objects_round_trip_exactly():
    weird = {
        "nested": {"deeper": [1, {"x": [None, True, False]}], "empty": {}, "list": []},
        "unicode": "Grüße ✓ 日本語 \u0000 \"quoted\" \\ back",
        "emoji": "🦆",
        "floats": [0.1, -2.5e-308, 1.7976931348623157e308, 3.0, 1e16, 123456.789],
        "ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1],
        "key with spaces and ünïcode": "v",
    }
    rec = make_record(
        requestParameters=weird,
        responseElements={"credentials": {"expiration": "Mar 1, 2024, 1:00:00 PM"}},
        additionalEventData={"MFAUsed": "Yes", "LoginTo": "https://console.aws.amazon.com"},
        serviceEventDetails={"snapshotId": "snap-1", "count": 3},
        addendum={"reason": "DELIVERY_DELAY", "updatedFields": "", "originalEventID": "abc"},
        edgeDeviceDetails={"type": "outposts", "deviceID": "op-1"},
        eventContext={"tags": [1, 2]},
    )
    row = one_row(rec)
    for name in VARIANT_FIELDS:
        if name in rec:
            assert isinstance(row[name], str)
            assert json.loads(row[name]) == rec[name], name
    floats = json.loads(row["requestParameters"])["floats"]
    assert all(type(f) is float for f in floats)
    assert all(type(i) is int for i in json.loads(row["requestParameters"])["ints"])


def test_variant_scalars_and_arrays_round_trip():
    for value in ("just a string", 42, 1.5, True, [1, "two", {"three": 3}], {}):
        row = one_row(make_record(requestParameters=value, responseElements=value))
        assert json.loads(row["requestParameters"]) == value
        assert json.loads(row["responseElements"]) == value


def test_integers_beyond_64_bits_are_preserved_exactly():
    """JSON has no integer limit; `json.loads(column)` must give back the same int, not a float."""
    big = {"above_u64": 2**64, "huge": 2**70 + 1, "very_negative": -(2**65) - 3,
           "nested": [{"n": 123456789012345678901234567890}]}
    rec = make_record(requestParameters=big, additionalEventData={"size": 2**64 + 7})
    row = one_row(rec)
    back = json.loads(row["requestParameters"])
    assert back == big
    assert type(back["huge"]) is int
    assert json.loads(row["additionalEventData"]) == {"size": 2**64 + 7}


def test_integers_beyond_64_bits_in_lookup_events_payload_are_preserved():
    rec = make_record(requestParameters={"n": 2**70 + 1})
    parsed = parse_records([rec], "lookup")
    back = json.loads(rows_of(parsed)[0]["requestParameters"])
    assert back == {"n": 2**70 + 1}
    assert type(back["n"]) is int


_json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(value=st.dictionaries(st.text(max_size=8), _json_values, max_size=5))
def test_request_parameters_round_trip_property(value):
    row = one_row(make_record(requestParameters=value))
    back = json.loads(row["requestParameters"])
    assert back == value
    # Same types too: 1 must not come back as 1.0 (and vice versa).
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)


def test_float_values_keep_their_exact_value():
    values = [0.1, 1 / 3, math.pi, 5e-324, 2.0**-1074, 9007199254740993.0]
    row = one_row(make_record(requestParameters={"v": values}))
    assert json.loads(row["requestParameters"])["v"] == values


# --- unknown fields --------------------------------------------------------------------------


def test_unknown_fields_are_kept_by_path():
    rec = make_record(
        brandNewTopLevel={"a": [1, 2]},
        anotherOne="x",
        userIdentity={
            "type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/R/s",
            "futureIdentityField": "f1",
            "sessionContext": {
                "newSessionThing": 7,
                "sessionIssuer": {"type": "Role", "arn": "arn:aws:iam::111122223333:role/R",
                                  "issuerExtra": True},
                "attributes": {"creationDate": "2024-03-01T00:00:00Z", "attrExtra": "y"},
            },
        },
        resources=[{"ARN": "arn:1"}, {"ARN": "arn:2", "resourceExtra": {"k": "v"}}],
        tlsDetails={"tlsVersion": "TLSv1.2", "keyExchange": "x25519"},
    )
    row = one_row(rec)
    unknown = json.loads(row["unknown_fields"])
    assert unknown == {
        "brandNewTopLevel": {"a": [1, 2]},
        "anotherOne": "x",
        "userIdentity": {
            "futureIdentityField": "f1",
            "sessionContext": {"newSessionThing": 7,
                               "sessionIssuer": {"issuerExtra": True},
                               "attributes": {"attrExtra": "y"}},
        },
        "resources": {"1": {"resourceExtra": {"k": "v"}}},
        "tlsDetails": {"keyExchange": "x25519"},
    }
    # The known parts are still in their typed columns.
    assert row["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == (
        "arn:aws:iam::111122223333:role/R")
    assert [r["ARN"] for r in row["resources"]] == ["arn:1", "arn:2"]
    assert row["tlsDetails"]["tlsVersion"] == "TLSv1.2"


def test_unknown_fields_keep_the_input_key_order():
    """Same input, same text: the order must not depend on Python's per-process hash seed."""
    names = ["zeta", "alpha", "mu", "beta", "omega", "kappa", "delta"]
    rec = make_record()
    for i, name in enumerate(names):
        rec[name] = i
    rec["userIdentity"] = {"type": "IAMUser", **{f"x{n}": 1 for n in names}}
    row = one_row(rec)
    unknown = json.loads(row["unknown_fields"])
    assert list(unknown)[: len(names)] == names
    assert list(unknown["userIdentity"]) == [f"x{n}" for n in names]


def test_unknown_fields_named_like_lake_columns_do_not_overwrite_provenance():
    rec = make_record(source_object="forged", integrity_status="verified", event_date="1999-01-01")
    row = one_row(rec)
    assert row["source_object"] == "mem://x"
    assert row["integrity_status"] == "unchecked"
    assert json.loads(row["unknown_fields"]) == {"source_object": "forged",
                                                 "integrity_status": "verified",
                                                 "event_date": "1999-01-01"}


def test_insight_events_are_read():
    rec = make_insight()
    parsed = parse_records([rec])
    assert reasons(parsed) == []
    [row] = rows_of(parsed)
    assert row["eventType"] == "AwsCloudTrailInsight"
    assert row["eventCategory"] == "Insight"
    assert row["userIdentity"] is None
    assert row["sharedEventID"] == rec["sharedEventID"]
    assert json.loads(row["insightDetails"]) == rec["insightDetails"]


# --- rejected records ------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "expected"), [
    ({"eventTime": None}, "eventTime"),
    ({"eventID": None}, "eventID"),
    ({"eventName": None}, "eventName"),
    ({"eventSource": None}, "eventSource"),
    ({"userIdentity": "root"}, "userIdentity: 'root' is not of type 'object'"),
    ({"readOnly": "true"}, "readOnly: 'true' is not of type 'boolean'"),
    ({"managementEvent": 1}, "managementEvent"),
    ({"eventTime": "yesterday"}, "eventTime: 'yesterday' is not an ISO-8601 UTC timestamp"),
    ({"eventTime": "2024-02-30T00:00:00Z"}, "eventTime: '2024-02-30T00:00:00Z' is not an ISO"),
    ({"eventTime": 1709294400}, "eventTime: 1709294400 is not of type 'string'"),
    ({"resources": {"ARN": "x"}}, "resources"),
    ({"resources": ["arn:aws:s3:::b"]}, "resources/0"),
    ({"tlsDetails": {"tlsVersion": 1.3}}, "tlsDetails/tlsVersion"),
    ({"userIdentity": {"sessionContext": {"attributes": {"mfaAuthenticated": True}}}},
     "userIdentity/sessionContext/attributes/mfaAuthenticated"),
], ids=lambda v: str(v)[:40])
def test_bad_record_is_rejected_with_a_reason_and_its_neighbours_kept(bad, expected):
    good1, good2 = make_record(), make_record()
    broken = make_record(**bad)
    for key, value in bad.items():
        if value is None:
            del broken[key]
    parsed = parse_records([good1, broken, good2])
    assert [r["eventID"] for r in rows_of(parsed)] == [good1["eventID"], good2["eventID"]]
    assert parsed.events_read == 3
    [rejected] = parsed.rejected
    assert rejected.index == 1
    assert expected in rejected.reason
    assert "\n" not in rejected.reason
    assert json.loads(rejected.raw) == broken


def test_records_that_are_not_objects_are_rejected():
    good = make_record()
    parsed = parse_records([good, "text", 7, None, [good]], "array")
    assert [r["eventID"] for r in rows_of(parsed)] == [good["eventID"]]
    assert reasons(parsed) == [
        "record is not a JSON object (str)", "record is not a JSON object (int)",
        "record is not a JSON object (NoneType)", "record is not a JSON object (list)"]


def test_all_records_bad_gives_no_table_and_all_reasons():
    parsed = parse_records([drop(make_record(), "eventID"), make_record(eventTime="nope")])
    assert parsed.table is None
    assert parsed.events_read == 2
    assert "'eventID' is a required property" in parsed.rejected[0].reason
    assert "is not an ISO-8601 UTC timestamp" in parsed.rejected[1].reason


def drop(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in names}


@pytest.mark.parametrize("where", ["requestParameters", "eventName", "unknown", "userIdentity"])
def test_lone_surrogate_escape_is_stored_or_rejected_never_an_exception(where):
    r"""`"\ud800"` is valid JSON syntax; the record must be kept or rejected, not crash parse()."""
    rec = make_record()
    if where == "requestParameters":
        rec["requestParameters"] = {"key": "\ud800"}
    elif where == "eventName":
        rec["eventName"] = "Get\udc00Object"
    elif where == "unknown":
        rec["newField"] = "\ud83d"
    else:
        rec["userIdentity"]["userName"] = "\udfff"
    good = make_record()
    data = json.dumps({"Records": [good, rec]}).encode()  # ensure_ascii: "\ud800" escapes
    try:
        parsed = records.parse(data, "x")
    except BadInput:
        return  # a one-line file-level reason is acceptable
    kept = [r["eventID"] for r in rows_of(parsed)]
    assert good["eventID"] in kept
    assert len(kept) + len(parsed.rejected) == 2


def test_zlib_level_does_not_matter():
    text = encode([make_record()])
    for level in (0, 1, 9):
        compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
        data = compressor.compress(text) + compressor.flush()
        assert rows_of(records.parse(data, "x"))[0]["eventName"] == "GetObject"


_record_like = st.fixed_dictionaries(
    {"eventTime": st.sampled_from(["2024-03-01T00:00:00Z", "bad", "", None]) | st.integers(),
     "eventID": st.text(max_size=5) | st.none(),
     "eventName": st.text(max_size=5), "eventSource": st.text(max_size=5)},
    optional={"userIdentity": _json_values, "readOnly": _json_values, "resources": _json_values,
              "tlsDetails": _json_values, "requestParameters": _json_values,
              "managementEvent": _json_values},
)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200) | st.builds(gzip.compress, st.binary(max_size=200))
       | st.builds(lambda r: json.dumps({"Records": r}, ensure_ascii=False).encode(),
                   st.lists(_record_like, max_size=3)))
def test_parse_never_fails_other_than_with_a_reason(data):
    """Any bytes: rows, rejected records with reasons, or BadInput/NotEvents; nothing else."""
    try:
        parsed = records.parse(data, "fuzz")
    except (BadInput, NotEvents) as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    kept = 0 if parsed.table is None else parsed.table.num_rows
    assert kept + len(parsed.rejected) == parsed.events_read
    for rejected in parsed.rejected:
        assert rejected.reason and "\n" not in rejected.reason
