"""`trailscan shell`: an interactive SQL prompt on one lake connection with every view loaded.

One connection for the session, so temporary tables and settings persist between statements.
Statements end with `;`; dot commands switch the dialect (duckdb or athena) and output format.
Input and output are streams passed in, so the prompt is tested like any other function.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, BinaryIO, TextIO

from .errors import TrailscanError, UsageError
from .lake import Lake
from .output import FORMATS, render

HELP = """Statements end with ';'. Views: cloudtrail, cloudtrail_logs (Athena's table), findings,
quarantine, manifest, integrity, integrity_problems.
  .dialect duckdb|athena   SQL dialect (athena: queries written for AWS's Athena table)
  .format table|csv|json|ndjson
  .tables                  list the views
  .help                    this text
  .quit                    leave (or end of input)
"""


class Shell:
    """State of one prompt session: the connection, the dialect, the output format."""

    def __init__(self, con: Any, out: BinaryIO, dialect: str = "duckdb", fmt: str = "table"):
        self.con, self.out, self.dialect, self.fmt = con, out, dialect, fmt

    def say(self, text: str) -> None:
        self.out.write(text.encode() + b"\n")

    def command(self, line: str) -> bool:
        """Run one dot command; False means quit."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in (".quit", ".exit", ".q"):
            return False
        if name == ".help":
            self.say(HELP.rstrip())
        elif name == ".tables":
            names = self.con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                     "AND view_name NOT LIKE '\\_%' ESCAPE '\\' "
                                     "ORDER BY 1").fetchall()
            self.say("  ".join(n for (n,) in names))
        elif name == ".dialect" and arg in ("duckdb", "athena"):
            self.dialect = arg
            self.say(f"dialect {arg}")
        elif name == ".format" and arg in FORMATS and arg != "parquet":
            self.fmt = arg
            self.say(f"format {arg}")
        else:
            self.say(f"Error: unknown command {line.strip()!r} (.help lists them)")
        return True

    def statement(self, sql: str) -> None:
        """Run one statement; errors are one line and the session goes on."""
        import duckdb

        try:
            if self.dialect == "athena":
                from .athena import translate

                sql = translate(sql)
            relation = self.con.sql(sql)
            if relation is not None:
                fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
                table = fetch()
                if self.dialect == "athena":
                    from .athena import athena_names

                    table = athena_names(table)
                render(table, self.fmt, self.out)
        except TrailscanError as exc:
            self.say(f"Error: {exc}")
        except duckdb.Error as exc:
            self.say(f"Error: SQL error: {str(exc).strip().splitlines()[0]}")


def run_shell(lake_path: str | os.PathLike[str] | None, stdin: TextIO, out: BinaryIO, *,
              dialect: str = "duckdb", interactive: bool = False) -> int:
    """Read statements from `stdin` until `.quit` or end of input; returns the exit code."""
    if dialect not in ("duckdb", "athena"):
        raise UsageError(f"unknown SQL dialect {dialect!r} (choose from duckdb, athena)")
    lake = Lake.open(lake_path)
    con = lake.connect()
    shell = Shell(con, out, dialect)
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        shell.say(f"trailscan shell on {lake.location} ({dialect}); .help for help, .quit to leave")
    buffer: list[str] = []
    try:
        while True:
            prompt = ("   ...> " if buffer else "trailscan> ") if interactive else ""
            try:
                line = input(prompt) if interactive else stdin.readline()
            except EOFError:
                break
            if line == "" and not interactive:
                break
            if interactive and line == "" and not buffer:
                continue
            if not buffer and line.strip().startswith("."):
                if not shell.command(line):
                    break
                continue
            buffer.append(line.rstrip("\n"))
            text = "\n".join(buffer).strip()
            if text.endswith(";"):
                buffer.clear()
                if text.strip(";").strip():
                    shell.statement(text)
            out.flush()
        if buffer and "\n".join(buffer).strip():
            shell.statement("\n".join(buffer))
    except KeyboardInterrupt:
        shell.say("")
    finally:
        con.close()
        out.flush()
    return 0
