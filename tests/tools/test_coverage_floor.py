"""tools/coverage_floor.py: per-package numbers from a real coverage data file, and the floors it enforces."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import coverage
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_floor", ROOT / "tools" / "coverage_floor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["coverage_floor"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def measured_run(tmp_path: Path) -> Path:
    """A coverage data file from really running a tiny ``medfw`` tree: one package half covered."""
    src = tmp_path / "src" / "medfw"
    (src / "pkg").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "pkg" / "__init__.py").write_text("")
    (src / "pkg" / "mod.py").write_text("def used(x):\n    return x + 1\n\n\ndef unused(x):\n    return x - 1\n")
    data = tmp_path / ".coverage"
    cov = coverage.Coverage(data_file=str(data), branch=True, source=[str(src)], config_file=False)
    sys.path.insert(0, str(tmp_path / "src"))
    saved = {k: v for k, v in sys.modules.items() if k == "medfw" or k.startswith("medfw.")}
    for k in saved:
        del sys.modules[k]
    try:
        cov.start()
        from medfw.pkg import mod  # the tiny tree, not the real package

        assert mod.used(1) == 2
        cov.stop()
        cov.save()
    finally:
        sys.path.remove(str(tmp_path / "src"))
        for k in [k for k in sys.modules if k == "medfw" or k.startswith("medfw.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    return data


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.medfw.coverage]\n" + text)
    return path


def test_numbers_per_package_and_the_floors(
    measured_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _tool()
    rc = tmp_path / "coveragerc"
    rc.write_text("[run]\nbranch = true\n")
    measured = tool.measure(measured_run, rc)
    assert set(measured) == {"medfw (modules)", "medfw.pkg", "TOTAL"}
    lines, _ = measured["medfw.pkg"]
    assert 60 < lines < 90  # 4 of 6 statements ran (both defs, one body) — and the import of the package
    ok = _config(tmp_path, "total_lines = 50\ntotal_branches = 0\npackage_lines = 50\n")
    run = ["--data-file", str(measured_run), "--rcfile", str(rc), "--config"]
    assert tool.main([*run, str(ok)]) == 0
    assert "medfw.pkg" in capsys.readouterr().out
    low = _config(tmp_path, "total_lines = 0\ntotal_branches = 0\npackage_lines = 85\n")
    assert tool.main([*run, str(low)]) == 1
    assert "medfw.pkg" in capsys.readouterr().err
    per_package = _config(tmp_path, 'package_lines = 0\n[tool.medfw.coverage.packages]\n"medfw.pkg" = 99\n')
    assert tool.main([*run, str(per_package)]) == 1
