"""Closed sets are StrEnums: no ``typing.Literal`` set of strings anywhere in the package."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "medfw"


def _literal_uses(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name | ast.Attribute) and _is_literal(n)]
    lines += [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and _quoted_literal(n.value)]
    return lines


def _is_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "Literal") or (
        isinstance(node, ast.Attribute) and node.attr == "Literal"
    )


def _quoted_literal(value: object) -> bool:  # ``"Literal[...]"`` in a string annotation or a cast
    return isinstance(value, str) and "Literal[" in value


def test_no_literal_closed_sets() -> None:
    found = {str(p.relative_to(SRC)): lines for p in sorted(SRC.rglob("*.py")) if (lines := _literal_uses(p))}
    assert found == {}, f"closed sets written as typing.Literal (make them StrEnums): {found}"


def test_the_check_sees_a_literal(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('from typing import Literal\nX = Literal["a", "b"]\nY: "Literal[1]"\n', encoding="utf-8")
    assert _literal_uses(sample) == [2, 3]
