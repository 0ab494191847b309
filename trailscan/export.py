"""Detection rules as SQL for other engines (Spark, Trino, Athena), for lakes too big for one
machine.

Rules are DuckDB SQL. Export parses each rule with sqlglot, makes it self-contained (rule
parameters become literals, the shared `ts_*` macros of `rule_params.MACRO_DEFINITIONS` are
expanded at the syntax-tree level, so their logic is written once), rewrites what only DuckDB has
(median/MAD over window frames, `format`, `format_bytes`, `time_bucket`, JSON wildcard paths,
`GROUP BY ALL`, `MATERIALIZED`, named windows, list slices) into portable syntax trees, and lets
sqlglot write the target dialect. A rule that still needs something the target lacks is reported
with the reason instead of being written as broken SQL.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from . import rule_params
from .detections import Rule
from .errors import TrailscanError, UsageError

DIALECTS = ("duckdb", "spark", "trino", "athena")
_SQLGLOT = {"duckdb": "duckdb", "spark": "spark", "trino": "trino", "athena": "athena"}
#: DuckDB's time_bucket origin for sub-day widths (2000-01-03 00:00:00 UTC, in Unix seconds).
_BUCKET_ORIGIN = 946857600
_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800}
#: DuckDB functions that have no portable spelling; left over after rewriting, they make a rule
#: unexportable for that dialect (the reason names them).
_DUCKDB_ONLY = frozenset({"getvariable", "mad", "format_bytes", "time_bucket", "list_filter",
                          "regexp_full_match", "json_type", "string_split", "list_concat",
                          "list_append", *rule_params.MACRO_DEFINITIONS})


class ExportError(UsageError):
    """An export was asked for something that does not exist (an unknown dialect)."""


class NotExpressible(TrailscanError):
    """The SQL needs something the target dialect cannot express (`export_rule` turns it into
    an `ExportedRule` with the reason)."""


@dataclass(frozen=True)
class ExportedRule:
    """One rule in one dialect: `sql` (with its metadata header), or `reason` it has none."""

    rule: Rule
    dialect: str
    sql: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.sql is not None


def header(rule: Rule, dialect: str) -> str:
    """The metadata comment at the top of an exported rule."""
    lines = [f"trailscan rule {rule.id} ({dialect})", f"title: {rule.title}",
             f"severity: {rule.severity}", f"tactics: {', '.join(rule.tactics) or '-'}",
             f"techniques: {', '.join(rule.techniques) or '-'}"]
    if rule.params:
        lines.append("params: " + ", ".join(f"{k}={v!r}" for k, v in rule.params.items()))
    lines.append("input: a table or view `cloudtrail` with the lake's columns "
                 "(trailscan athena-ddl); session time zone UTC")
    lines.append("output: the matching cloudtrail rows (+ optional evidence, finding_principal)")
    return "".join(f"-- {line.replace(chr(10), ' ')}\n" for line in lines)


def export_rule(rule: Rule, dialect: str) -> ExportedRule:
    """`rule` as SQL for `dialect`; never raises for an inexpressible rule, it says why."""
    if dialect not in DIALECTS:
        raise ExportError(f"unknown dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    try:
        body = translate(rule.sql, rule.params, dialect)
    except NotExpressible as exc:
        return ExportedRule(rule, dialect, None, str(exc))
    return ExportedRule(rule, dialect, header(rule, dialect) + body + "\n")


def export_rules(rules: list[Rule], dialect: str) -> list[ExportedRule]:
    return [export_rule(rule, dialect) for rule in rules]


def write_exports(exported: list[ExportedRule], directory: str | os.PathLike[str]) -> list[Path]:
    """One `<rule id>.sql` per exported rule in `directory` (created); the files written."""
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {target}: {exc.strerror or exc}") from None
    written = []
    for item in exported:
        if item.sql is not None:
            path = target / f"{item.rule.id}.sql"
            path.write_text(item.sql.rstrip("\n") + ";\n", encoding="utf-8")
            written.append(path)
    return written


def as_script(exported: list[ExportedRule]) -> str:
    """All exported rules as one script, statements ending with `;`."""
    return "\n".join(item.sql.rstrip("\n") + ";\n" for item in exported if item.sql is not None)


# --- the translation --------------------------------------------------------------------------


def translate(sql: str, params: dict[str, Any], dialect: str) -> str:
    """DuckDB SQL (a rule's, or any query over `cloudtrail`) as self-contained SQL of `dialect`,
    `params` inlined; raises NotExpressible."""
    import sqlglot
    from sqlglot.errors import ErrorLevel, ParseError, UnsupportedError

    log = logging.getLogger("sqlglot")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        tree = sqlglot.parse_one(sql.strip().rstrip(";"), read="duckdb")
    except ParseError as exc:
        raise NotExpressible(f"cannot parse the rule: {' '.join(str(exc).split())[:160]}") from None
    finally:
        log.setLevel(level)
    tree = _inline_params(tree, params)
    tree = expand_macros(tree)
    if dialect != "duckdb":
        for rewrite in _REWRITES:
            tree = rewrite(tree, dialect)
        leftover = sorted({_name(n) for n in _anonymous(tree)} & _DUCKDB_ONLY)
        if leftover:
            raise NotExpressible(f"no {dialect} equivalent for {', '.join(leftover)}")
    try:
        out = tree.sql(dialect=_SQLGLOT[dialect], pretty=True, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise NotExpressible(" ".join(str(exc).split())) from None
    if dialect != "duckdb":  # whatever sqlglot passed through by name (not as Anonymous)
        names = {m.lower() for m in re.findall(r"\b([A-Za-z_]+)\s*\(", out)} & _DUCKDB_ONLY
        if names:
            raise NotExpressible(f"no {dialect} equivalent for {', '.join(sorted(names))}")
    return out


def _name(node: Any) -> str:
    return str(node.this).lower()


def _anonymous(tree: Any) -> list[Any]:
    from sqlglot import exp

    return list(tree.find_all(exp.Anonymous))


def _transform(tree: Any, func: Callable[[Any], Any]) -> Any:
    """Apply `func` bottom-up (sqlglot's transform is top-down; nested calls need inner first)."""
    for node in list(tree.walk(bfs=False))[::-1]:
        new = func(node)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _literal(value: Any) -> Any:
    from sqlglot import exp

    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def _inline_params(tree: Any, params: dict[str, Any]) -> Any:
    """`getvariable('name')` -> the parameter's value as a literal."""
    from sqlglot import exp

    def inline(node: Any) -> Any:
        if isinstance(node, exp.Anonymous) and _name(node) == "getvariable":
            (arg,) = node.expressions
            if not isinstance(arg, exp.Literal) or arg.this not in params:
                raise NotExpressible(f"getvariable({arg.sql()}) names no parameter of the rule")
            return _literal(params[arg.this])
        return node

    return _transform(tree, inline)


@cache
def _macro_bodies() -> dict[str, tuple[tuple[str, ...], Any]]:
    import sqlglot

    return {name: (args, sqlglot.parse_one(body, read="duckdb"))
            for name, (args, body) in rule_params.MACRO_DEFINITIONS.items()}


def _substitute(body: Any, bindings: dict[str, Any]) -> Any:
    """The macro body with each parameter (`u`, `u.a.b`) replaced by the call's argument."""
    from sqlglot import exp

    def sub(node: Any) -> Any:
        if isinstance(node, exp.Column):
            parts = node.parts
            if parts and parts[0].name in bindings:
                value = bindings[parts[0].name].copy()
                if not isinstance(value, exp.Column | exp.Literal | exp.Func | exp.Paren
                                  | exp.Dot | exp.Bracket):
                    value = exp.Paren(this=value)  # `a || b` as an argument stays one operand
                return exp.Dot.build([value, *[p.copy() for p in parts[1:]]]) if len(
                    parts) > 1 else value
        return node

    return _transform(body.copy(), sub)


def expand_macros(tree: Any) -> Any:
    """Replace every `ts_*` macro call by its definition (repeatedly: macros use macros)."""
    from sqlglot import exp

    bodies = _macro_bodies()
    for _ in range(10):
        calls = [n for n in _anonymous(tree) if _name(n) in bodies]
        if not calls:
            return tree

        def expand(node: Any) -> Any:
            if isinstance(node, exp.Anonymous) and _name(node) in bodies:
                names, body = bodies[_name(node)]
                if len(names) != len(node.expressions):
                    raise NotExpressible(f"{_name(node)} takes {len(names)} arguments")
                return exp.Paren(this=_substitute(body, dict(zip(names, node.expressions,
                                                                 strict=True))))
            return node

        tree = _transform(tree, expand)
    raise NotExpressible("macros nest too deeply")


# --- rewrites for engines other than DuckDB ---------------------------------------------------


def _no_materialized(tree: Any, dialect: str) -> Any:
    from sqlglot import exp

    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", None)
    return tree


def _inline_windows(tree: Any, dialect: str) -> Any:
    """`OVER w ... WINDOW w AS (...)` -> the definition written at each use."""
    from sqlglot import exp

    for select in list(tree.find_all(exp.Select)):
        named = {w.this.name: w for w in select.args.get("windows") or []}
        if not named:
            continue
        for window in select.find_all(exp.Window):
            alias = window.args.get("alias")
            if alias is not None and alias.name in named and not window.args.get("spec"):
                definition = named[alias.name]
                window.set("alias", None)
                for key in ("partition_by", "order", "spec"):
                    value = definition.args.get(key)
                    if isinstance(value, list):  # each use gets its own nodes
                        value = [v.copy() for v in value]
                    elif value is not None:
                        value = value.copy()
                    window.set(key, value)
        select.set("windows", None)
    return tree


def _interval_parts(node: Any) -> tuple[float, str] | None:
    """(amount, unit) of a literal interval, also `INTERVAL 1 DAY * 14` (params inlined)."""
    from sqlglot import exp

    if isinstance(node, exp.Paren):
        return _interval_parts(node.this)
    if isinstance(node, exp.Interval) and isinstance(node.this, exp.Literal):
        unit = node.unit.name.upper().rstrip("S") if node.unit else ""
        try:
            amount = float(node.this.this)
        except ValueError:
            return None
        return (amount, unit) if unit in _SECONDS else None
    if isinstance(node, exp.Mul):
        for a, b in ((node.this, node.expression), (node.expression, node.this)):
            inner = _interval_parts(a)
            if inner is not None and isinstance(b, exp.Literal) and not b.is_string:
                return inner[0] * float(b.this), inner[1]
    return None


def _interval(amount: float, unit: str) -> Any:
    """A literal interval; a fractional amount goes down to whole seconds."""
    from sqlglot import exp

    if amount != int(amount):
        amount, unit = amount * _SECONDS[unit], "SECOND"
        if amount != int(amount):
            raise NotExpressible(f"interval of {amount} seconds is not whole")
    return exp.Interval(this=exp.Literal.string(str(int(amount))), unit=exp.var(unit))


def _fold_intervals(tree: Any, dialect: str) -> Any:
    """`INTERVAL 1 DAY * 14` -> `INTERVAL '14' DAY`; window frame bounds in one unit (Spark
    wants literal bounds of the same interval type)."""
    from sqlglot import exp

    def fold(node: Any) -> Any:
        if isinstance(node, exp.Mul):
            parts = _interval_parts(node)
            if parts is not None:
                return _interval(*parts)
        return node

    tree = _transform(tree, fold)
    for spec in tree.find_all(exp.WindowSpec):
        bounds = {k: _interval_parts(spec.args.get(k)) for k in ("start", "end")}
        present = {k: v for k, v in bounds.items() if v is not None}
        if len(present) < 2:
            continue
        seconds = min(_SECONDS[u] for _, u in present.values())
        unit = next(u for u, s in _SECONDS.items() if s == seconds)
        for key, (amount, old) in present.items():
            spec.set(key, _interval(amount * _SECONDS[old] / seconds, unit))
    return tree


def _group_by_all(tree: Any, dialect: str) -> Any:
    """`GROUP BY ALL` -> the positions of the non-aggregate select items (Trino reads `GROUP BY
    ALL` as a set quantifier; positions mean the same everywhere)."""
    from sqlglot import exp

    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        positions = []
        for i, item in enumerate(select.expressions, 1):
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column)
                                              and isinstance(item.this, exp.Star)):
                raise NotExpressible("GROUP BY ALL with SELECT *")
            aggregates = [a for a in item.find_all(exp.AggFunc)
                          if not a.find_ancestor(exp.Window)]
            if not aggregates and not item.find(exp.Window):
                positions.append(exp.Literal.number(i))
        select.set("group", exp.Group(expressions=positions))
    return tree


def _array_median(array: Any) -> Any:
    """Median of the non-null numbers of an array: the mean of its two middle values when sorted
    (DuckDB's median, i.e. the interpolated 0.5 quantile)."""
    from sqlglot import exp

    v = exp.to_identifier("_v")
    values = exp.ArraySort(this=exp.ArrayFilter(this=array, expression=exp.Lambda(
        this=exp.Not(this=exp.Is(this=v.copy(), expression=exp.Null())), expressions=[v])),
        nulls_first=exp.false())
    size = exp.ArraySize(this=values.copy())

    def at(index: Any) -> Any:
        return exp.func("element_at", values.copy(), exp.cast(index, "INT"))

    # Trees built by hand get no automatic parentheses: every compound operand is a Paren.
    low = at(exp.Floor(this=exp.Div(this=exp.Paren(this=exp.Add(
        this=size.copy(), expression=exp.Literal.number(1))), expression=exp.Literal.number(2.0))))
    high = at(exp.Add(this=exp.Floor(this=exp.Div(this=size.copy(), expression=exp.Literal.number(
        2.0))), expression=exp.Literal.number(1)))
    middle = exp.cast(exp.Paren(this=exp.Add(this=low, expression=high)), "DOUBLE")
    middle = exp.Div(this=middle, expression=exp.Literal.number(2.0))
    return exp.Case(ifs=[exp.If(this=exp.EQ(this=size, expression=exp.Literal.number(0)),
                                true=exp.Null())], default=middle)


def _array_mad(array: Any) -> Any:
    """Median absolute deviation from the median, of an array (DuckDB's `mad`)."""
    from sqlglot import exp

    x = exp.to_identifier("_x")
    median = _array_median(array.copy())
    deviations = exp.Transform(this=exp.ArrayFilter(this=array, expression=exp.Lambda(
        this=exp.Not(this=exp.Is(this=x.copy(), expression=exp.Null())), expressions=[x.copy()])),
        expression=exp.Lambda(this=exp.Abs(this=exp.Sub(this=x.copy(), expression=median)),
                              expressions=[x.copy()]))
    return _array_median(deviations)


def _median_mad(tree: Any, dialect: str) -> Any:
    """median(x) / mad(x), also over window frames (which Spark's median and Trino lack):
    collect the frame's values into an array, then take the array's median."""
    from sqlglot import exp

    def is_mad(node: Any) -> bool:
        return isinstance(node, exp.Anonymous) and _name(node) == "mad"

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Window) and (isinstance(node.this, exp.Median)
                                             or is_mad(node.this)):
            func = node.this
            arg = func.this if isinstance(func, exp.Median) else func.expressions[0]
            collected = node.copy()
            collected.set("this", exp.ArrayAgg(this=arg.copy()))
            return (_array_mad if is_mad(func) else _array_median)(collected)
        if isinstance(node, exp.Median) and not isinstance(node.parent, exp.Window):
            return _array_median(exp.ArrayAgg(this=node.this.copy()))
        if is_mad(node) and not isinstance(node.parent, exp.Window):
            return _array_mad(exp.ArrayAgg(this=node.expressions[0].copy()))
        return node

    return _transform(tree, rewrite)


def _format(tree: Any, dialect: str) -> Any:
    """DuckDB's `format('{} x {}', ...)` (fmt syntax) -> printf-style `%s` placeholders."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Format) and isinstance(node.this, exp.Literal):
            text = node.this.this
            if re.search(r"\{[^}]", text):
                raise NotExpressible(f"format() pattern with specifiers: {text[:40]!r}")
            node.set("this", exp.Literal.string(text.replace("%", "%%").replace("{}", "%s")))
        return node

    return _transform(tree, rewrite)


def _format_bytes(tree: Any, dialect: str) -> Any:
    """format_bytes(n) -> '12.3 GiB'-style text from a CASE (evidence text only)."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if not (isinstance(node, exp.Anonymous) and _name(node) == "format_bytes"):
            return node
        value = exp.Paren(this=node.expressions[0].copy())
        ifs = []
        for power, unit in ((4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
            size = exp.Literal.number(1024 ** power)
            scaled = exp.Round(this=exp.Div(this=value.copy(), expression=exp.Literal.number(
                float(1024 ** power))), decimals=exp.Literal.number(1))
            ifs.append(exp.If(this=exp.GTE(this=value.copy(), expression=size),
                              true=exp.func("concat", exp.cast(scaled, "VARCHAR"),
                                            exp.Literal.string(f" {unit}"))))
        default = exp.func("concat", exp.cast(value.copy(), "VARCHAR"),
                           exp.Literal.string(" bytes"))
        return exp.Case(ifs=ifs, default=default)

    return _transform(tree, rewrite)


def _time_bucket(tree: Any, dialect: str) -> Any:
    """time_bucket(INTERVAL n UNIT, ts) -> bucket start from Unix seconds, DuckDB's origin."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if not isinstance(node, exp.DateBin):
            return node
        parts = _interval_parts(node.this)
        if parts is None or node.args.get("origin") is not None:
            raise NotExpressible("time_bucket with a non-literal width or an origin")
        width = int(parts[0] * _SECONDS[parts[1]])
        if _SECONDS[parts[1]] >= _SECONDS["DAY"] and parts[1] != "DAY":
            raise NotExpressible("time_bucket wider than days")
        seconds = exp.func("unix_seconds" if dialect == "spark" else "to_unixtime",
                           node.expression.copy())
        start = exp.Add(this=exp.Mul(this=exp.Floor(this=exp.Div(
            this=exp.Paren(this=exp.Sub(this=seconds, expression=exp.Literal.number(
                _BUCKET_ORIGIN))), expression=exp.Literal.number(float(width)))),
            expression=exp.Literal.number(width)), expression=exp.Literal.number(_BUCKET_ORIGIN))
        if dialect == "spark":
            return exp.func("timestamp_seconds", exp.cast(start, "BIGINT"))
        return exp.func("from_unixtime", start)

    return _transform(tree, rewrite)


def _json_path_split(path: str) -> tuple[str, str] | None:
    """'$.a.items[*].b' -> ('$.a.items', '$.b'); None without a wildcard."""
    if "[*]" not in path:
        return None
    base, _, rest = path.partition("[*]")
    if "[*]" in rest:
        raise NotExpressible(f"JSON path with two wildcards: {path}")
    return base, "$" + rest


def _json_items(value: Any, base: str, dialect: str) -> Any:
    """The elements of the JSON array at `base` as an array of JSON text (scalars unquoted)."""
    from sqlglot import exp

    if dialect == "spark":
        return exp.func("from_json", exp.func("get_json_object", value, exp.Literal.string(base)),
                        exp.Literal.string("array<string>"))
    return exp.cast(exp.func("json_extract", value, exp.Literal.string(base)),
                    exp.DataType.build("ARRAY(JSON)", dialect="trino"))


def _json(tree: Any, dialect: str) -> Any:
    """JSON functions DuckDB has and others spell differently: wildcard paths (a list per row),
    json_type, casts to JSON."""
    from sqlglot import exp

    def path_text(node: Any) -> str | None:
        path = node.expression
        if isinstance(path, exp.JSONPath):
            return path.sql(dialect="duckdb").strip("'")
        return path.this if isinstance(path, exp.Literal) else None

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.JSONExtract | exp.JSONExtractScalar):
            path = path_text(node)
            split = _json_path_split(path) if path else None
            if split is None:
                return node
            base, rest = split
            scalar = isinstance(node, exp.JSONExtractScalar)
            if rest == "$" and scalar and dialect != "spark":  # a list of strings
                items = exp.cast(exp.func("json_extract", node.this.copy(),
                                          exp.Literal.string(base)),
                                 exp.DataType.build("ARRAY(VARCHAR)", dialect="trino"))
            else:
                items = _json_items(node.this.copy(), base, dialect)
            if rest != "$":
                e = exp.to_identifier("_e")
                inner = (exp.JSONExtractScalar if scalar else exp.JSONExtract)(
                    this=exp.column(e.copy()), expression=exp.Literal.string(rest))
                items = exp.Transform(this=items, expression=exp.Lambda(this=inner,
                                                                        expressions=[e]))
            # DuckDB: NULL for a NULL document, an empty list when the path is missing
            return exp.Case(ifs=[exp.If(this=exp.Is(this=node.this.copy(), expression=exp.Null()),
                                        true=exp.Null())],
                            default=exp.Coalesce(this=items, expressions=[
                                exp.Array(expressions=[])]))
        json_type = getattr(exp, "JSONType", None)
        if json_type is not None and isinstance(node, json_type):
            node = exp.Anonymous(this="json_type", expressions=[node.this, node.expression])
        if isinstance(node, exp.Anonymous) and _name(node) == "json_type":
            value, path = node.expressions
            text = (exp.func("get_json_object", value.copy(), path.copy()) if dialect == "spark"
                    else exp.func("json_format", exp.func("json_extract", value.copy(),
                                                          path.copy())))
            first = exp.func("substr", exp.func("ltrim", text), exp.Literal.number(1),
                             exp.Literal.number(1))
            return exp.Case(ifs=[
                exp.If(this=exp.EQ(this=first.copy(), expression=exp.Literal.string("[")),
                       true=exp.Literal.string("ARRAY")),
                exp.If(this=exp.EQ(this=first.copy(), expression=exp.Literal.string("{")),
                       true=exp.Literal.string("OBJECT"))])
        if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.JSON:
            # JSON values are text on Spark (get_json_object returns text)
            return node.this.copy() if dialect == "spark" else exp.func("json_parse",
                                                                        node.this.copy())
        return node

    return _transform(tree, rewrite)


def _lists(tree: Any, dialect: str) -> Any:
    """List functions: slices, len() of a list, list_concat with NULL lists, regexp_full_match."""
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1 and isinstance(
                node.expressions[0], exp.Slice):
            piece = node.expressions[0]
            start, end = piece.this, piece.expression
            if not (isinstance(start, exp.Literal) and isinstance(end, exp.Literal)):
                raise NotExpressible("list slice with non-literal bounds")
            length = int(end.this) - int(start.this) + 1
            return exp.func("slice", node.this.copy(), start.copy(),
                            exp.Literal.number(length))
        if isinstance(node, exp.Length) and isinstance(node.this, exp.ArrayFilter | exp.Array
                                                       | exp.ArrayAgg | exp.Transform):
            return exp.ArraySize(this=node.this.copy())
        if isinstance(node, exp.ArrayConcat):  # DuckDB reads a NULL list as empty
            parts = [node.this, *node.expressions]
            return exp.ArrayConcat(this=exp.Coalesce(this=parts[0].copy(), expressions=[
                exp.Array(expressions=[])]), expressions=[exp.Coalesce(
                    this=p.copy(), expressions=[exp.Array(expressions=[])]) for p in parts[1:]])
        full_match = getattr(exp, "RegexpFullMatch", None)
        if full_match is not None and isinstance(node, full_match):
            node = exp.Anonymous(this="regexp_full_match", expressions=[node.this,
                                                                        node.expression])
        if isinstance(node, exp.Anonymous) and _name(node) == "regexp_full_match":
            value, pattern = node.expressions
            if not isinstance(pattern, exp.Literal):
                raise NotExpressible("regexp_full_match with a non-literal pattern")
            return exp.RegexpLike(this=value.copy(),
                                  expression=exp.Literal.string(f"^(?:{pattern.this})$"))
        return node

    return _transform(tree, rewrite)


def _trino_semantics(tree: Any, dialect: str) -> Any:
    """Trino's regexp_extract gives NULL where DuckDB's (and Spark's) gives '' (no match);
    Trino's arbitrary() already skips NULLs and takes no IGNORE NULLS; Trino appends to an array
    with concat."""
    from sqlglot import exp

    if dialect not in ("trino", "athena"):
        return tree

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.RegexpExtract):
            value = node.this.copy()
            return exp.Coalesce(this=node.copy(), expressions=[exp.Case(ifs=[exp.If(
                this=exp.Not(this=exp.Is(this=value, expression=exp.Null())),
                true=exp.Literal.string(""))])])
        if isinstance(node, exp.IgnoreNulls) and isinstance(node.this, exp.AnyValue):
            return node.this.copy()
        if isinstance(node, exp.ArrayAppend):  # Trino has no array_append; NULL list = empty
            return exp.ArrayConcat(this=exp.Coalesce(this=node.this.copy(), expressions=[
                exp.Array(expressions=[])]), expressions=[exp.Array(expressions=[
                    node.expression.copy()])])
        return node

    return _transform(tree, rewrite)


_REWRITES: tuple[Callable[[Any, str], Any], ...] = (
    # _median_mad before _group_by_all: mad() is not an aggregate to sqlglot, its rewrite is.
    _no_materialized, _inline_windows, _fold_intervals, _median_mad, _group_by_all, _format,
    _format_bytes, _time_bucket, _json, _lists, _trino_semantics,
)
