"""Bytes to typed Arrow record batches.

One pass per file: gunzip (detected by magic bytes, bounded against gzip bombs), sha256 of the
uncompressed bytes (reused by integrity checks), JSON parse (orjson), container detection,
conversion to the lake schema.
Every record ends up either in the returned table or in `rejected` with a one-line reason.
Ordinary `{"Records":[...]}` files take typed.py's fast path first; this module is the general
path (every container, unknown fields kept, per-record reasons) and the reference both agree on.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from zlib_ng import zlib_ng

from . import schema, typed
from .errors import BadInput, NotEvents

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # per file, uncompressed; see README "Limits"


@dataclass(frozen=True)
class Rejected:
    """A record that could not go into the lake, with why and its original text."""

    index: int
    reason: str
    raw: str


@dataclass
class Parsed:
    """Everything learnt from one file in one pass."""

    sha256: str
    size: int  # uncompressed bytes
    container: str  # records | array | ndjson | lookup-events | record
    table: pa.Table | None
    events_read: int
    rejected: list[Rejected] = field(default_factory=list)


def largest_input(limit: int = DEFAULT_MAX_BYTES) -> int:
    """The largest object that can stay within `limit` bytes once decompressed: gzip of
    incompressible data is larger than its input by about 5 bytes per 16 KiB, plus headers."""
    return limit + limit // 1000 + 4096


def decompress(data: bytes, limit: int = DEFAULT_MAX_BYTES) -> bytes:
    """Inflate gzip (all members) or return plain bytes; refuse output over `limit` bytes."""
    if data[:2] != GZIP_MAGIC:
        if len(data) > limit:
            raise BadInput(f"file is larger than the limit of {limit} bytes")
        return data
    parts: list[bytes] = []
    total = 0
    rest = data
    while rest:
        inflater = zlib_ng.decompressobj(31)
        try:
            chunk = inflater.decompress(rest, limit - total + 1)
        except zlib_ng.error as exc:
            raise BadInput(f"corrupt gzip data ({exc})") from None
        total += len(chunk)
        if total > limit or inflater.unconsumed_tail:
            raise BadInput(f"decompressed size exceeds the limit of {limit} bytes (gzip bomb?)")
        if not inflater.eof:
            raise BadInput("truncated gzip stream (unexpected end of file)")
        parts.append(chunk)
        rest = inflater.unused_data
        if rest and rest[:2] != GZIP_MAGIC:
            raise BadInput(f"{len(rest)} bytes of trailing data after the gzip stream")
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _BadItem:
    """A container item that is already known to be bad (invalid JSON line, bad CloudTrailEvent)."""

    __slots__ = ("raw", "reason")

    def __init__(self, reason: str, raw: str) -> None:
        self.reason = reason
        self.raw = raw


class _WrongType(Exception):
    """A struct field (or an item of a list of structs) holds a non-object: Arrow would read `[]`
    as an empty struct, and a batch mixing `[]` and objects fails as a whole."""


class _NeedsExactParse(Exception):
    """orjson turned an integer beyond 64 bits into a float: re-parse the file with the stdlib."""


def _loads(text: bytes | str, exact: bool = False) -> Any:
    try:
        if exact:
            return json.loads(text)
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            # orjson refuses lone surrogate escapes, which are legal JSON: the stdlib is the
            # referee.
            return json.loads(text)
    except RecursionError:  # hostile nesting (orjson stops at 1024 levels, the stdlib sooner)
        raise ValueError("nested too deeply") from None


def _stdlib_dumps(value: Any, ascii: bool = True, **options: Any) -> bytes:
    """json.dumps for what orjson refuses (e.g. more than 255 levels of nesting): parsed values
    can be up to 1024 levels deep, deeper than the default recursion limit allows encoding."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4000))
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii, **options).encode()
    finally:
        sys.setrecursionlimit(limit)


class _LoneSurrogate(Exception):
    """A JSON-typed field holds an unpaired UTF-16 surrogate escape (legal JSON syntax, not
    Unicode): DuckDB's JSON functions refuse such text, so one record would break every query."""

    reason = ("a JSON field holds an unpaired UTF-16 surrogate escape (e.g. \\ud800): "
              "not valid Unicode")


def _column_json(value: Any, **options: Any) -> bytes:
    """JSON text for a lake column when orjson refused the value (big integers, surrogates)."""
    out = _stdlib_dumps(value, **options)
    if b"\\ud" in out or b"\\uD" in out:  # a surrogate escape: paired ones are fine
        try:
            _stdlib_dumps(value, ascii=False, **options)
        except UnicodeEncodeError:  # only a lone surrogate cannot be encoded as UTF-8
            raise _LoneSurrogate from None
    return out


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {exc.start}"
    return f"invalid JSON ({exc})"


def _short(value: Any, width: int) -> str:
    """A value from the input, quoted and cut, for a one-line reason (no newlines, bounded)."""
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _is_digest(doc: dict[str, Any]) -> bool:
    return "digestStartTime" in doc and "logFiles" in doc


def _from_event_item(item: Any, exact: bool = False) -> Any:
    """`aws cloudtrail lookup-events` items carry the record as a JSON string."""
    if isinstance(item, dict) and isinstance(item.get("CloudTrailEvent"), str):
        try:
            return _loads(item["CloudTrailEvent"], exact)
        except ValueError as exc:
            return _BadItem(f"CloudTrailEvent: {_json_error(exc)}", item["CloudTrailEvent"])
    return item


def _items_of(doc: Any, exact: bool = False) -> tuple[str, list[Any]]:
    if isinstance(doc, list):
        return "array", doc
    if not isinstance(doc, dict):
        raise BadInput(f"JSON is not CloudTrail (top level is {type(doc).__name__})")
    if "Records" in doc:
        if not isinstance(doc["Records"], list):
            raise BadInput("JSON is not CloudTrail (Records is not an array)")
        return "records", doc["Records"]
    if "Events" in doc:
        if not isinstance(doc["Events"], list):
            raise BadInput("JSON is not CloudTrail (Events is not an array)")
        return "lookup-events", [_from_event_item(i, exact) for i in doc["Events"]]
    if "CloudTrailEvent" in doc:
        return "lookup-events", [_from_event_item(doc, exact)]
    if _is_digest(doc):
        raise NotEvents("digest")
    if "PublicKeyList" in doc:  # `aws cloudtrail list-public-keys` output kept beside a trail
        raise NotEvents("public-keys")
    if "eventID" in doc or "eventTime" in doc:
        return "record", [doc]
    keys = ", ".join(_short(k, 40) for k in list(doc)[:5]) or "none"
    raise BadInput(f"JSON is not CloudTrail (object without Records/Events; keys: {keys})")


def _ndjson(text: bytes, exact: bool = False) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = _loads(line, exact)
        except ValueError as exc:
            raw = line.decode("utf-8", "replace")
            items.append(_BadItem(f"line {number}: {_json_error(exc)}", raw))
            continue
        try:
            items.extend(_items_of(doc, exact)[1])
        except BadInput as exc:
            items.append(_BadItem(f"line {number}: {exc}", line.decode("utf-8", "replace")))
    return items


def split_container(text: bytes, exact: bool = False) -> tuple[str, list[Any]]:
    """Find the records in any supported container; raise BadInput/NotEvents for the whole file."""
    if not text.strip():
        raise BadInput("empty file")
    try:
        doc = _loads(text, exact)
    except ValueError as exc:
        if b"\n" in text.strip():
            items = _ndjson(text, exact)
            if items and not all(isinstance(i, _BadItem) for i in items):
                return "ndjson", items
        raise BadInput(_json_error(exc)) from None
    return _items_of(doc, exact)


# --- conversion ---------------------------------------------------------------------------


def _dumps(value: Any) -> bytes:
    try:
        out = orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits or lone surrogates, from the stdlib parser
        return _column_json(value)
    if b"e+" in out and _has_huge_float(value):
        raise _NeedsExactParse
    return out


def _dumps_exact(value: Any) -> bytes:
    """For values parsed by the stdlib (exact integers): never asks for another parse."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _column_json(value)


def _decoded(value: Any) -> Any:
    """A field to_table() already serialised, back to its value (quarantine text only)."""
    if type(value) is bytes:
        return json.loads(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def _has_huge_float(value: Any) -> bool:
    """True when a float could be a mangled integer beyond 64 bits (rare: checked only on 'e+')."""
    if type(value) is float:
        return abs(value) >= 2**63 and value.is_integer()
    if type(value) is dict:
        return any(_has_huge_float(v) for v in value.values())
    if type(value) is list:
        return any(_has_huge_float(v) for v in value)
    return False


def _prepare(obj: dict[str, Any], plan: schema.StructPlan,
             dumps: Any = _dumps) -> tuple[dict[str, Any], Any]:
    """Serialise JSON-typed fields and split off unknown keys; returns (row, unknown or None).

    Copies only what it changes, so the caller's parsed record stays intact for the quarantine.
    """
    row = obj
    unknown: dict[str, Any] | None = None
    if not obj.keys() <= plan.known:
        unknown = {k: v for k, v in obj.items() if k not in plan.known}
    for name in plan.json_fields:
        value = obj.get(name)
        if value is not None:
            if row is obj:
                row = dict(obj)
            row[name] = dumps(value)
    for name, sub in plan.structs:
        value = obj.get(name)
        if type(value) is not dict:
            if value is not None:
                raise _WrongType
            continue
        if sub.json_fields or sub.structs or not value.keys() <= sub.known:
            new, extra = _prepare(value, sub, dumps)
            if new is not value:
                if row is obj:
                    row = dict(obj)
                row[name] = new
            if extra is not None:
                unknown = unknown or {}
                unknown[name] = extra
    for name, sub in plan.lists:
        extras = _list_unknowns(obj.get(name), sub)
        if extras is not None:
            unknown = unknown or {}
            unknown[name] = extras
    return row, unknown


def _list_unknowns(value: Any, item_plan: schema.StructPlan) -> dict[str, Any] | None:
    """Unknown keys of objects in an array (e.g. `resources`), keyed by position."""
    if type(value) is not list:
        return None
    extras = {}
    for i, item in enumerate(value):
        if type(item) is not dict:
            if item is not None:
                raise _WrongType
        elif not item.keys() <= item_plan.known:
            extras[str(i)] = {k: v for k, v in item.items() if k not in item_plan.known}
    return extras or None


@dataclass(frozen=True)
class _Layout:
    row_type: pa.StructType  # schema with eventTime as string (parsed after, vectorised)
    time_index: int


def _layout() -> _Layout:
    record_type = schema.record_plan().arrow
    fields = []
    time_index = -1
    for i in range(record_type.num_fields):
        f = record_type.field(i)
        if f.name == "eventTime":
            time_index = i
            f = pa.field("eventTime", pa.string())
        fields.append(f)
    return _Layout(pa.struct(fields), time_index)


_LAYOUT = _layout()
_PLAN = schema.record_plan()
_INSIGHT = schema.INSIGHT_EVENT_TYPE


def _raw(record: Any) -> str:
    try:  # fields already serialised by to_table() (bytes) go in verbatim
        return orjson.dumps(record, default=_fragment).decode("utf-8", "replace")
    except TypeError:  # kept exactly as read, lone surrogates included
        return _stdlib_dumps(record, default=_decoded).decode("utf-8", "replace")


def _fragment(value: Any) -> Any:
    if type(value) is bytes:
        return orjson.Fragment(value)
    raise TypeError


def _reason(record: Any) -> str:
    if not isinstance(record, dict):
        return f"record is not a JSON object ({type(record).__name__})"
    return schema.explain(record)


def to_table(items: list[Any], source: str,
             exact: bool = False) -> tuple[pa.Table | None, list[Rejected]]:
    """Convert container items to a lake table; anything that does not fit is rejected, not lost."""
    dumps = _dumps_exact if exact else _dumps
    rows: list[dict[str, Any]] = []
    unknowns: list[bytes | None] = []
    kept: list[int] = []
    rejected: list[Rejected] = []
    known = _PLAN.known
    json_fields = _PLAN.json_fields
    structs = _PLAN.structs
    lists = _PLAN.lists
    for i, item in enumerate(items):
        if type(item) is not dict:
            if isinstance(item, _BadItem):
                rejected.append(Rejected(i, item.reason, item.raw))
            else:
                rejected.append(Rejected(i, _reason(item), _raw(item)))
            continue
        get = item.get
        if not (type(get("eventTime")) is str and type(get("eventID")) is str
                and ((type(get("eventName")) is str and type(get("eventSource")) is str)
                     or (get("eventType") == _INSIGHT and get("eventName") is None
                         and get("eventSource") is None))):
            rejected.append(Rejected(i, _reason(item), _raw(item)))
            continue
        # Inlined top level of _prepare(): this loop runs once per event. The item is updated
        # in place (no copy); _raw() turns serialised fields back into JSON for the quarantine.
        row = item
        unknown = None
        if not item.keys() <= known:
            unknown = {k: v for k, v in item.items() if k not in known}
        try:
            structured = []
            for name, sub in structs:
                value = get(name)
                if type(value) is not dict:
                    if value is not None:
                        raise _WrongType
                elif sub.json_fields or sub.structs or not value.keys() <= sub.known:
                    structured.append((name, *_prepare(value, sub, dumps)))
            for name, sub in lists:
                extra = _list_unknowns(get(name), sub)
                if extra is not None:
                    unknown = unknown or {}
                    unknown[name] = extra
            serialised = [(name, dumps(value)) for name in json_fields
                          if (value := get(name)) is not None]
            for name, _, extra in structured:
                if extra is not None:
                    unknown = unknown or {}
                    unknown[name] = extra
            unknown_text = None if unknown is None else dumps(unknown)
        except _WrongType:
            rejected.append(Rejected(i, _reason(item), _raw(item)))
            continue
        except _LoneSurrogate:
            rejected.append(Rejected(i, _LoneSurrogate.reason, _raw(item)))
            continue
        # Checked before any change: a rejected record is quarantined exactly as it was read.
        for name, text in serialised:
            row[name] = text
        for name, new, _ in structured:
            row[name] = new
        rows.append(row)
        unknowns.append(unknown_text)
        kept.append(i)
    if not rows:
        return None, rejected
    try:
        array = pa.array(rows, type=_LAYOUT.row_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
        array, rows, unknowns, kept = _convert_one_by_one(items, rows, unknowns, kept, rejected)
        if array is None:
            return None, rejected
    table = pa.Table.from_struct_array(array)
    times = table.column(_LAYOUT.time_index)
    try:
        parsed = times.cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        table, unknowns, parsed = _drop_bad_times(items, table, unknowns, kept, rejected)
        if table is None:
            return None, rejected
    table = table.set_column(_LAYOUT.time_index, schema.arrow_schema().field("eventTime"), parsed)
    n = table.num_rows
    table = table.append_column(schema.UNKNOWN_FIELDS, pa.array(unknowns, type=pa.string()))
    table = table.append_column(schema.SOURCE_OBJECT, pa.array([source] * n, type=pa.string()))
    table = table.append_column(schema.INTEGRITY_STATUS, pa.array(["unchecked"] * n, pa.string()))
    table = table.append_column(schema.COVERING_DIGEST, pa.nulls(n, pa.string()))
    rejected.sort(key=lambda r: r.index)
    # Same types by construction: re-label with the lake schema instead of a per-column cast.
    return pa.Table.from_arrays(table.columns, schema=schema.arrow_schema()), rejected


def _convert_one_by_one(
    items: list[Any],
    rows: list[dict[str, Any]],
    unknowns: list[bytes | None],
    kept: list[int],
    rejected: list[Rejected],
) -> tuple[pa.Array | None, list[dict[str, Any]], list[bytes | None], list[int]]:
    """Slow path, only for a batch that failed: find exactly which records have wrong types."""
    good_rows, good_unknowns, good_kept = [], [], []
    for row, unknown, index in zip(rows, unknowns, kept, strict=True):
        try:
            pa.array([row], type=_LAYOUT.row_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            rejected.append(Rejected(index, _reason(items[index]), _raw(items[index])))
            continue
        good_rows.append(row)
        good_unknowns.append(unknown)
        good_kept.append(index)
    if not good_rows:
        return None, [], [], []
    return pa.array(good_rows, type=_LAYOUT.row_type), good_rows, good_unknowns, good_kept


def _drop_bad_times(
    items: list[Any],
    table: pa.Table,
    unknowns: list[bytes | None],
    kept: list[int],
    rejected: list[Rejected],
) -> tuple[pa.Table | None, list[bytes | None], pa.ChunkedArray]:
    ts_type = pa.timestamp("us", tz="UTC")
    mask = []
    for value in table.column(_LAYOUT.time_index).to_pylist():
        try:
            pa.scalar(value).cast(ts_type)
            mask.append(True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            mask.append(False)
    for ok, index in zip(mask, kept, strict=True):
        if not ok:
            value = items[index].get("eventTime")
            reason = f"eventTime: {_short(value, 60)} is not an ISO-8601 UTC timestamp"
            rejected.append(Rejected(index, reason, _raw(items[index])))
    if not any(mask):
        return None, [], pa.chunked_array([], ts_type)
    table = table.filter(pa.array(mask))
    unknowns = [u for u, ok in zip(unknowns, mask, strict=True) if ok]
    return table, unknowns, table.column(_LAYOUT.time_index).cast(ts_type)


def load(data: bytes, limit: int = DEFAULT_MAX_BYTES) -> tuple[bytes, str]:
    """An object's uncompressed text and its sha256 (what digests list), in one pass."""
    text = decompress(data, limit)
    return text, hashlib.sha256(text).hexdigest()


def typed_table(parts: list[tuple[list[Any], str]]) -> pa.Table | None:
    """The fast path's table for files `typed.decode` accepted, or None (see typed.table)."""
    return typed.table(parts, _dumps)


def parse_text(text: bytes, source: str) -> tuple[str, pa.Table | None, int, list[Rejected]]:
    """The general path: (container, table, records read, rejected); raises BadInput or
    NotEvents for the whole file."""
    try:
        container, items = split_container(text)
        table, rejected = to_table(items, source)
    except _NeedsExactParse:
        container, items = split_container(text, exact=True)
        table, rejected = to_table(items, source, exact=True)
    return container, table, len(items), rejected


def parse(data: bytes, source: str, limit: int = DEFAULT_MAX_BYTES) -> Parsed:
    """Decode one object's bytes into a table; raises BadInput (whole file bad) or NotEvents."""
    text, digest = load(data, limit)
    decoded = typed.decode(text)
    table = None if decoded is None else typed_table([(decoded, source)])
    if decoded is not None and table is not None:
        return Parsed(digest, len(text), "records", table, len(decoded))
    container, table, count, rejected = parse_text(text, source)
    return Parsed(digest, len(text), container, table, count, rejected)
