"""Tables never split a word: drawn when the terminal is wide enough, else (or in a pipe) one record per line."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from medfw.cli import main
from medfw.cli._common import print_table

VEC = Path(__file__).resolve().parent.parent / "vectors" / "efuse"
WORDS = ["component", "unknown", "esp-idf-mbedtls", "CVE-2024-12345", "not_affected"]


def _table() -> Table:
    t = Table(title="findings")
    for col in ("component", "state", "vulnerability"):
        t.add_column(col)
    t.add_row("esp-idf-mbedtls 3.5.2", "unknown", "CVE-2024-12345")
    t.add_row("lwip [bold]2.1[/bold]", "not_affected", "CVE-2023-0001")
    return t


def _render(console_kwargs: dict[str, object]) -> str:
    buf = io.StringIO()
    print_table(_table(), Console(file=buf, highlight=False, **console_kwargs))  # type: ignore[arg-type]
    return buf.getvalue()


def test_pipe_prints_one_record_per_line() -> None:
    out = _render({"width": 20})
    lines = out.splitlines()
    assert lines[0] == "# findings"
    assert lines[1] == "component=esp-idf-mbedtls 3.5.2  state=unknown  vulnerability=CVE-2024-12345"
    assert lines[2] == "component=lwip [bold]2.1[/bold]  state=not_affected  vulnerability=CVE-2023-0001"
    assert len(lines) == 3


@pytest.mark.parametrize("width", [30, 50, 80, 120])
def test_terminal_never_splits_a_word(width: int) -> None:
    out = _render({"width": width, "force_terminal": True, "color_system": None})
    tokens = set(re.findall(r"[A-Za-z0-9_.\-]+", out))
    for word in WORDS:
        assert word in tokens, (width, word, out)
    assert all(len(line) <= width for line in out.splitlines())


def test_wide_terminal_draws_the_table() -> None:
    out = _render({"width": 120, "force_terminal": True, "color_system": None})
    assert "┃" in out or "│" in out


def test_cli_table_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["efuse", "check", str(VEC / "esp32c3_open.json"), "--chip", "esp32c3"]) == 1
    out = capsys.readouterr().out
    records = [line for line in out.splitlines() if line.startswith("rule=")]
    assert len(records) == 7


def _tables_printed_directly(source: str) -> list[int]:
    """Lines where a ``Table(...)`` bound to a name is handed to some console's ``print`` (not ``print_table``)."""
    tree = ast.parse(source)
    hits = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        tables = {
            t.id
            for node in ast.walk(fn)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", getattr(node.value.func, "attr", "")) == "Table"
            for t in node.targets
            if isinstance(t, ast.Name)
        }  # fmt: skip
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "print"
                and any(isinstance(a, ast.Name) and a.id in tables for a in node.args)
            ):
                hits.append(node.lineno)
    return hits


def test_every_cli_table_goes_through_print_table() -> None:
    cli = Path(__file__).resolve().parents[2] / "src" / "medfw" / "cli"
    found = {
        p.name: lines
        for p in sorted(cli.glob("*.py"))
        if p.name != "_common.py" and (lines := _tables_printed_directly(p.read_text(encoding="utf-8")))
    }
    assert found == {}, f"tables printed without print_table (they split words): {found}"


def test_the_table_check_sees_a_direct_print() -> None:
    source = "def f(c):\n    t = Table(title='x')\n    c.print(t)\n    print_table(t)\n"
    assert _tables_printed_directly(source) == [3]
