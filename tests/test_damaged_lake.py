"""A damaged or misused lake, or an unwritable output: one `Error:` line and the documented exit
code from every command, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ingest_cli, make_record, run_cli, write_records


@pytest.fixture
def made(tmp_path: Path) -> tuple[Path, Path]:
    src, lake = tmp_path / "src", tmp_path / "lake"
    write_records(src / "a.json.gz", [make_record() for _ in range(3)])
    ingest_cli(src, "--lake", lake)
    return src, lake


def _one_error(result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], lines


def test_lake_path_that_is_a_file(tmp_path: Path, made) -> None:
    src, _ = made
    (tmp_path / "afile").write_text("x")
    _one_error(run_cli("ingest", src, "--lake", tmp_path / "afile"), 2, "cannot use")
    _one_error(run_cli("query", "SELECT 1", "--lake", tmp_path / "afile"), 2, "no trailscan lake")


@pytest.mark.parametrize("args", [
    ["query", "SELECT 1", "--format", "csv"],
    ["quarantine", "--format", "json"],
    ["detect", "--format", "sarif"],
    ["detect", "--format", "csv"],
])
def test_output_that_cannot_be_written(tmp_path: Path, made, args) -> None:
    _, lake = made
    for target in (tmp_path, tmp_path / "no" / "such" / "dir" / "out"):
        _one_error(run_cli(*args, "--lake", lake, "--output", target), 2, "cannot write")


def test_state_database_that_is_not_one(made) -> None:
    src, lake = made
    (lake / "_trailscan" / "state.db").write_bytes(b"this is not SQLite" * 100)
    for wal in (lake / "_trailscan").glob("state.db-*"):
        wal.unlink()
    for args in (["query", "SELECT count(*) FROM cloudtrail"], ["detect"],
                 ["ingest", src, "--workers", 1]):
        _one_error(run_cli(*args, "--lake", lake), 1, "state.db")


def test_damaged_data_file(made) -> None:
    src, lake = made
    (part,) = (lake / "events").rglob("*.parquet")
    part.write_bytes(part.read_bytes()[:100])  # truncated by a full disk or a bad copy
    write_records(src / "b.json.gz", [make_record()])
    for args in (["query", "SELECT count(*) FROM cloudtrail"], ["detect"],
                 ["ingest", src, "--workers", 1]):
        _one_error(run_cli(*args, "--lake", lake), 1, "cannot read")
