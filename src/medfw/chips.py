"""The one chip registry: everything medfw knows about an ESP32-family chip, in one entry.

Adding a chip means adding its :class:`Chip` here (plus its test vectors and docs): the image format
(:mod:`medfw.image.esp`), the device model (:mod:`medfw.device.chips`), the eFuse policy check and the CLI
choices all read this table. Facts come from esptool/espsecure/espefuse 5.x (``--virt`` read-outs) and ESP-IDF's
``soc_caps.h`` / Kconfig:

* ``chip_id`` is ``esp_chip_id_t`` in the image header; ``drom_start`` / ``irom_start`` the flash-mapped data
  and instruction bus bases esptool uses to classify segments.
* ``sbv2_schemes`` are the Secure Boot v2 signature schemes the ROM and bootloader verify
  (``SOC_SECURE_BOOT_V2_RSA`` / ``_ECC``, ``SOC_ECDSA_SUPPORT_CURVE_P384``); ``signature_blocks`` how many blocks
  of a sector it reads (ESP32 and ESP32-C2: only the first).
* ``efuse`` is the secure-boot eFuse layout: family, digest slots, key blocks, digest length in eFuse (ESP32-C2
  keeps 128 bits), the ``KEY_PURPOSE`` value of ``SECURE_BOOT_DIGEST0``, the ``SECURE_VERSION`` field width, and
  the eFuse that must be burned before P-384 signatures verify (``SECURE_BOOT_SHA384_EN``).

This module imports nothing from the rest of medfw but :mod:`medfw.errors`, so every layer can use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from medfw.errors import UsageError

__all__ = ["CHIPS", "Chip", "EfuseFamily", "EfuseLayout", "by_id", "get", "names"]

RSA3072 = "rsa3072"
ECDSA_P192 = "ecdsa-p192"
ECDSA_P256 = "ecdsa-p256"
ECDSA_P384 = "ecdsa-p384"


class EfuseFamily(enum.StrEnum):
    """How a chip lays out its secure-boot eFuses."""

    CLASSIC = "classic"  # ESP32: one RSA digest in BLOCK2, ABS_DONE_1, no revoke bits
    KEY_PURPOSE = "key_purpose"  # BLOCK_KEYn with KEY_PURPOSE_n = SECURE_BOOT_DIGESTi, SECURE_BOOT_KEY_REVOKEi
    SINGLE_KEY = "single_key"  # ESP32-C2: one 128-bit digest in BLOCK_KEY0_HI_128, no revoke bits


@dataclass(frozen=True)
class EfuseLayout:
    """The secure-boot eFuse facts of a chip."""

    family: EfuseFamily
    secure_version_bits: int
    digest_slots: int
    key_blocks: int
    digest_bytes: int = 32
    purpose_digest0: int | None = 9  # KEY_PURPOSE value SECURE_BOOT_DIGEST0 (DIGEST1 = +1, DIGEST2 = +2)
    sha384_enable: str | None = None


@dataclass(frozen=True)
class Chip:
    """One chip (see the module docstring for the meaning of each fact)."""

    name: str
    chip_id: int
    drom_start: int
    irom_start: int
    bootloader_offset: int = 0x0
    sbv2_schemes: frozenset[str] = frozenset()
    signature_blocks: int = 3
    efuse: EfuseLayout | None = None

    def supports_scheme(self, scheme: str) -> bool:
        """True when the chip verifies Secure Boot v2 blocks of ``scheme`` (an ``Sbv2Scheme`` value)."""
        return str(scheme) in self.sbv2_schemes


_KP = EfuseFamily.KEY_PURPOSE
_RSA = frozenset({RSA3072})

CHIPS: dict[str, Chip] = {
    c.name: c
    for c in (
        Chip(
            "esp32",
            0,
            0x3F400000,
            0x400D0000,
            bootloader_offset=0x1000,
            sbv2_schemes=_RSA,
            signature_blocks=1,
            efuse=EfuseLayout(EfuseFamily.CLASSIC, 32, 1, 0, purpose_digest0=None),
        ),
        Chip("esp32s2", 2, 0x3F000000, 0x40080000, bootloader_offset=0x1000, sbv2_schemes=_RSA,
             efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip("esp32c3", 5, 0x3C000000, 0x42000000, sbv2_schemes=_RSA, efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip("esp32s3", 9, 0x3C000000, 0x42000000, sbv2_schemes=_RSA, efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip(
            "esp32c2",
            12,
            0x3C000000,
            0x42000000,
            sbv2_schemes=frozenset({ECDSA_P192, ECDSA_P256}),
            signature_blocks=1,
            efuse=EfuseLayout(EfuseFamily.SINGLE_KEY, 4, 1, 1, digest_bytes=16, purpose_digest0=None),
        ),
        Chip("esp32c6", 13, 0x42800000, 0x42000000, sbv2_schemes=frozenset({RSA3072, ECDSA_P256}),
             efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip("esp32h2", 16, 0x42800000, 0x42000000, sbv2_schemes=frozenset({RSA3072, ECDSA_P256}),
             efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip("esp32p4", 18, 0x40000000, 0x40000000, bootloader_offset=0x2000,
             sbv2_schemes=frozenset({RSA3072, ECDSA_P256}), efuse=EfuseLayout(_KP, 16, 3, 6)),
        Chip("esp32c61", 20, 0x42800000, 0x42000000),
        Chip(
            "esp32c5",
            23,
            0x42000000,
            0x42000000,
            bootloader_offset=0x2000,
            sbv2_schemes=frozenset({RSA3072, ECDSA_P256, ECDSA_P384}),
            efuse=EfuseLayout(_KP, 9, 3, 6, sha384_enable="SECURE_BOOT_SHA384_EN"),
        ),
        Chip("esp32h21", 25, 0x42000000, 0x42000000),
        Chip("esp32h4", 28, 0x42000000, 0x42000000),
    )
}  # fmt: skip
_BY_ID = {c.chip_id: c for c in CHIPS.values()}


def names() -> list[str]:
    """Every chip name, sorted."""
    return sorted(CHIPS)


def get(name: str) -> Chip:
    """The chip called ``name`` (``esp32c3``; case and dashes ignored).

    Raises:
        UsageError: unknown chip (the message lists the known ones).
    """
    key = name.lower().replace("-", "")
    try:
        return CHIPS[key]
    except KeyError:
        raise UsageError(f"unknown chip {name!r}; known: {', '.join(names())}", field="chip") from None


def by_id(chip_id: int) -> Chip | None:
    """The chip whose ``esp_chip_id_t`` is ``chip_id``, or None."""
    return _BY_ID.get(chip_id)
