"""The chip registry is complete and the only place chips are named.

Every chip has its image facet; every chip with Secure Boot v2 facts has all of them (schemes, key purposes,
eFuse layout with rows that agree with espefuse's own tables); and no module outside :mod:`medfw.chips` spells
a chip name as a string literal (docstrings aside), so adding a chip cannot need a second table.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from medfw import chips
from medfw.chips import ECDSA_P192, ECDSA_P256, ECDSA_P384, RSA3072, Chip, EfuseFamily, image_only

SRC = Path(chips.__file__).resolve().parents[1]
SECURE_BOOT_CHIPS = [c for c in chips.CHIPS.values() if c.secure_boot]


def test_every_chip_has_its_image_facet_and_ids_are_unique() -> None:
    assert len({c.chip_id for c in chips.CHIPS.values()}) == len(chips.CHIPS)
    for chip in chips.CHIPS.values():
        assert chip.drom_start and chip.irom_start, chip.name
        assert chip.bootloader_offset in (0x0, 0x1000, 0x2000), chip.name
        assert chips.by_id(chip.chip_id) is chip
        assert chips.get(chip.name.upper()) is chip


def test_a_chip_has_every_secure_boot_facet_or_none() -> None:
    image_only_names = {c.name for c in image_only.CHIPS}
    for chip in chips.CHIPS.values():
        has_schemes, has_efuse = bool(chip.sbv2_schemes), chip.efuse is not None
        assert has_schemes == has_efuse, f"{chip.name}: schemes and eFuse layout come together"
        assert chip.secure_boot == (chip.name not in image_only_names), chip.name
    assert chips.DEFAULT_CHIP in {c.name for c in SECURE_BOOT_CHIPS}


def _rows(chip: Chip) -> dict[str, chips.FieldDef]:
    assert chip.efuse is not None
    return {f.name: f for f in chip.efuse.fields}


@pytest.mark.parametrize("chip", SECURE_BOOT_CHIPS, ids=lambda c: c.name)
def test_secure_boot_facets_are_complete_and_consistent(chip: Chip) -> None:
    e = chip.efuse
    assert e is not None
    rows = _rows(chip)
    assert chip.sbv2_schemes <= {RSA3072, ECDSA_P192, ECDSA_P256, ECDSA_P384}
    assert chip.signature_blocks in (1, 3)
    # key purposes: only the key-purpose family has them, one KEY_PURPOSE_n per key block
    purposes = [n for n in rows if n.startswith("KEY_PURPOSE_")]
    if e.family is EfuseFamily.KEY_PURPOSE:
        assert e.purpose_digest0 == 9
        assert len(purposes) == e.key_blocks == 6
        assert sum(n.startswith("BLOCK_KEY") for n in rows) == e.key_blocks
        assert sum(n.startswith("SECURE_BOOT_KEY_REVOKE") for n in rows) == e.digest_slots == 3
        assert "SECURE_BOOT_EN" in rows
    else:
        assert e.purpose_digest0 is None and not purposes and e.digest_slots == 1
        digest = rows["BLOCK2" if e.family is EfuseFamily.CLASSIC else "BLOCK_KEY0_HI_128"]
        assert digest.bit_len == e.digest_bytes * 8
    assert rows["SECURE_VERSION"].bit_len == e.secure_version_bits
    assert "WR_DIS" in rows
    # P-384 verifies only once its enable eFuse is burned, and that eFuse is in the rows
    assert (ECDSA_P384 in chip.sbv2_schemes) == (e.sha384_enable is not None)
    if e.sha384_enable is not None:
        assert rows[e.sha384_enable].efuse_type == "bool"


def _espefuse_fields(name: str) -> dict[str, object]:
    mem = importlib.import_module(f"espefuse.efuse.{name}.mem_definition")
    defs = mem.EfuseDefineFields(None)
    out: dict[str, object] = {}
    for group in ("EFUSES", "KEYBLOCKS", "KEYBLOCKS_256", "CALC"):
        for f in getattr(defs, group, []):
            out.setdefault(f.name, f)
            for alt in f.alt_names or ():
                out.setdefault(alt, f)
    return out


@pytest.mark.parametrize("chip", SECURE_BOOT_CHIPS, ids=lambda c: c.name)
def test_efuse_rows_are_espefuse_rows(chip: Chip) -> None:
    theirs = _espefuse_fields(chip.name)
    for row in _rows(chip).values():
        f = theirs[row.name]
        rd = f.read_disable_bit[0] if isinstance(f.read_disable_bit, list) else f.read_disable_bit  # type: ignore[attr-defined]
        assert (row.block, row.word, row.pos, row.bit_len, row.efuse_type) == (
            f.block,  # type: ignore[attr-defined]
            f.word,  # type: ignore[attr-defined]
            f.pos,  # type: ignore[attr-defined]
            f.bit_len,  # type: ignore[attr-defined]
            f.type,  # type: ignore[attr-defined]
        ), row.name
        assert (row.wr_dis_bit, row.rd_dis_bit) == (f.write_disable_bit, rd), row.name  # type: ignore[attr-defined]
        assert (row.category, row.description) == (f.category, f.description), row.name  # type: ignore[attr-defined]


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def chip_literals(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every non-docstring string literal in ``path`` that is a registry chip name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstring_nodes(tree)
    names = set(chips.CHIPS)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and node.value.lower().replace("-", "") in names
    ]


def test_no_module_outside_the_registry_names_a_chip() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {value!r}"
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "chips"
        for line, value in chip_literals(path)
    ]
    assert offenders == []


def test_the_literal_scan_finds_a_chip_table(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""esp32c3 in a docstring is fine."""\nTABLE = {"esp32c3": 5, "ESP32-S3": 9}\n')
    assert sorted(chip_literals(probe)) == [(2, "ESP32-S3"), (2, "esp32c3")]
