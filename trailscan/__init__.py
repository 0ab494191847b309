"""trailscan: CloudTrail logs to a clean Parquet lake, integrity, detections, investigations."""

from __future__ import annotations

from .errors import TrailscanError

__version__ = "0.1.0"
__all__ = ["TrailscanError", "__version__", "open_lake"]


def open_lake(path: str | None = None, aws=None):
    """A DuckDB connection with the lake's views (`cloudtrail`, `quarantine`, `manifest`).

    `path` may be `s3://bucket/prefix`; `aws` (trailscan.s3.AwsOptions: profile, region,
    endpoint_url) says how to reach it, else boto3's standard chain."""
    from .lake import Lake

    return Lake.open(path, aws=aws).connect()
