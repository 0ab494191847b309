"""The CloudTrail record schema, defined once.

`cloudtrail.schema.json` (JSON Schema) is the single source of truth: the lake's Arrow/Parquet
schema, the per-record conversion plan and the reason given for a rejected record derive from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa

JSON_MARK = "x-trailscan"

#: Columns trailscan adds to every row (not CloudTrail fields, hence snake_case).
UNKNOWN_FIELDS = "unknown_fields"  # JSON text of fields the schema does not know, by path
SOURCE_OBJECT = "source_object"  # path or s3://bucket/key the record came from
INTEGRITY_STATUS = "integrity_status"  # unchecked | verified | failed | unverifiable
COVERING_DIGEST = "covering_digest"  # digest object that lists the source object
PARTITION_COLUMN = "event_date"  # hive partition (directory), UTC date of eventTime

PROVENANCE_FIELDS = (
    pa.field(UNKNOWN_FIELDS, pa.string()),
    pa.field(SOURCE_OBJECT, pa.string(), nullable=False),
    pa.field(INTEGRITY_STATUS, pa.string(), nullable=False),
    pa.field(COVERING_DIGEST, pa.string()),
)

# Required fields live in cloudtrail.schema.json; records.py checks them inline on its hot path.
# Insight events keep eventName/eventSource in insightDetails, so they need not be top-level.
INSIGHT_EVENT_TYPE = "AwsCloudTrailInsight"


@cache
def json_schema() -> dict[str, Any]:
    """The shipped JSON Schema of one CloudTrail record."""
    text = resources.files("trailscan").joinpath("cloudtrail.schema.json").read_text("utf-8")
    return json.loads(text)


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        path = node["$ref"].removeprefix("#/").split("/")
        node = root
        for part in path:
            node = node[part]
    return node


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("type", [])
    return {t} if isinstance(t, str) else set(t)


@dataclass(frozen=True)
class StructPlan:
    """How to turn one JSON object into an Arrow struct value.

    `known` lets a C-level subset check (`keys() <= known`) skip all work for ordinary records;
    `json_fields` must be serialised to text before Arrow sees them; `structs` recurse.
    """

    known: frozenset[str]
    json_fields: tuple[str, ...] = ()
    structs: tuple[tuple[str, StructPlan], ...] = ()
    lists: tuple[tuple[str, StructPlan], ...] = ()  # arrays of objects
    arrow: pa.DataType = field(default_factory=pa.null)


def _arrow_type(node: dict[str, Any],
                root: dict[str, Any]) -> tuple[pa.DataType, StructPlan | None]:
    node = _resolve(node, root)
    if node.get(JSON_MARK) == "json":
        return pa.string(), None
    types = _types(node) - {"null"}
    if node.get("format") == "date-time":
        return pa.timestamp("us", tz="UTC"), None
    if types == {"object"} and "properties" in node:
        plan = _struct_plan(node, root)
        return plan.arrow, plan
    if types == {"array"}:
        item_type, item_plan = _arrow_type(node["items"], root)
        return pa.list_(item_type), item_plan
    if types == {"boolean"}:
        return pa.bool_(), None
    if types == {"integer"}:
        return pa.int64(), None
    if types == {"number"}:
        return pa.float64(), None
    if types == {"string"}:
        return pa.string(), None
    raise ValueError(f"schema node has no Arrow mapping: {node}")


def _struct_plan(node: dict[str, Any], root: dict[str, Any]) -> StructPlan:
    fields: list[pa.Field] = []
    json_fields: list[str] = []
    structs: list[tuple[str, StructPlan]] = []
    lists: list[tuple[str, StructPlan]] = []
    for name, child in node["properties"].items():
        resolved = _resolve(child, root)
        arrow, plan = _arrow_type(resolved, root)
        fields.append(pa.field(name, arrow))
        if resolved.get(JSON_MARK) == "json":
            json_fields.append(name)
        elif plan is not None and pa.types.is_list(arrow):
            lists.append((name, plan))
        elif plan is not None:
            structs.append((name, plan))
    return StructPlan(
        known=frozenset(node["properties"]),
        json_fields=tuple(json_fields),
        structs=tuple(structs),
        lists=tuple(lists),
        arrow=pa.struct(fields),
    )


@cache
def record_plan() -> StructPlan:
    """Conversion plan for a whole record (top-level fields only, provenance excluded)."""
    root = json_schema()
    return _struct_plan(root, root)


@cache
def arrow_schema() -> pa.Schema:
    """The lake's Parquet schema: CloudTrail fields in documented order, then provenance columns."""
    record_type = record_plan().arrow
    return pa.schema([record_type.field(i) for i in range(record_type.num_fields)]
                     + list(PROVENANCE_FIELDS))


def cloudtrail_columns() -> list[str]:
    """CloudTrail's own column names, in schema order."""
    record_type = record_plan().arrow
    return [record_type.field(i).name for i in range(record_type.num_fields)]


def data_columns() -> list[str]:
    """Columns that make up a record's content (what duplicate detection compares)."""
    return [f.name for f in arrow_schema() if f.name not in {SOURCE_OBJECT, INTEGRITY_STATUS,
                                                             COVERING_DIGEST}]


@cache
def validator() -> Any:
    """A jsonschema validator, used only to explain rejections (never on the fast path)."""
    import jsonschema

    return jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def explain(record: Any) -> str:
    """One-line reason why `record` does not fit the schema (for the quarantine)."""
    import jsonschema

    errors = list(validator().iter_errors(record))
    missing = sorted({e.message.split("'")[1] for e in errors
                      if e.validator == "required" and not e.absolute_path})
    if missing:  # name every missing field, not just the first
        return "record: " + "; ".join(f"'{name}' is a required property" for name in missing)
    error = jsonschema.exceptions.best_match(errors)
    if error is None:
        return "record does not fit the lake schema"
    where = "/".join(str(p) for p in error.absolute_path) or "record"
    message = error.message
    if len(message) > 160:
        message = message[:157] + "..."
    return f"{where}: {message}"
