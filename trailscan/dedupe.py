"""Exact re-deliveries are stored once; records that share an eventID but differ are all kept.

Only eventIDs seen more than once (in this run, or already in the lake for the same day) are
compared in full, so the common case costs one narrow scan of the new eventIDs. Of identical
copies, the lake keeps the one already stored, else the one from the first source object by name
(for CloudTrail keys: the earliest delivery), whichever worker read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .lake import PARQUET_OPTIONS, Lake, NewFile, _fsync, bound_memory


@dataclass
class DedupeResult:
    files: list[NewFile]
    duplicates: int = 0
    conflicting_event_ids: int = 0
    per_source: dict[str, int] = field(default_factory=dict)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def dedupe(lake: Lake, files: list[NewFile]) -> DedupeResult:
    files = [f for f in files if f.rows]
    if not files:
        return DedupeResult(files)
    new = [str(f.staging) for f in files]
    old = [str(p) for p in lake.data_files({f.event_date for f in files})]
    con = duckdb.connect()
    bound_memory(con, lake.staging / "duckdb-spill")  # 10M+ eventIDs per run must fit
    con.execute("CREATE TEMP TABLE n AS SELECT eventID FROM read_parquet(?)", [new])
    query = "CREATE TEMP TABLE cand AS SELECT eventID FROM n GROUP BY eventID HAVING count(*) > 1"
    params: list[object] = []
    if old:
        query += (" UNION SELECT eventID FROM read_parquet(?) WHERE eventID IN "
                  "(SELECT eventID FROM n)")
        params.append(old)
    con.execute(query, params)
    if not con.execute("SELECT count(*) FROM cand").fetchone()[0]:
        return DedupeResult(files)
    content = ", ".join(_quote(c) for c in schema.data_columns())
    parts = [f"SELECT 1 AS origin, filename, file_row_number, source_object, eventID, "
             f"hash({content}) AS h FROM read_parquet(?, filename = true, file_row_number = "
             f"true) WHERE eventID IN (SELECT eventID FROM cand)"]
    params = [new]
    if old:
        parts.append(parts[0].replace("SELECT 1 AS origin", "SELECT 0 AS origin"))
        params.append(old)
    con.execute("CREATE TEMP TABLE r AS SELECT *, row_number() OVER (PARTITION BY eventID, h "
                "ORDER BY origin, source_object, filename, file_row_number) AS rn FROM (" +
                " UNION ALL ".join(parts) + ")", params)
    drops = con.execute("SELECT filename, file_row_number, source_object FROM r "
                        "WHERE origin = 1 AND rn > 1").fetchall()
    conflicts = con.execute(
        "SELECT count(*) FROM (SELECT eventID FROM r WHERE rn = 1 GROUP BY eventID "
        "HAVING count(DISTINCT h) > 1 AND bool_or(origin = 1))").fetchone()[0]
    con.close()
    by_file: dict[str, set[int]] = {}
    for filename, row, _ in drops:
        by_file.setdefault(filename, set()).add(row)
    out = [_rewrite(f, by_file[str(f.staging)]) if str(f.staging) in by_file else f
           for f in files]
    per_source = Counter(source for _, _, source in drops)
    return DedupeResult(out, len(drops), conflicts, dict(per_source))


def _rewrite(new: NewFile, drop: set[int]) -> NewFile:
    """Copy a staging file without the given rows (streaming, one batch at a time)."""
    target = new.staging.with_suffix(".dedup")
    offset = rows = 0
    with pq.ParquetWriter(target, schema.arrow_schema(), **PARQUET_OPTIONS) as writer:
        for batch in pq.ParquetFile(new.staging).iter_batches(batch_size=65536):
            keep = [offset + i not in drop for i in range(batch.num_rows)]
            offset += batch.num_rows
            kept = batch.filter(pa.array(keep))
            rows += kept.num_rows
            if kept.num_rows:
                writer.write_batch(kept)
    _fsync(target)
    target.replace(new.staging)
    return NewFile(Path(new.staging), new.event_date, rows)
