"""The fast path for ordinary CloudTrail log files: one typed decode, no per-record Python work.

Nearly every file AWS delivers is a `{"Records":[...]}` envelope whose records hold only known
fields with their documented types. msgspec decodes such a file straight into typed structs and
checks every field in C. Nested objects (`userIdentity`, `tlsDetails`, `resources`) stay raw text
and are converted once per distinct text (a trail repeats the same identities over and over);
the variant objects (`requestParameters`, ...) are re-serialised exactly as the general path does.

Anything unexpected (an unknown field, a wrong type, an insight event, another container, JSON
the general path would have to re-parse exactly) makes `table()` return None and records.py's
general path handles the file, so both paths store the same rows (tests/test_typed.py compares).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
import orjson
import pyarrow as pa
from msgspec.structs import astuple

from . import schema

# Fields a record cannot lack (records.to_table checks the same four; insight events, which lack
# eventName and eventSource, take the general path).
REQUIRED = ("eventTime", "eventID", "eventName", "eventSource")


def _scalar(arrow: pa.DataType) -> Any:
    if pa.types.is_boolean(arrow):
        return bool
    if pa.types.is_integer(arrow):
        return int
    if pa.types.is_floating(arrow):
        return float
    if pa.types.is_string(arrow) or pa.types.is_timestamp(arrow):  # eventTime: cast after
        return str
    raise TypeError(f"no msgspec type for {arrow}")


def _struct(plan: schema.StructPlan, name: str) -> Any:
    """A msgspec struct type for a nested object: its JSON fields raw, its own fields typed,
    unknown keys refused (the general path keeps those in unknown_fields)."""
    subs, lists = dict(plan.structs), dict(plan.lists)
    fields: list[tuple[Any, ...]] = []
    for f in plan.arrow:
        if f.name in plan.json_fields:
            kind: Any = msgspec.Raw
        elif f.name in subs:
            kind = _struct(subs[f.name], f"{name}_{f.name}") | None
        elif f.name in lists:
            kind = list[_struct(lists[f.name], f"{name}_{f.name}") | None] | None
        else:
            kind = _scalar(f.type) | None
        fields.append((f.name, kind, None))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)


@cache
def _decoder() -> msgspec.json.Decoder:
    """Decoder of the envelope; nested objects and variant fields are kept as raw JSON."""
    plan = schema.record_plan()
    fields: list[tuple[Any, ...]] = []
    for f in plan.arrow:
        if f.name in REQUIRED:
            fields.append((f.name, _scalar(f.type)))
        elif pa.types.is_struct(f.type) or pa.types.is_list(f.type) or f.name in plan.json_fields:
            fields.append((f.name, msgspec.Raw, None))
        else:
            fields.append((f.name, _scalar(f.type) | None, None))
    record = msgspec.defstruct("Record", fields, kw_only=True, forbid_unknown_fields=True)
    envelope = msgspec.defstruct("Envelope", [("Records", list[record])],
                                 forbid_unknown_fields=True)
    return msgspec.json.Decoder(envelope)


@cache
def _nested_decoder(name: str) -> msgspec.json.Decoder:
    """Decoder of one nested top-level field (`userIdentity`, `tlsDetails`, `resources`)."""
    plan = schema.record_plan()
    if name in dict(plan.lists):
        return msgspec.json.Decoder(list[_struct(dict(plan.lists)[name], name) | None] | None)
    return msgspec.json.Decoder(_struct(dict(plan.structs)[name], name) | None)


def _variant(values: list[Any], dumps: Any) -> pa.Array:
    """A JSON-text column, serialised like records.to_table does (parse, then `dumps`)."""
    if values.count(None) == len(values):  # most variant fields are absent from most events
        return pa.nulls(len(values), pa.string())
    loads = orjson.loads
    parsed = [None if raw is None else loads(bytes(raw)) for raw in values]
    return pa.array([None if value is None else dumps(value) for value in parsed], pa.string())


def _nested(values: list[Any], name: str, dumps: Any) -> pa.Array:
    """A struct (or list of structs) column, decoded and converted once per distinct raw text."""
    index: dict[bytes | None, int] = {}
    positions: list[int] = []
    for raw in values:
        key = None if raw is None else bytes(raw)
        position = index.get(key)
        if position is None:
            position = index[key] = len(index)
        positions.append(position)
    decoder = _nested_decoder(name)

    def text(raw: Any) -> str | None:  # a JSON field inside, e.g. userIdentity.inScopeOf
        if not isinstance(raw, msgspec.Raw):
            raise TypeError(type(raw).__name__)
        value = orjson.loads(bytes(raw))
        return None if value is None else dumps(value).decode()

    distinct = [None if key is None else msgspec.to_builtins(decoder.decode(key), enc_hook=text)
                for key in index]
    array = pa.array(distinct, schema.record_plan().arrow.field(name).type)
    if len(distinct) == len(values):
        return array
    return array.take(pa.array(positions, pa.int32()))


def decode(text: bytes) -> list[Any] | None:
    """The typed records of an ordinary log file, or None when it needs the general path."""
    try:
        records = _decoder().decode(text).Records
    except (msgspec.DecodeError, RecursionError):
        return None
    return records or None


def table(parts: list[tuple[list[Any], str]], dumps: Any) -> pa.Table | None:
    """One lake table for the decoded records of one or more files (with each file's source), or
    None when any value needs the general path.

    Several files at once: each column is built with one call, so per-call costs are shared.
    `dumps` serialises a variant value (records.py passes its own, so both paths write the same
    text) and raises to give up.
    """
    records = parts[0][0] if len(parts) == 1 else [r for recs, _ in parts for r in recs]
    plan = schema.record_plan()
    arrays: list[pa.Array] = []
    try:
        # Struct fields are declared in schema order: one pass over the records, then columns.
        columns = zip(*map(astuple, records), strict=True)
        for f, column in zip(plan.arrow, columns, strict=True):
            values = list(column)
            if f.name in plan.json_fields:
                arrays.append(_variant(values, dumps))
            elif pa.types.is_struct(f.type) or pa.types.is_list(f.type):
                arrays.append(_nested(values, f.name, dumps))
            elif pa.types.is_timestamp(f.type):
                arrays.append(pa.array(values, pa.string()).cast(f.type))
            else:
                arrays.append(pa.array(values, f.type))
    except Exception:  # any surprise: the general path decides, and explains what it rejects
        return None
    n = len(records)
    sources = [source for recs, source in parts for _ in range(len(recs))]
    arrays += [pa.nulls(n, pa.string()),  # unknown_fields: a file with any takes the other path
               pa.array(sources, pa.string()),
               pa.array(["unchecked"] * n, pa.string()),
               pa.nulls(n, pa.string())]
    return pa.Table.from_arrays(arrays, schema=schema.arrow_schema())
