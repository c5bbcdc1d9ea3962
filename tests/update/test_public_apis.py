"""medfw uses only the public APIs of tuf and securesystemslib (no ``_private`` modules)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "medfw"


def test_no_private_tuf_or_securesystemslib_imports() -> None:
    bad = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.split(".")[0] in ("tuf", "securesystemslib") and any(
                    part.startswith("_") for part in name.split(".")
                ):
                    bad.append(f"{path.relative_to(SRC)}: {name}")
    assert bad == []
