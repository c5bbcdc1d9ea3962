# ruff: noqa: E501 - eFuse rows keep espefuse's descriptions verbatim
"""ESP32-C2: ECDSA (P-192/P-256) Secure Boot v2 only, one key and one signature block; the eFuse keeps a
128-bit key digest in ``BLOCK_KEY0_HI_128`` and cannot revoke it.

The eFuse rows are the security-relevant field definitions of espefuse 5.6.0 (``python tools/efuse_rows.py esp32c2 …``
prints them): name, block, word, bit position, bit length, type, category, ``WR_DIS`` bit, ``RD_DIS`` bit,
description.
"""

from __future__ import annotations

from medfw.chips._model import ECDSA_P192, ECDSA_P256, Chip, EfuseFamily, EfuseLayout, FieldDef

_F = FieldDef

# fmt: off
FIELDS = (
    _F("WR_DIS", 0, 0, 0, 8, "uint:8", "config", None, None, "Disable programming of individual eFuses"),
    _F("RD_DIS", 0, 1, 0, 2, "uint:2", "config", 0, None, "Disable reading from BlOCK3"),
    _F("DIS_PAD_JTAG", 0, 1, 4, 1, "bool", "jtag", 1, None, "Set this bit to disable pad jtag"),
    _F("DIS_DOWNLOAD_ICACHE", 0, 1, 5, 1, "bool", "security", 1, None, "The bit be set to disable icache in download mode"),
    _F("DIS_DOWNLOAD_MANUAL_ENCRYPT", 0, 1, 6, 1, "bool", "security", 2, None, "The bit be set to disable manual encryption"),
    _F("SPI_BOOT_CRYPT_CNT", 0, 1, 7, 3, "uint:3", "security", 2, None, "Enables flash encryption when 1 or 3 bits are set and disables otherwise"),
    _F("XTS_KEY_LENGTH_256", 0, 1, 10, 1, "bool", "security", 2, None, "Flash encryption key length"),
    _F("DIS_DOWNLOAD_MODE", 0, 1, 14, 1, "bool", "security", 3, None, "Set this bit to disable download mode (boot_mode[3:0] = 0; 1; 2; 4; 5; 6; 7)"),
    _F("ENABLE_SECURITY_DOWNLOAD", 0, 1, 16, 1, "bool", "security", 3, None, "Set this bit to enable secure UART download mode"),
    _F("SECURE_BOOT_EN", 0, 1, 21, 1, "bool", "security", 2, None, "The bit be set to enable secure boot"),
    _F("SECURE_VERSION", 0, 1, 22, 4, "uint:4", "security", 4, None, "Secure version for anti-rollback"),
    _F("BLOCK_KEY0_LOW_128", 3, 0, 0, 128, "bytes:16", "security", 7, 0, "BLOCK_KEY0 - lower 128-bits. 128-bit key of Flash Encryption"),
    _F("BLOCK_KEY0_HI_128", 3, 4, 0, 128, "bytes:16", "security", 7, 1, "BLOCK_KEY0 - higher 128-bits. 128-bits key of Secure Boot"),
)
# fmt: on

CHIP = Chip(
    "esp32c2",
    12,
    0x3C000000,
    0x42000000,
    sbv2_schemes=frozenset({ECDSA_P192, ECDSA_P256}),
    signature_blocks=1,
    efuse=EfuseLayout(
        EfuseFamily.SINGLE_KEY,
        secure_version_bits=4,
        digest_slots=1,
        key_blocks=1,
        digest_bytes=16,
        purpose_digest0=None,
        fields=FIELDS,
    ),
)
