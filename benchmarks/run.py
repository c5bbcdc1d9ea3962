"""Run every benchmark in this directory (``make bench``): each ``bench_*.py`` module's ``main()`` in turn.

Usage: ``python benchmarks/run.py [NAME ...]`` where NAME is e.g. ``sign`` for ``bench_sign.py``.
Results are printed; each benchmark records its numbers in ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    """Run the selected (default: all) benchmarks and return an exit code."""
    wanted = set(argv)
    failures = 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"\n=== benchmark: {name} ===", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        start = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.main()
        except Exception as e:  # report and go on with the other benchmarks
            failures += 1
            print(f"benchmark {name} failed: {e!r}", flush=True)
        print(f"=== {name}: {time.perf_counter() - start:.1f} s ===", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
