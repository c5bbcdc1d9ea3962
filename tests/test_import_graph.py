"""No import cycle among medfw's modules: a module's top-level imports never lead back to it.

Imports inside functions (loaded on first use) and under ``if TYPE_CHECKING:`` do not count; importing a module runs
its packages' ``__init__`` first, so those edges count, except a package's own submodules importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(modules: dict[str, str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, source in modules.items():
        targets: set[str] = set()
        for node in ast.parse(source).body:  # top level only
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medfw"):
                subs = {f"{node.module}.{a.name}" for a in node.names}
                targets |= {s for s in subs if s in modules} or {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("medfw")}
        runs = set()
        for t in targets:
            parts = t.split(".")
            runs |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[name] = {t for t in runs if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*path[path.index(m) :], m]
            if m not in state and (found := visit(m)):
                return found
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle() -> None:
    modules = {_name(p): p.read_text(encoding="utf-8") for p in sorted((SRC / "medfw").rglob("*.py"))}
    assert len(modules) > 300
    assert _cycle(_graph(modules)) is None


def test_the_check_finds_a_cycle() -> None:
    modules = {
        "medfw": "",
        "medfw.a": "from medfw.b import x\n",
        "medfw.b": "from medfw import c\n",
        "medfw.c": "import medfw.a\n",
        "medfw.d": "def f():\n    from medfw.a import y\n",
    }
    assert _cycle(_graph(modules)) == ["medfw.a", "medfw.b", "medfw.c", "medfw.a"]
    del modules["medfw.c"]
    assert _cycle(_graph(modules)) is None
