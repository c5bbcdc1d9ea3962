"""The top-level command line: groups, lazy loading, exit codes, and the generated reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medfw import __version__
from medfw.cli import GROUPS, build_parser, main
from medfw.cli._docgen import render

ROOT = Path(__file__).resolve().parents[2]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"medfw {__version__}"


def test_every_group_loads_and_registers_commands() -> None:
    parser = build_parser(load_all=True)
    for group in GROUPS:
        with pytest.raises(SystemExit) as e:
            parser.parse_args([group, "--help"])
        assert e.value.code == 0


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_without_subcommand_is_a_usage_error(group: str) -> None:
    assert main([group]) == 2


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_console_script_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "medfw", "--help"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    for group in GROUPS:
        assert group in out


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `python -m medfw.cli._docgen > docs/cli.md`"
