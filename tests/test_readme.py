"""The README's set-up commands are the ones CI runs, and every CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from trailscan.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in _code_blocks(quick)]
    assert blocks == ["pip install -e . && trailscan scan sample_logs/",
                      "pip install -e '.[test]' && pytest -q"]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert blocks[1] in [line.strip() for line in ci]


def test_every_cli_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    runner = CliRunner()
    for name, command in cli.commands.items():
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, name
        assert command.help and command.help.strip(), name
        assert f"trailscan {name}" in readme, f"`trailscan {name}` missing from README"
