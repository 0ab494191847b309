"""Stream parsed rows into per-day staging Parquet files with bounded memory.

A worker sees files in key order, so rows arrive roughly by day; buffering per day and writing a
row group when a day's buffer fills keeps files few and large, with at most MAX_BUFFERED rows held.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import schema
from .lake import PARQUET_OPTIONS, NewFile, _fsync

ROW_GROUP = 65536  # rows per Parquet row group
MAX_BUFFERED = 131072  # rows buffered per worker across all days
MAX_OPEN = 16  # open writers (days) per worker; the least recently used is closed beyond this


_EPOCH = date(1970, 1, 1)
_MICROS_PER_DAY = 86_400_000_000


def day_numbers(times: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """UTC day numbers of microsecond timestamps by integer arithmetic (no time-zone database)."""
    micros = pc.cast(times, pa.timestamp("us")).cast(pa.int64())
    return pc.floor(pc.divide(micros.cast(pa.float64()), float(_MICROS_PER_DAY))).cast(pa.int64())


def _iso(day_number: int) -> str:
    return (_EPOCH + timedelta(days=day_number)).isoformat()


class DaySink:
    """Accepts tables of any days; writes `<staging>/<name>-<n>.parquet`, one day per file."""

    def __init__(self, staging: Path, name: str) -> None:
        self.staging = staging
        self.name = name
        self.buffers: dict[str, list[pa.Table]] = {}
        self.buffered: dict[str, int] = {}
        self.writers: dict[str, tuple[pq.ParquetWriter, Path, list[int]]] = {}
        self.done: list[NewFile] = []
        self.count = 0

    def add(self, table: pa.Table) -> None:
        days = day_numbers(table["eventTime"])
        bounds = pc.min_max(days)
        first, last = bounds["min"].as_py(), bounds["max"].as_py()
        if first == last:
            self._buffer(_iso(first), table)
        else:
            for day in pc.unique(days).to_pylist():
                self._buffer(_iso(day), table.filter(pc.equal(days, day)))
        while sum(self.buffered.values()) > MAX_BUFFERED:
            self._flush(max(self.buffered, key=self.buffered.__getitem__))

    def _buffer(self, day: str, table: pa.Table) -> None:
        self.buffers.setdefault(day, []).append(table)
        self.buffered[day] = self.buffered.get(day, 0) + table.num_rows
        if self.buffered[day] >= ROW_GROUP:
            self._flush(day)

    def _flush(self, day: str) -> None:
        table = pa.concat_tables(self.buffers.pop(day))
        self.buffered.pop(day)
        if day not in self.writers:
            if len(self.writers) >= MAX_OPEN:
                self._close(next(iter(self.writers)))
            self.count += 1
            path = self.staging / f"{self.name}-{self.count:05d}.parquet"
            writer = pq.ParquetWriter(path, schema.arrow_schema(), **PARQUET_OPTIONS)
            self.writers[day] = (writer, path, [0])
        else:  # move to the end: most recently used
            self.writers[day] = self.writers.pop(day)
        writer, _, rows = self.writers[day]
        writer.write_table(table, row_group_size=ROW_GROUP)
        rows[0] += table.num_rows

    def _close(self, day: str) -> None:
        writer, path, rows = self.writers.pop(day)
        writer.close()
        _fsync(path)
        self.done.append(NewFile(path, day, rows[0]))

    def close(self) -> list[NewFile]:
        for day in list(self.buffers):
            self._flush(day)
        for day in list(self.writers):
            self._close(day)
        return self.done
