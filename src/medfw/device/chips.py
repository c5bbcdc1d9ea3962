"""The ESP32-family chips the device model knows: image chip id, eFuse family, flash offsets.

Two eFuse families exist. The classic ESP32 (rev ≥ 3.0 for Secure Boot v2) keeps one RSA key digest in
``BLOCK2``, enables SBv2 with ``ABS_DONE_1`` and has no revoke bits. The later chips (ESP32-C3, ESP32-S3, …)
keep up to three key digests in ``BLOCK_KEYn`` with ``KEY_PURPOSE_n = SECURE_BOOT_DIGESTi`` and revoke each with
``SECURE_BOOT_KEY_REVOKEi``.

Each chip's ROM and bootloader verify only some Secure Boot v2 signature schemes: ESP32 (rev ≥ 3.0), ESP32-C3
and ESP32-S3 verify RSA-3072 blocks only; ESP32-C6 verifies RSA-3072 or ECDSA P-256. ESP32 also reads only the
first of the (up to three) signature blocks; the others are ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from medfw.errors import InputError

__all__ = ["CHIPS", "ChipSpec", "EfuseFamily", "chip_by_id", "get_chip"]

# Secure Boot v2 scheme names, spelled as ``medfw.image.sbv2.Sbv2Scheme`` values (kept as strings so that the
# eFuse policy check does not load the signature code).
RSA3072 = "rsa3072"
ECDSA_P256 = "ecdsa-p256"


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
        sbv2_schemes: the Secure Boot v2 signature schemes the ROM and bootloader verify.
        signature_blocks: how many signature blocks of a sector are read (the rest are ignored).
    """

    name: str
    chip_id: int
    family: EfuseFamily
    bootloader_offset: int
    secure_version_field_bits: int
    digest_slots: int
    key_blocks: int
    sbv2_schemes: frozenset[str] = frozenset({RSA3072})
    signature_blocks: int = 3

    def supports_scheme(self, scheme: str) -> bool:
        """True when the chip can verify Secure Boot v2 blocks of ``scheme`` (an ``Sbv2Scheme`` value)."""
        return str(scheme) in self.sbv2_schemes

    @property
    def scheme_names(self) -> str:
        """The verifiable schemes, for messages (``rsa3072, ecdsa-p256``)."""
        return ", ".join(sorted(str(s) for s in self.sbv2_schemes))

    @property
    def can_revoke(self) -> bool:
        """True when the chip has per-digest revoke bits."""
        return self.family is EfuseFamily.KEY_PURPOSE


_RSA_ONLY = frozenset({RSA3072})
_RSA_OR_P256 = frozenset({RSA3072, ECDSA_P256})

CHIPS: dict[str, ChipSpec] = {
    "esp32": ChipSpec("esp32", 0x0000, EfuseFamily.CLASSIC, 0x1000, 32, 1, 0, _RSA_ONLY, signature_blocks=1),
    "esp32c3": ChipSpec("esp32c3", 0x0005, EfuseFamily.KEY_PURPOSE, 0x0, 16, 3, 6, _RSA_ONLY),
    "esp32s3": ChipSpec("esp32s3", 0x0009, EfuseFamily.KEY_PURPOSE, 0x0, 16, 3, 6, _RSA_ONLY),
    "esp32c6": ChipSpec("esp32c6", 0x000D, EfuseFamily.KEY_PURPOSE, 0x0, 16, 3, 6, _RSA_OR_P256),
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
