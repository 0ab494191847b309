"""How DuckDB reads an S3 lake: an fsspec filesystem over pyarrow's S3 client.

DuckDB's httpfs extension is not installable for DuckDB 2 from PyPI, so connections register this
filesystem for `s3://` (`con.register_filesystem`); DuckDB then reads Parquet with range reads
(footer, then only the column chunks a query needs) through pyarrow's S3 client.
"""

from __future__ import annotations

from typing import Any

from fsspec.implementations.arrow import ArrowFSWrapper


class LakeFS(ArrowFSWrapper):  # type: ignore[misc]
    """Lake objects never change once written, so each is looked up once per connection
    (DuckDB asks exists, glob, info, size and modified for every file it binds: one request
    instead of five; opening the file for reading costs pyarrow one more)."""

    cachable = False  # fsspec would otherwise share instances (and this cache) by arguments

    def __init__(self, fs: Any) -> None:
        super().__init__(fs)
        self._infos: dict[str, dict[str, Any]] = {}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        key = self._strip_protocol(path)
        if key not in self._infos:
            self._infos[key] = super().info(key, **kwargs)
        return self._infos[key]

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    def glob(self, path: str, **kwargs: Any) -> Any:
        if any(c in path for c in "*?["):
            return super().glob(path, **kwargs)
        return [self._strip_protocol(path)] if self.exists(path) else []

    def modified(self, path: str) -> Any:
        return self.info(path)["mtime"]
