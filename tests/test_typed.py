"""typed.py (the fast path) stores exactly what the general path stores, or steps aside.

Every comparison runs both paths on the same bytes: `typed.table` and records.py's general
`split_container` + `to_table`. The fast path must either return an identical table or None.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import CORPUS, REPO, make_insight, make_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trailscan import records, typed


def fast(text: bytes) -> pa.Table | None:
    decoded = typed.decode(text)
    return None if decoded is None else records.typed_table([(decoded, "src")])


def general(text: bytes) -> tuple[pa.Table | None, list[records.Rejected]]:
    try:
        _, items = records.split_container(text)
        return records.to_table(items, "src")
    except records._NeedsExactParse:
        _, items = records.split_container(text, exact=True)
        return records.to_table(items, "src", exact=True)


def assert_same(text: bytes) -> pa.Table:
    """The fast path took the file and agrees with the general path, value for value."""
    table = fast(text)
    assert table is not None, "the fast path gave up on an ordinary file"
    expected, rejected = general(text)
    assert rejected == []
    assert table.schema == expected.schema
    assert table.to_pylist() == expected.to_pylist()
    assert table.equals(expected)
    return table


def envelope(*recs: Any) -> bytes:
    return json.dumps({"Records": list(recs)}).encode()


def test_sample_logs_all_take_the_fast_path_and_match():
    files = sorted((REPO / "sample_logs").rglob("*.json.gz"))
    events = [f for f in files if "CloudTrail" in f.parts]
    insights = [f for f in files if "CloudTrail-Insight" in f.parts]
    assert len(events) > 50 and insights
    rows = sum(assert_same(gzip.decompress(f.read_bytes())).num_rows for f in events)
    assert rows > 1000
    assert all(fast(gzip.decompress(f.read_bytes())) is None for f in insights)


@pytest.mark.skipif(not CORPUS.exists(), reason="../shared/corpus absent")
def test_real_corpus_either_matches_or_steps_aside():
    taken = 0
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.suffix not in (".gz", ".json"):
            continue
        try:
            text = records.decompress(path.read_bytes())
        except Exception:
            continue
        table = fast(text)
        if table is None:
            continue
        taken += 1
        expected, rejected = general(text)
        assert rejected == [] and table.equals(expected), path
    assert taken >= 1


def test_variant_text_is_serialised_like_the_general_path():
    """Raw input text is not copied verbatim: escapes, float spellings, whitespace and
    duplicate keys come out exactly as the general path writes them."""
    raw = (b'{"Records":[' + json.dumps(make_record()).encode()[:-1] +
           b', "requestParameters" : {"a" : "caf\\u00e9 \\/x", "f": 1.50, "e": 1E5, "z": -0,'
           b' "a": "dup", "n": null, "l": [ 1 , {"k":true} ]}}]}')
    table = assert_same(raw)
    assert json.loads(table["requestParameters"][0].as_py()) == {
        "a": "dup", "f": 1.5, "e": 100000.0, "z": 0, "n": None, "l": [1, {"k": True}]}


def test_null_and_missing_nested_values_match():
    recs = [make_record(userIdentity=None, tlsDetails=None, resources=None),
            {k: v for k, v in make_record().items() if k not in ("userIdentity", "resources")},
            make_record(resources=[]), make_record(resources=[None]),
            make_record(requestParameters="text", responseElements=[1, 2])]
    table = assert_same(envelope(*recs))
    assert table["userIdentity"].null_count == 2


def test_repeated_identities_are_converted_once_and_stay_in_order():
    idents = [make_record()["userIdentity"] | {"userName": f"u{i % 3}"} for i in range(9)]
    table = assert_same(envelope(*[make_record(userIdentity=u) for u in idents]))
    assert [r["userName"] for r in table["userIdentity"].to_pylist()] == [
        f"u{i % 3}" for i in range(9)]


@pytest.mark.parametrize("text", [
    envelope(make_record(newTopLevelField=1)),  # unknown field: kept in unknown_fields
    envelope(make_record(userIdentity={"type": "Root", "brandNew": "x"})),
    envelope(make_record(resources=[{"ARN": "a", "extra": 1}])),
    envelope(make_insight()),  # no eventName/eventSource
    envelope(make_record(eventName=5)),  # wrong type: quarantined by the general path
    envelope(make_record(readOnly="true")),
    envelope(make_record(userIdentity=[])),
    envelope(make_record(eventTime="yesterday")),
    envelope(make_record(requestParameters={"big": 2**70})),  # needs the exact parser
    json.dumps({"Records": [make_record()], "other": 1}).encode(),
    json.dumps([make_record()]).encode(),  # other containers
    b'{"Records":[]}',
    b'{"Records":[' + json.dumps(make_record()).encode()[:-1] + b',"errorMessage":"\\ud800"}]}',
], ids=["unknown-top", "unknown-nested", "unknown-in-list", "insight", "wrong-type",
        "wrong-bool", "list-for-struct", "bad-time", "big-int", "envelope-extra", "array",
        "empty", "lone-surrogate"])
def test_anything_unusual_takes_the_general_path(text: bytes):
    assert fast(text) is None


def test_parse_uses_the_fast_path_and_reports_the_envelope():
    parsed = records.parse(gzip.compress(envelope(make_record(), make_record())), "src")
    assert parsed.container == "records" and parsed.events_read == 2
    assert parsed.table is not None and parsed.table.num_rows == 2 and parsed.rejected == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=12)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(params=json_values, elements=json_values, ascii=st.booleans(), indent=st.booleans())
def test_any_variant_value_round_trips_like_the_general_path(params: Any, elements: Any,
                                                              ascii: bool, indent: bool):
    rec = make_record(requestParameters=params, responseElements=elements)
    text = json.dumps({"Records": [rec]}, ensure_ascii=ascii, indent=1 if indent else None)
    table = fast(text.encode())
    if table is None:  # allowed only where the general path needs its exact parser
        return
    expected, rejected = general(text.encode())
    assert rejected == [] and table.equals(expected)


def test_fast_path_is_used_for_a_whole_synthetic_trail(tmp_path: Path):
    from trailscan import synth

    trail = tmp_path / "trail"
    summary = synth.write_bench_trail(trail, 3000, events_per_file=250)
    files = [f for f in sorted(trail.rglob("*.json.gz")) if "CloudTrail-Digest" not in f.parts]
    rows = sum(assert_same(gzip.decompress(f.read_bytes())).num_rows for f in files)
    assert rows == summary.events


def test_a_worker_task_mixing_fast_and_general_files_keeps_order_and_counts(tmp_path: Path):
    """One file of a batch fails late (its eventTime does not parse): the batch is narrowed
    file by file, that file's bad record is quarantined, and rows stay in input order."""
    from trailscan.ingest import Filters, Worker
    from trailscan.sources import walk_local

    src = tmp_path / "src"
    src.mkdir()
    contents = {
        "a.json.gz": [make_record(), make_record()],
        "b.json.gz": [make_record(), make_record(eventTime="not a time")],
        "c.json": [make_insight()],  # general path (insight), between fast files
        "d.json.gz": [make_record()],
    }
    for name, recs in contents.items():
        text = envelope(*recs)
        (src / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    staging = tmp_path / "staging"
    staging.mkdir()
    worker = Worker(staging, 0, records.DEFAULT_MAX_BYTES, Filters())
    objects = sorted(walk_local([src]), key=lambda o: o.uri)
    outcomes = worker.process_task([(o, None) for o in objects])
    files = worker.close()
    assert [(Path(o.uri).name, o.events_read, o.kept, o.quarantined, o.container)
            for o in outcomes] == [("a.json.gz", 2, 2, 0, "records"),
                                   ("b.json.gz", 2, 1, 1, "records"),
                                   ("c.json", 1, 1, 0, "records"),
                                   ("d.json.gz", 1, 1, 0, "records")]
    assert all(o.sha256 for o in outcomes)
    rows = pa.concat_tables([pq.read_table(f.staging) for f in files])
    assert [Path(s).name for s in rows["source_object"].to_pylist()] == [
        "a.json.gz", "a.json.gz", "b.json.gz", "c.json", "d.json.gz"]


def test_a_worker_converts_big_texts_in_smaller_batches(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    """Memory stays bounded: past BATCH_TEXT bytes of text, a batch is converted at once."""
    from trailscan import ingest
    from trailscan.sources import walk_local

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.json.gz").write_bytes(gzip.compress(envelope(make_record(), make_record())))
    converted: list[int] = []
    real = records.typed_table

    def spy(parts: list[tuple[list[Any], str]]) -> pa.Table | None:
        converted.append(len(parts))
        return real(parts)

    monkeypatch.setattr(ingest.records, "typed_table", spy)
    objects = [(o, None) for o in sorted(walk_local([src]), key=lambda o: o.uri)]
    for limit, expected in ((ingest.BATCH_TEXT, [3]), (1, [1, 1, 1])):
        converted.clear()
        monkeypatch.setattr(ingest, "BATCH_TEXT", limit)
        staging = tmp_path / f"staging-{limit}"
        staging.mkdir()
        worker = ingest.Worker(staging, 0, records.DEFAULT_MAX_BYTES, ingest.Filters())
        assert [o.kept for o in worker.process_task(objects)] == [2, 2, 2]
        worker.close()
        assert converted == expected
    task = [(o, None) for o, _ in objects]
    assert not ingest._task_full(task)
    monkeypatch.setattr(ingest, "TASK_BYTES", objects[0][0].size * 2)
    assert ingest._task_full(task)


IDENTITY = make_record()["userIdentity"]


@pytest.mark.parametrize("identity", [
    IDENTITY | {"inScopeOf": {"issuerType": "AWS::Lambda::Function", "sourceArn": "arn:x",
                              "credentialsIssuedTo": "arn:y"}},
    IDENTITY | {"inScopeOf": None, "onBehalfOf": {"userId": "u-1", "identityStoreArn": "arn:s"}},
    IDENTITY | {"sessionContext": {"webIdFederationData": {
        "federatedProvider": "accounts.google.com",
        "attributes": {"accounts.google.com:aud": "1.50", "n": 1.50, "e": "caf\u00e9"}}}},
    IDENTITY | {"sessionContext": {"sessionIssuer": {}, "attributes": None,
                                   "webIdFederationData": {}}},
    IDENTITY | {"sessionContext": None},
    {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
    {},
], ids=["inScopeOf", "onBehalfOf", "webid-attributes", "empty-substructs", "null-session",
        "service", "empty"])
def test_identity_shapes_match_the_general_path(identity: dict[str, Any]):
    recs = [make_record(userIdentity=identity), make_record(userIdentity=identity),
            make_record()]
    table = assert_same(envelope(*recs))
    assert table["userIdentity"][0].as_py() == table["userIdentity"][1].as_py()


@pytest.mark.parametrize("identity", [
    IDENTITY | {"sessionContext": []},
    IDENTITY | {"sessionContext": {"attributes": "x"}},
    IDENTITY | {"accountId": 111122223333},
    IDENTITY | {"inScopeOf": {"big": 2**70}},
    "AssumedRole",
], ids=["list-for-struct", "string-for-struct", "number-for-string", "big-int", "string"])
def test_odd_identities_take_the_general_path(identity: Any):
    assert fast(envelope(make_record(userIdentity=identity))) is None


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(scope=json_values, attributes=json_values)
def test_json_fields_inside_identities_round_trip_like_the_general_path(scope: Any,
                                                                         attributes: Any):
    identity = IDENTITY | {"inScopeOf": scope, "sessionContext": {
        "webIdFederationData": {"federatedProvider": "p", "attributes": attributes}}}
    text = json.dumps({"Records": [make_record(userIdentity=identity)]}).encode()
    table = fast(text)
    if table is None:  # allowed only where the general path needs its exact parser
        return
    expected, rejected = general(text)
    assert rejected == [] and table.equals(expected)
