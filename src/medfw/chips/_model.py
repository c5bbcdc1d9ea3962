"""The shape of a chip registry entry: image facts, Secure Boot v2 schemes, key purposes and eFuse layout."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ECDSA_P192",
    "ECDSA_P256",
    "ECDSA_P384",
    "RSA3072",
    "Chip",
    "EfuseFamily",
    "EfuseLayout",
    "FieldDef",
]

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
class FieldDef:
    """One eFuse field as espefuse defines it (``espefuse summary --format json`` shows the same facts)."""

    name: str
    block: int
    word: int
    pos: int
    bit_len: int
    efuse_type: str
    category: str
    wr_dis_bit: int | None
    rd_dis_bit: int | None
    description: str

    @property
    def is_bytes(self) -> bool:
        """True for key/data blocks (``bytes:N``), false for integer and bool fields."""
        return self.efuse_type.startswith("bytes:")


@dataclass(frozen=True)
class EfuseLayout:
    """The secure-boot eFuse facts of a chip.

    Attributes:
        family: how the digests are stored (:class:`EfuseFamily`).
        secure_version_bits: width of the ``SECURE_VERSION`` anti-rollback field.
        digest_slots: how many secure-boot key digests the chip holds.
        key_blocks: number of ``BLOCK_KEYn`` blocks (0 on ESP32, whose digest sits in ``BLOCK2``).
        digest_bytes: how many bytes of the SHA-256 key digest the eFuse keeps (16 on ESP32-C2).
        purpose_digest0: ``KEY_PURPOSE`` value of ``SECURE_BOOT_DIGEST0`` (DIGEST1 = +1, DIGEST2 = +2); None for
            the families without key purposes.
        sha384_enable: the eFuse that must be burned before P-384 signatures verify, if any.
        fields: the security-relevant eFuse field rows, as espefuse defines them.
    """

    family: EfuseFamily
    secure_version_bits: int
    digest_slots: int
    key_blocks: int
    digest_bytes: int = 32
    purpose_digest0: int | None = 9
    sha384_enable: str | None = None
    fields: tuple[FieldDef, ...] = ()

    def field(self, name: str) -> FieldDef | None:
        """The row called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Chip:
    """One chip.

    Attributes:
        name: espefuse/esptool chip name (``esp32c3``).
        chip_id: ``esp_chip_id_t`` in the image header.
        drom_start: flash-mapped data bus base esptool uses to classify segments.
        irom_start: flash-mapped instruction bus base.
        bootloader_offset: flash offset of the second-stage bootloader.
        sbv2_schemes: the Secure Boot v2 signature schemes the ROM and bootloader verify (``SOC_SECURE_BOOT_V2_RSA``
            / ``_ECC``, ``SOC_ECDSA_SUPPORT_CURVE_P384``); empty for a chip medfw knows only as an image format.
        signature_blocks: how many signature blocks of a sector the ROM reads (ESP32 and ESP32-C2: only the first).
        efuse: the secure-boot eFuse layout; None for a chip medfw knows only as an image format.
    """

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

    @property
    def secure_boot(self) -> bool:
        """True when the registry carries this chip's Secure Boot v2 facts (schemes and eFuse layout)."""
        return bool(self.sbv2_schemes) and self.efuse is not None
