"""Output formats for every command that prints rows, defined once."""

from __future__ import annotations

import csv
import io
import re
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import UsageError

FORMATS = ("table", "csv", "json", "ndjson", "parquet")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# C0/C1 controls (ESC starts terminal escape sequences) and bidi overrides, which can make a
# terminal show something other than the data; tab and newline are kept as layout.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text from logs or paths as shown on a terminal: control characters made visible."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                       else f"\\u{ord(m.group()):04x}", text)


def terminal_line(text: str) -> str:
    """terminal_safe, on one line (newlines and tabs shown as escapes too)."""
    return terminal_safe(text).replace("\n", "\\n").replace("\t", "\\t")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def _cell(value: Any) -> str:
    """A CSV/table cell; spreadsheet formula prefixes are neutralised (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        text = _json(value).decode()
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_PREFIXES):
        text = "'" + text
    return text


def render(table: pa.Table, fmt: str, out: BinaryIO) -> None:
    """Write `table` to the binary stream `out` in format `fmt`."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "parquet":
        pq.write_table(table, out)
        return
    rows = table.to_pylist()
    if fmt == "json":
        out.write(orjson.dumps(rows, default=_default, option=orjson.OPT_NON_STR_KEYS
                               | orjson.OPT_INDENT_2) + b"\n")
    elif fmt == "ndjson":
        for row in rows:
            out.write(_json(row) + b"\n")
    elif fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        # The csv module quotes a field only for characters of the line terminator ("\n"):
        # a lone CR would end the row in most readers, so rows holding one are fully quoted.
        quoted = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writerow(table.column_names)
        for row in rows:
            cells = [_cell(v) for v in row.values()]
            (quoted if any("\r" in c for c in cells) else writer).writerow(cells)
        out.write(text.getvalue().encode())
    else:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        grid = Table(show_lines=False)
        for name in table.column_names:  # Text(): values from logs are never rich markup
            grid.add_column(Text(terminal_safe(name)), overflow="fold")
        for row in rows:
            grid.add_row(*[Text(terminal_safe(_cell(v))) for v in row.values()])
        text = io.StringIO()
        Console(file=text, width=200 if not out.isatty() else None).print(grid)
        out.write(text.getvalue().encode())


def emit(table: pa.Table, fmt: str, output: str | None) -> None:
    """Render to a file or to stdout."""
    if output:
        try:
            handle = Path(output).open("wb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        with handle:
            render(table, fmt, handle)
    else:
        if fmt == "parquet" and sys.stdout.isatty():
            raise UsageError("parquet output needs --output FILE")
        render(table, fmt, sys.stdout.buffer)
        sys.stdout.flush()
