"""The chips the device model simulates: the entries of the chip registry (:mod:`medfw.chips`) whose eFuse
rows define every field the model drives for their family (see ``_MODEL_FIELDS``).

Three eFuse families exist. The classic ESP32 (rev ≥ 3.0 for Secure Boot v2) keeps one RSA key digest in
``BLOCK2``, enables SBv2 with ``ABS_DONE_1`` and has no revoke bits. The key-purpose chips (ESP32-C3, -S3, -C5,
-C6, …) keep up to three key digests in ``BLOCK_KEYn`` with ``KEY_PURPOSE_n = SECURE_BOOT_DIGESTi`` and revoke
each with ``SECURE_BOOT_KEY_REVOKEi``. ESP32-C2 keeps one 128-bit digest in ``BLOCK_KEY0_HI_128`` and cannot
revoke it.

Each chip's ROM and bootloader verify only some Secure Boot v2 signature schemes (RSA-3072 on ESP32, -C3, -S3;
RSA-3072 or ECDSA P-256 on -C6; ECDSA P-192/P-256 on -C2; RSA-3072, P-256 or P-384 on -C5, P-384 only with
``SECURE_BOOT_SHA384_EN`` burned). ESP32 and ESP32-C2 read only the first signature block.
"""

from __future__ import annotations

from dataclasses import dataclass

from medfw import chips as registry
from medfw.chips import ECDSA_P256, RSA3072, EfuseFamily, FieldDef
from medfw.errors import InputError

__all__ = ["CHIPS", "ECDSA_P256", "RSA3072", "ChipSpec", "EfuseFamily", "chip_by_id", "get_chip"]


@dataclass(frozen=True)
class ChipSpec:
    """The device model's view of one registry chip.

    Attributes:
        name: espefuse/esptool chip name (``esp32c3``).
        chip_id: ``esp_chip_id_t`` value in the image header.
        family: eFuse layout family.
        bootloader_offset: flash offset of the second-stage bootloader.
        secure_version_field_bits: width of the ``SECURE_VERSION`` eFuse field.
        digest_slots: how many secure-boot key digests the chip holds.
        key_blocks: number of ``BLOCK_KEYn`` blocks.
        sbv2_schemes: the Secure Boot v2 signature schemes the ROM and bootloader verify.
        signature_blocks: how many signature blocks of a sector are read (the rest are ignored).
        digest_bytes: how many bytes of the SHA-256 key digest the eFuse keeps (16 on ESP32-C2).
        purpose_digest0: ``KEY_PURPOSE`` value of ``SECURE_BOOT_DIGEST0`` (key-purpose family).
        sha384_enable: the eFuse that must be burned before P-384 signatures verify, if any.
        fields: the chip's eFuse rows (from the registry).
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
    digest_bytes: int = 32
    purpose_digest0: int | None = 9
    sha384_enable: str | None = None
    fields: tuple[FieldDef, ...] = ()

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


def _spec(chip: registry.Chip) -> ChipSpec:
    e = chip.efuse
    assert e is not None
    return ChipSpec(
        name=chip.name,
        chip_id=chip.chip_id,
        family=e.family,
        bootloader_offset=chip.bootloader_offset,
        secure_version_field_bits=e.secure_version_bits,
        digest_slots=e.digest_slots,
        key_blocks=e.key_blocks,
        sbv2_schemes=chip.sbv2_schemes,
        signature_blocks=chip.signature_blocks,
        digest_bytes=e.digest_bytes,
        purpose_digest0=e.purpose_digest0,
        sha384_enable=e.sha384_enable,
        fields=e.fields,
    )


#: the eFuses the model burns and reads, per family (a chip whose rows lack one is not simulated)
_MODEL_FIELDS = {
    EfuseFamily.CLASSIC: {"WR_DIS", "ABS_DONE_1", "BLOCK2", "JTAG_DISABLE", "UART_DOWNLOAD_DIS", "FLASH_CRYPT_CNT"},
    EfuseFamily.KEY_PURPOSE: {"WR_DIS", "SECURE_BOOT_EN", "DIS_PAD_JTAG", "DIS_USB_JTAG", "DIS_DOWNLOAD_MODE"}
    | {"SPI_BOOT_CRYPT_CNT", "KEY_PURPOSE_0", "BLOCK_KEY0", "SECURE_BOOT_KEY_REVOKE0"},
    EfuseFamily.SINGLE_KEY: {"WR_DIS", "SECURE_BOOT_EN", "DIS_PAD_JTAG", "DIS_DOWNLOAD_MODE", "SPI_BOOT_CRYPT_CNT"}
    | {"BLOCK_KEY0_HI_128"},
}


def _simulated(chip: registry.Chip) -> bool:
    e = chip.efuse
    return e is not None and (_MODEL_FIELDS[e.family] | {"SECURE_VERSION"}) <= {f.name for f in e.fields}


#: the simulated chips: registry entries whose eFuse rows have every field the model drives
CHIPS: dict[str, ChipSpec] = {name: _spec(chip) for name, chip in registry.CHIPS.items() if _simulated(chip)}


def get_chip(name: str) -> ChipSpec:
    """Return the spec of chip ``name``.

    Raises:
        InputError: the chip is not modelled.
    """
    try:
        return CHIPS[name.lower().replace("-", "")]
    except KeyError:
        raise InputError(f"unsupported chip {name!r}; supported: {', '.join(sorted(CHIPS))}", field="chip") from None


def chip_by_id(chip_id: int) -> str:
    """Return the chip name for an image header chip id, or ``chip-0xNNNN`` when the registry does not know it."""
    chip = registry.by_id(chip_id)
    return chip.name if chip is not None else f"chip-0x{chip_id:04x}"
