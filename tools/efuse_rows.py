"""Print the eFuse field rows of a chip for its :mod:`medfw.chips` module, taken from espefuse's own tables.

Usage: ``python tools/efuse_rows.py esp32h2 SECURE_BOOT_EN SECURE_VERSION …`` (the security-relevant names the
registry keeps). Rows are printed in the order given, in the ``_F(...)`` form the chip modules use; a name the
chip does not define is reported on stderr and skipped. Needs esptool (a test dependency).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def _fields(chip: str) -> dict[str, Any]:
    mem = importlib.import_module(f"espefuse.efuse.{chip}.mem_definition")
    defs = mem.EfuseDefineFields(None)
    found: dict[str, Any] = {}
    for group in ("EFUSES", "KEYBLOCKS", "KEYBLOCKS_256", "CALC"):
        for f in getattr(defs, group, []):
            for name in (f.name, *(f.alt_names or ())):
                found.setdefault(name, f)
    return found


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    chip, names = argv[0], argv[1:]
    fields = _fields(chip)
    for name in names:
        f = fields.get(name)
        if f is None:
            print(f"{chip} has no eFuse {name}", file=sys.stderr)
            continue
        rd = f.read_disable_bit[0] if isinstance(f.read_disable_bit, list) else f.read_disable_bit
        print(
            f"    _F({f.name!r}, {f.block}, {f.word}, {f.pos}, {f.bit_len}, {f.type!r}, {f.category!r}, "
            f"{f.write_disable_bit}, {rd}, {f.description!r}),".replace("'", '"')
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
