"""The ESP32-family chips the device model knows: image chip id, eFuse family, flash offsets.

Two eFuse families exist. The classic ESP32 (rev ≥ 3.0 for Secure Boot v2) keeps one RSA key digest in
``BLOCK2``, enables SBv2 with ``ABS_DONE_1`` and has no revoke bits. The later chips (ESP32-C3, ESP32-S3, …)
keep up to three key digests in ``BLOCK_KEYn`` with ``KEY_PURPOSE_n = SECURE_BOOT_DIGESTi`` and revoke each with
``SECURE_BOOT_KEY_REVOKEi``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from medfw.errors import InputError

__all__ = ["CHIPS", "ChipSpec", "EfuseFamily", "chip_by_id", "get_chip"]


class EfuseFamily(enum.StrEnum):
    """How a chip lays out its secure-boot eFuses."""

    CLASSIC = "classic"
    KEY_PURPOSE = "key_purpose"


@dataclass(frozen=True)
class ChipSpec:
    """Static facts about one chip.

    Attributes:
        name: espefuse/esptool chip name (``esp32c3``).
        chip_id: ``esp_chip_id_t`` value in the image header.
        family: eFuse layout family.
        bootloader_offset: flash offset of the second-stage bootloader.
        secure_version_field_bits: width of the ``SECURE_VERSION`` eFuse field.
        digest_slots: how many secure-boot key digests the chip holds.
        key_blocks: number of ``BLOCK_KEYn`` blocks (key-purpose family only).
    """

    name: str
    chip_id: int
    family: EfuseFamily
    bootloader_offset: int
    secure_version_field_bits: int
    digest_slots: int
    key_blocks: int

    @property
    def can_revoke(self) -> bool:
        """True when the chip has per-digest revoke bits."""
        return self.family is EfuseFamily.KEY_PURPOSE


CHIPS: dict[str, ChipSpec] = {
    "esp32": ChipSpec("esp32", 0x0000, EfuseFamily.CLASSIC, 0x1000, 32, 1, 0),
    "esp32c3": ChipSpec("esp32c3", 0x0005, EfuseFamily.KEY_PURPOSE, 0x0, 16, 3, 6),
    "esp32s3": ChipSpec("esp32s3", 0x0009, EfuseFamily.KEY_PURPOSE, 0x0, 16, 3, 6),
}


def get_chip(name: str) -> ChipSpec:
    """Return the spec of chip ``name``.

    Raises:
        InputError: the chip is not modelled.
    """
    try:
        return CHIPS[name.lower()]
    except KeyError:
        raise InputError(f"unsupported chip {name!r}; supported: {', '.join(sorted(CHIPS))}", field="chip") from None


def chip_by_id(chip_id: int) -> str:
    """Return the chip name for an image header chip id, or ``chip-0xNNNN`` when it is not modelled."""
    for spec in CHIPS.values():
        if spec.chip_id == chip_id:
            return spec.name
    return f"chip-0x{chip_id:04x}"
