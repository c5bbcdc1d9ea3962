"""Regenerate the stored espefuse summaries: ``.venv/bin/python tests/vectors/efuse/generate.py``."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "device"))

from _espefuse import lock_names, make_summary, write_key  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for chip, variants in {
            "esp32c3": ("open", "locked"),
            "esp32s3": ("locked",),
            "esp32": ("locked",),
        }.items():
            key = write_key(work, chip)
            for variant in variants:
                locks = set(lock_names(chip)) if variant == "locked" else set()
                data = make_summary(work, chip, locks, key, f"{chip}_{variant}")
                (HERE / f"{chip}_{variant}.json").write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
