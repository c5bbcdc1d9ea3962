"""Report line and branch coverage per medfw package and fail below the floors set in pyproject.toml.

Run after ``pytest --cov=medfw --cov-branch`` (``make test`` does both). Floors live in
``[tool.medfw.coverage]``: ``total_lines`` and ``total_branches`` (percent, for the whole of ``src/medfw``),
``package_lines`` (percent, the minimum for every package on its own) and ``packages`` (a table of per-package
line floors, set from the measured values). Exit 1 when any floor is missed.

Usage: ``python tools/coverage_floor.py [--data-file .coverage] [--config pyproject.toml] [--rcfile FILE]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import coverage

ROOT = Path(__file__).resolve().parents[1]


def _package(path: str) -> str:
    parts = Path(path).parts
    i = len(parts) - 1 - list(reversed(parts)).index("medfw")
    rest = parts[i + 1 :]
    return f"medfw.{rest[0]}" if len(rest) > 1 else "medfw (modules)"


def _pct(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def measure(data_file: Path, rcfile: Path | bool = True) -> dict[str, tuple[float, float]]:
    """(line %, branch %) per package and for ``TOTAL``, from a coverage data file (``rcfile``: the coverage
    configuration, by default the one coverage finds, so never-imported modules count as 0 %)."""
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(rcfile) if isinstance(rcfile, Path) else rcfile)
    cov.load()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "coverage.json"
        cov.json_report(outfile=str(out))
        files = json.loads(out.read_text())["files"]
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for path, data in files.items():
        s = data["summary"]
        for key in (_package(path), "TOTAL"):
            acc = sums[key]
            acc[0] += s["covered_lines"]
            acc[1] += s["num_statements"]
            acc[2] += s["covered_branches"]
            acc[3] += s["num_branches"]
    return {name: (_pct(cl, nl), _pct(cb, nb)) for name, (cl, nl, cb, nb) in sums.items()}


def missed(measured: dict[str, tuple[float, float]], floors: dict[str, Any]) -> list[str]:
    """The floors ``measured`` misses, one message each."""
    failures: list[str] = []
    per_package: dict[str, float] = floors.get("packages", {})
    for name, (lines, _branches) in sorted(measured.items()):
        if name == "TOTAL":
            continue
        floor = max(float(floors.get("package_lines", 0)), float(per_package.get(name, 0)))
        if lines < floor:
            failures.append(f"{name}: {lines:.1f}% lines < floor {floor:g}%")
    lines, branches = measured.get("TOTAL", (100.0, 100.0))
    if lines < floors.get("total_lines", 0):
        failures.append(f"total: {lines:.1f}% lines < floor {floors['total_lines']}%")
    if branches < floors.get("total_branches", 0):
        failures.append(f"total: {branches:.1f}% branches < floor {floors['total_branches']}%")
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="coverage per package, checked against the floors")
    ap.add_argument("--data-file", type=Path, default=ROOT / ".coverage")
    ap.add_argument("--config", type=Path, default=ROOT / "pyproject.toml", help="where the floors are")
    ap.add_argument("--rcfile", type=Path, default=ROOT / "pyproject.toml", help="coverage's own configuration")
    args = ap.parse_args(argv)
    floors = tomllib.loads(args.config.read_text(encoding="utf-8"))["tool"]["medfw"]["coverage"]
    measured = measure(args.data_file, args.rcfile)
    print(f"{'package':<24} {'lines':>8} {'branches':>9}")
    for name in [*sorted(k for k in measured if k != "TOTAL"), "TOTAL"]:
        lines, branches = measured[name]
        print(f"{name:<24} {lines:7.1f}% {branches:8.1f}%")
    failures = missed(measured, floors)
    for f in failures:
        print(f"coverage floor missed: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
