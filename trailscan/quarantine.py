"""The quarantine: every rejected file or record, kept with a one-line reason."""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO

import orjson

RAW_INLINE_LIMIT = 1 << 20  # larger rejected records are stored as files next to the index


class QuarantineWriter:
    """Writes `<staging>/quarantine/quarantine-<name>.ndjson` and copies of rejected files."""

    def __init__(self, staging: Path, name: str) -> None:
        self.directory = staging / "quarantine"
        self.name = name
        self.run_id = staging.name
        self._index: IO[bytes] | None = None
        self._copies = 0

    def _write(self, entry: dict[str, object]) -> None:
        if self._index is None:
            (self.directory / "files").mkdir(parents=True, exist_ok=True)
            path = self.directory / f"quarantine-{self.name}.ndjson"
            self._index = open(path, "ab")  # noqa: SIM115 - appended to until close()
        self._index.write(orjson.dumps(entry) + b"\n")

    def _copy(self, source: str, data: bytes) -> str:
        self._copies += 1
        base = re.sub(r"[^A-Za-z0-9._-]", "_", source.rsplit("/", 1)[-1])[-100:] or "object"
        name = f"{self.name}-{self._copies:06d}-{base}"
        (self.directory / "files").mkdir(parents=True, exist_ok=True)
        (self.directory / "files" / name).write_bytes(data)
        return f"files/{name}"

    def file(self, source: str, reason: str, data: bytes | None) -> None:
        """A whole object was rejected; keep its bytes (when readable) for inspection."""
        copy = self._copy(source, data) if data is not None else None
        self._write({"run_id": self.run_id, "source": source, "record_index": None,
                     "reason": reason, "raw": None, "copy": copy})

    def record(self, source: str, index: int, reason: str, raw: str) -> None:
        """One record of an otherwise readable object was rejected."""
        copy = None
        if len(raw) > RAW_INLINE_LIMIT:
            copy, raw = self._copy(f"{source}.record{index}.json", raw.encode()), None
        self._write({"run_id": self.run_id, "source": source, "record_index": index,
                     "reason": reason, "raw": raw, "copy": copy})

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
