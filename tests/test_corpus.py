"""Real public CloudTrail samples (../shared/corpus/real): nothing lost, values preserved.

Records are counted here independently of trailscan (stdlib gzip/json only), then compared with
what the ingest reports and what the lake holds.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, ingest_cli, quarantine_list

import trailscan
from trailscan import schema

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")

VARIANT = {"requestParameters", "responseElements", "additionalEventData", "serviceEventDetails",
           "insightDetails", "addendum", "edgeDeviceDetails", "eventContext"}


def _count_doc(doc: Any) -> tuple[str, int]:
    if isinstance(doc, list):
        return "events", len(doc)
    if isinstance(doc, dict):
        if isinstance(doc.get("Records"), list):
            return "events", len(doc["Records"])
        if isinstance(doc.get("Events"), list):
            return "events", len(doc["Events"])
        if "CloudTrailEvent" in doc or "eventID" in doc or "eventTime" in doc:
            return "events", 1
        if "digestStartTime" in doc and "logFiles" in doc:
            return "digest", 0
    return "not-cloudtrail", 0


def count_records(data: bytes) -> tuple[str, int]:
    """('events', n) | ('digest', 0) | ('unreadable' | 'not-cloudtrail', 0), by hand."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "unreadable", 0
    if not text.strip():
        return "unreadable", 0
    try:
        return _count_doc(json.loads(text))
    except json.JSONDecodeError:
        pass
    try:  # NDJSON: every non-blank line is a JSON document
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return "unreadable", 0
    counts = [_count_doc(d) for d in docs]
    if any(kind != "events" for kind, _ in counts):
        return "not-cloudtrail", 0
    return "events", sum(n for _, n in counts)


def records_of(path: Path) -> list[dict[str, Any]]:
    """The records of a readable events file, parsed by hand (lookup-events unwrapped)."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8-sig")
    try:
        docs = [json.loads(text)]
    except json.JSONDecodeError:
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    out = []
    for doc in docs:
        items = doc if isinstance(doc, list) else doc.get("Records") or doc.get("Events") or [doc]
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("CloudTrailEvent"), str):
                item = json.loads(item["CloudTrailEvent"])
            out.append(item)
    return out


@pytest.fixture(scope="module")
def corpus_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:  # module scope: do what conftest's autouse does
        import os

        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        lake = tmp_path_factory.mktemp("corpus") / "lake"
        first = ingest_cli(CORPUS, "--lake", lake)
        con = trailscan.open_lake(str(lake))
        try:
            rows = con.sql("SELECT * FROM cloudtrail").to_arrow_table().to_pylist()
            manifest = con.sql("SELECT * FROM manifest").to_arrow_table().to_pylist()
        finally:
            con.close()
        quarantine = quarantine_list(lake)
        second = ingest_cli(CORPUS, "--lake", lake)
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    return {"lake": lake, "stats": first, "again": second, "rows": rows, "files": files,
            "manifest": {m["uri"]: m for m in manifest}, "quarantine": quarantine}


def _expected(files: list[Path]) -> dict[str, tuple[str, int]]:
    return {str(p): count_records(p.read_bytes()) for p in files}


def test_every_record_is_ingested_or_quarantined_none_lost(corpus_lake):
    stats, files = corpus_lake["stats"], corpus_lake["files"]
    expected = _expected(files)
    total = sum(n for kind, n in expected.values() if kind == "events")
    assert total > 300
    assert stats["files_seen"] == len(files)
    assert stats["events_read"] == total
    assert (stats["events_written"] + stats["events_duplicate"]
            + stats["events_quarantined"]) == total
    assert stats["events_filtered"] == 0
    assert len(corpus_lake["rows"]) == stats["events_written"]
    # Per file: the manifest's count is ours; written rows and quarantined records add up.
    by_source: dict[str, int] = {}
    for row in corpus_lake["rows"]:
        by_source[row["source_object"]] = by_source.get(row["source_object"], 0) + 1
    record_entries: dict[str, int] = {}
    for entry in corpus_lake["quarantine"]:
        if entry["record_index"] is not None:
            record_entries[entry["source"]] = record_entries.get(entry["source"], 0) + 1
    for uri, (kind, n) in expected.items():
        if kind != "events":
            continue
        entry = corpus_lake["manifest"][uri]
        assert entry["status"] == "ingested", uri
        assert entry["events"] == n, uri
        assert entry["written"] == by_source.get(uri, 0), uri
        assert entry["quarantined"] == record_entries.get(uri, 0), uri
    assert sum(record_entries.values()) == stats["events_quarantined"]


def test_unreadable_files_are_quarantined_whole_with_a_reason(corpus_lake):
    expected = _expected(corpus_lake["files"])
    bad = sorted(uri for uri, (kind, _) in expected.items()
                 if kind in ("unreadable", "not-cloudtrail"))
    assert str(CORPUS / "robustness" / "SerializerTestFileBadJsonFormat.json") in bad
    assert str(CORPUS / "robustness" / "SQSMessageBody") in bad
    file_entries = {e["source"]: e for e in corpus_lake["quarantine"] if e["record_index"] is None}
    assert sorted(file_entries) == bad
    assert corpus_lake["stats"]["files_quarantined"] == len(bad)
    for uri in bad:
        reason = file_entries[uri]["reason"]
        assert reason and "\n" not in reason and "Traceback" not in reason
    assert file_entries[str(CORPUS / "robustness" / "SQSMessageBody")]["reason"].startswith(
        "JSON is not CloudTrail")
    assert file_entries[str(CORPUS / "robustness" / "SerializerTestFileBadJsonFormat.json")][
        "reason"].startswith("invalid JSON")


def test_every_quarantined_record_has_a_one_line_reason(corpus_lake):
    for entry in corpus_lake["quarantine"]:
        assert entry["reason"].strip(), entry
        assert "\n" not in entry["reason"]


def test_digest_file_is_recognised_not_read_as_events(corpus_lake):
    digest = str(CORPUS / "real-digest-unsigned.json")
    assert count_records(Path(digest).read_bytes()) == ("digest", 0)
    assert corpus_lake["stats"]["files_digest"] == 1
    assert digest not in {e["source"] for e in corpus_lake["quarantine"]}
    assert digest not in {r["source_object"] for r in corpus_lake["rows"]}


def test_processing_library_fixtures_lacking_event_id_are_quarantined_naming_event_id(
        corpus_lake):
    robustness = CORPUS / "robustness"
    reasons = {(e["source"], e["record_index"]): e["reason"] for e in corpus_lake["quarantine"]}
    lacking = 0
    for path in sorted(robustness.glob("*.json*")):
        kind, _ = count_records(path.read_bytes())
        if kind != "events":
            continue
        for index, record in enumerate(records_of(path)):
            if record.get("eventID") is None:
                lacking += 1
                reason = reasons.get((str(path), index))
                assert reason is not None, f"{path.name}[{index}] not quarantined"
                assert "eventID" in reason, f"{path.name}[{index}]: {reason}"
    assert lacking >= 30


def _matches(value: Any, original: Any, unknown: Any, where: str) -> None:
    """A lake value holds `original`; keys the schema does not know are in `unknown`."""
    if isinstance(original, dict) and isinstance(value, dict):
        for key, sub in original.items():
            if key in value:
                _matches(value[key], sub, (unknown or {}).get(key), f"{where}.{key}")
            else:
                assert unknown is not None and unknown.get(key) == sub, f"{where}.{key} lost"
    elif isinstance(original, list) and isinstance(value, list):
        assert len(value) == len(original), where
        for i, (v, o) in enumerate(zip(value, original, strict=True)):
            _matches(v, o, (unknown or {}).get(str(i)), f"{where}[{i}]")
    elif isinstance(value, str) and not isinstance(original, str):  # JSON-text column
        assert json.loads(value) == original, where
    else:
        assert value == original, where


def assert_row_is_record(row: dict[str, Any], record: dict[str, Any]) -> None:
    unknown = json.loads(row["unknown_fields"]) if row["unknown_fields"] else {}
    columns = set(schema.cloudtrail_columns())
    for key, value in record.items():
        if key == "eventTime":
            assert row[key] == datetime.fromisoformat(value.replace("Z", "+00:00")), key
        elif key in VARIANT:
            assert json.loads(row[key]) == value if value is not None else row[key] is None, key
        elif key in columns:
            _matches(row[key], value, unknown.get(key), key)
        else:
            assert unknown[key] == value, key


def test_stratus_detonations_all_310_events_land_with_their_values(corpus_lake):
    folder = CORPUS / "stratus-detonation-logs"
    rows = {r["eventID"]: r for r in corpus_lake["rows"]
            if r["source_object"].startswith(str(folder))}
    records = [r for path in sorted(folder.glob("*.json")) for r in records_of(path)]
    assert len(records) == 310
    assert len(rows) == 310
    for record in records:
        assert_row_is_record(rows[record["eventID"]], record)


def test_lookup_events_sample_lands_with_its_cloudtrail_event_fields(corpus_lake):
    path = CORPUS / "lookup-events-sample.jsonl"
    rows = {r["eventID"]: r for r in corpus_lake["rows"] if r["source_object"] == str(path)}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(lines) == len(rows) == 6
    for line in lines:
        record = json.loads(line["CloudTrailEvent"])
        assert record["eventID"] == line["EventId"]
        row = rows[record["eventID"]]
        assert row["eventName"] == line["EventName"]
        assert_row_is_record(row, record)
    assert corpus_lake["manifest"][str(path)]["container"] == "ndjson"


def test_s3_named_gzip_file_lands_with_its_values(corpus_lake):
    [path] = (CORPUS / "s3-named-gz").glob("*.json.gz")
    records = records_of(path)
    rows = {r["eventID"]: r for r in corpus_lake["rows"] if r["source_object"] == str(path)}
    assert len(records) == len(rows) == 2
    for record in records:
        assert_row_is_record(rows[record["eventID"]], record)


def test_second_ingest_of_the_corpus_reads_no_events_and_adds_nothing(corpus_lake):
    again = corpus_lake["again"]
    assert again["files_ingested"] == again["files_quarantined"] == 0
    assert again["events_read"] == again["events_written"] == 0
    assert again["files_skipped"] == again["files_seen"] - again["files_digest"]
