"""trailscan: CloudTrail logs to a clean Parquet lake, integrity, detections, investigations."""

from __future__ import annotations

from .errors import TrailscanError

__version__ = "0.1.0"
__all__ = ["TrailscanError", "__version__", "open_lake"]


def open_lake(path: str | None = None):
    """A DuckDB connection with the lake's views (`cloudtrail`, `quarantine`, `manifest`)."""
    from .lake import Lake

    return Lake.open(path).connect()
