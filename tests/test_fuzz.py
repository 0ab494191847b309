"""Property-based and fuzz tests of the readers, the schema conversion and the digest parser.

Bounded for CI: explicit max_examples and no deadline (the machine is shared), plus a short
coverage-guided atheris run of tests/fuzz_readers.py when atheris is installed.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from conftest import make_record
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_integrity import A1, Bucket, run

from trailscan import records, schema
from trailscan.errors import BadInput, NotEvents

HERE = Path(__file__).resolve().parent
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(data: bytes) -> records.Parsed | None:
    """Whole object refused with a one-line reason, or every record accounted for."""
    try:
        parsed = records.parse(data, "fuzz", 1 << 20)
    except (BadInput, NotEvents) as exc:
        assert "\n" not in str(exc)
        return None
    rows = 0 if parsed.table is None else parsed.table.num_rows
    assert rows + len(parsed.rejected) == parsed.events_read
    indexes = [r.index for r in parsed.rejected]
    assert len(set(indexes)) == len(indexes) and all(0 <= i < parsed.events_read
                                                     for i in indexes)
    assert all("\n" not in r.reason for r in parsed.rejected)
    return parsed


# --- the readers, byte level -------------------------------------------------------------------

def _seeds() -> list[bytes]:
    recs = [make_record(), make_record(eventName="PutObject")]
    text = json.dumps({"Records": recs}).encode()
    return [text, gzip.compress(text), gzip.compress(text[:50]) + gzip.compress(text[50:]),
            b"\n".join(json.dumps(r).encode() for r in recs),
            json.dumps({"Events": [{"CloudTrailEvent": json.dumps(r)} for r in recs]}).encode(),
            json.dumps(recs).encode()]


SEEDS = _seeds()


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    check(data)
    check(b"\x1f\x8b" + data)  # as if gzip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file (plain or gzip, any container) with a few random edits."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup", "set"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 200))]
        elif op == "set" and data:
            data[at] = draw(st.sampled_from(b'{}[]",:\\\x00\xff\n0-e.'))
    return bytes(data)


@FAST
@given(mutated())
def test_mutated_valid_files(data: bytes) -> None:
    check(data)
    check(gzip.compress(data))


@settings(max_examples=25, deadline=None, database=None)
@given(st.integers(1, 64), st.integers(2, 20))
def test_gzip_bombs_stop_at_the_limit(kib: int, factor: int) -> None:
    """Small input, output `factor` times the limit: refused, never inflated whole."""
    limit = kib * 1024
    data = zlib.compress(b"[" + b" " * (limit * factor), 9)
    gz = gzip.compress(zlib.decompress(data))
    with pytest.raises(BadInput, match="exceeds the limit"):
        records.parse(gz, "bomb", limit)


# --- the schema conversion -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=3),
    max_leaves=5)

_TYPE = schema.record_plan().arrow
_PATHS: list[tuple[str, ...]] = []


def _collect(struct: Any, prefix: tuple[str, ...]) -> None:
    for i in range(struct.num_fields):
        field = struct.field(i)
        _PATHS.append((*prefix, field.name))
        if hasattr(field.type, "num_fields") and field.type.num_fields:
            _collect(field.type, (*prefix, field.name))


_collect(_TYPE, ())


@st.composite
def record_batches(draw: st.DrawFn) -> list[Any]:
    """1-6 items: mostly realistic records with some fields given arbitrary JSON values."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.integers(0, 9)) == 0:
            items.append(draw(JSON))
            continue
        record = make_record()
        for path in draw(st.lists(st.sampled_from(_PATHS), max_size=3)):
            node = record
            for name in path[:-1]:
                if not isinstance(node.get(name), dict):
                    node[name] = {}
                node = node[name]
            node[path[-1]] = draw(JSON)
        if draw(st.booleans()):
            record[draw(st.text(min_size=1, max_size=6))] = draw(JSON)  # unknown field
        items.append(record)
    return items


@FAST
@given(record_batches())
def test_schema_conversion(items: list[Any]) -> None:
    """Every item is a row or a rejected record; rows keep their values; a row is valid per the
    JSON Schema (the fast path never accepts what the schema refuses)."""
    original = json.loads(json.dumps(items))
    table, rejected = records.to_table(items, "fuzz", exact=True)
    rows = [] if table is None else table.to_pylist()
    kept = sorted(set(range(len(original))) - {r.index for r in rejected})
    assert len(rows) == len(kept) and len(rows) + len(rejected) == len(original)
    validator = schema.validator()
    for row, index in zip(rows, kept, strict=True):
        source = original[index]
        assert row["eventID"] == source["eventID"]
        assert not list(validator.iter_errors(source)), source
        for name in ("requestParameters", "responseElements", "additionalEventData"):
            if source.get(name) is not None:
                assert json.loads(row[name]) == source[name]
    for item in rejected:
        assert json.loads(item.raw) == original[item.index]  # quarantined as read
        assert item.reason and "\n" not in item.reason


# --- the digest parser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_copy(tmp_path_factory: pytest.TempPathFactory) -> Bucket:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bucket = Bucket(tmp_path_factory.mktemp("digest-fuzz") / "copy", key)
    bucket.chain(A1, "us-east-1", hours=2, logs=1)
    assert run(bucket).valid
    return bucket


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_mutated_digest_is_never_valid(signed_copy: Bucket, data: st.DataObject) -> None:
    """Byte-level edits of a signed digest file: a problem, never an exception, never valid
    (unless the edit left the uncompressed content as it was)."""
    path = sorted(signed_copy.root.rglob("*CloudTrail-Digest*.json.gz"))[-1]
    original = path.read_bytes()
    content = gzip.decompress(original)
    target = data.draw(st.sampled_from(["gzip", "json"]))
    edited = bytearray(original if target == "gzip" else content)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(edited) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            edited[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "cut":
            del edited[at:at + data.draw(st.integers(1, 32))]
        else:
            edited[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    new = bytes(edited) if target == "gzip" else gzip.compress(bytes(edited))
    try:
        path.write_bytes(new)
        report = run(signed_copy)
        try:
            unchanged = gzip.decompress(new) == content
        except (OSError, EOFError, zlib.error):
            unchanged = False
        if not unchanged:
            assert not report.valid
            assert all(d.status != "valid" for d in report.digests if d.key.endswith(path.name))
    finally:
        path.write_bytes(original)


# --- coverage-guided fuzzing (atheris) ------------------------------------------------------------


def test_atheris_fuzz_readers(tmp_path: Path) -> None:
    """libFuzzer-driven, coverage-guided, for a few seconds (tests/fuzz_readers.py)."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i}").write_bytes(seed)
    result = subprocess.run(
        [sys.executable, str(HERE / "fuzz_readers.py"), "-max_total_time=8",
         "-rss_limit_mb=2048", "-max_len=8192", "-timeout=20", str(corpus)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    tail = result.stderr[-3000:]
    assert result.returncode == 0, tail
    assert "Done" in result.stderr, tail


# --- option values ------------------------------------------------------------------------------

_DATES = st.one_of(
    st.text(max_size=40),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.sampled_from(["9999-12-31", "0001-01-01", "9999-12-31T23:59:59-12:00",
                     "0001-01-01T00:00:00+14:00", "2024-02-29", "2023-02-29Z"]))


@settings(max_examples=300, deadline=None, database=None)
@given(_DATES, st.booleans(), st.sampled_from(["log", "insight"]))
def test_time_options_parse_or_are_usage_errors(text: str, end: bool, kind: str) -> None:
    """--since/--until: a UTC datetime or a UsageError (exit 2), never another exception; and the
    key pre-filter never overflows at the ends of the calendar."""
    from datetime import UTC, date

    from trailscan.errors import UsageError
    from trailscan.sources import Filters, ObjectKey, parse_time

    try:
        value = parse_time(text, end=end)
    except UsageError:
        return
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0
    assert value.tzinfo == UTC
    key = ObjectKey(kind, "111122223333", "us-east-1", date(2024, 3, 1))
    for filters in (Filters(since=value), Filters(until=value)):
        assert isinstance(filters.admits_key(key), bool)
        assert isinstance(filters.admits_key(ObjectKey(kind, None, None, date.max)), bool)
        assert isinstance(filters.admits_key(ObjectKey(kind, None, None, date.min)), bool)
