"""Report line and branch coverage per medfw package and fail below the floors set in pyproject.toml.

Run after ``pytest --cov=medfw --cov-branch`` (``make test`` does both). Floors live in
``[tool.medfw.coverage]``: ``total_lines`` and ``total_branches`` (percent, for the whole of ``src/medfw``) and
``package_lines`` (percent, for every package on its own). Exit 1 when any floor is missed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import tomllib
from collections import defaultdict
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[1]


def _package(path: str) -> str:
    parts = Path(path).parts
    i = len(parts) - 1 - list(reversed(parts)).index("medfw")
    rest = parts[i + 1 :]
    return f"medfw.{rest[0]}" if len(rest) > 1 else "medfw (modules)"


def _pct(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def main() -> int:
    floors = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["medfw"]["coverage"]
    cov = coverage.Coverage(data_file=str(ROOT / ".coverage"))
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
    failures: list[str] = []
    print(f"{'package':<24} {'lines':>8} {'branches':>9}")
    for name in [*sorted(k for k in sums if k != "TOTAL"), "TOTAL"]:
        cl, nl, cb, nb = sums[name]
        lines, branches = _pct(cl, nl), _pct(cb, nb)
        print(f"{name:<24} {lines:7.1f}% {branches:8.1f}%")
        if name != "TOTAL" and lines < floors["package_lines"]:
            failures.append(f"{name}: {lines:.1f}% lines < {floors['package_lines']}%")
    cl, nl, cb, nb = sums["TOTAL"]
    if _pct(cl, nl) < floors["total_lines"]:
        failures.append(f"total: {_pct(cl, nl):.1f}% lines < floor {floors['total_lines']}%")
    if _pct(cb, nb) < floors["total_branches"]:
        failures.append(f"total: {_pct(cb, nb):.1f}% branches < floor {floors['total_branches']}%")
    for f in failures:
        print(f"coverage floor missed: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
