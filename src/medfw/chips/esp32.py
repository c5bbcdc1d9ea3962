# ruff: noqa: E501 - eFuse rows keep espefuse's descriptions verbatim
"""ESP32 (rev ≥ 3.0 for Secure Boot v2): the classic eFuse layout — one RSA-3072 key digest in ``BLOCK2``,
Secure Boot v2 enabled by ``ABS_DONE_1``, no revoke bits; the ROM reads only the first signature block.

The eFuse rows are the security-relevant field definitions of espefuse 5.6.0 (``python tools/efuse_rows.py esp32 …``
prints them): name, block, word, bit position, bit length, type, category, ``WR_DIS`` bit, ``RD_DIS`` bit,
description.
"""

from __future__ import annotations

from medfw.chips._model import RSA3072, Chip, EfuseFamily, EfuseLayout, FieldDef

_F = FieldDef

# fmt: off
FIELDS = (
    _F("WR_DIS", 0, 0, 0, 16, "uint:16", "config", 1, None, "Efuse write disable mask"),
    _F("RD_DIS", 0, 0, 16, 4, "uint:4", "config", 0, None, "Disable reading from BlOCK1-3"),
    _F("FLASH_CRYPT_CNT", 0, 0, 20, 7, "uint:7", "flash", 2, None, "Flash encryption is enabled if this field has an odd number of bits set"),
    _F("UART_DOWNLOAD_DIS", 0, 0, 27, 1, "bool", "security", 2, None, "Disable UART download mode. Valid for ESP32 V3 and newer; only"),
    _F("ABS_DONE_0", 0, 6, 4, 1, "bool", "security", 12, None, "Secure boot V1 is enabled for bootloader image"),
    _F("ABS_DONE_1", 0, 6, 5, 1, "bool", "security", 13, None, "Secure boot V2 is enabled for bootloader image"),
    _F("JTAG_DISABLE", 0, 6, 6, 1, "bool", "jtag", 14, None, "Disable JTAG"),
    _F("DISABLE_DL_ENCRYPT", 0, 6, 7, 1, "bool", "security", 15, None, "Disable flash encryption in UART bootloader"),
    _F("DISABLE_DL_DECRYPT", 0, 6, 8, 1, "bool", "security", 15, None, "Disable flash decryption in UART bootloader"),
    _F("DISABLE_DL_CACHE", 0, 6, 9, 1, "bool", "config", 15, None, "Disable flash cache in UART bootloader"),
    _F("CONSOLE_DEBUG_DISABLE", 0, 6, 2, 1, "bool", "config", 15, None, "Disable ROM BASIC interpreter fallback"),
    _F("CODING_SCHEME", 0, 6, 0, 2, "uint:2", "config", 10, 3, "Efuse variable block length scheme"),
    _F("BLOCK2", 2, 0, 0, 256, "bytes:32", "security", 8, 1, "Security boot key"),
    _F("SECURE_VERSION", 3, 4, 0, 32, "uint:32", "security", 9, 2, "Secure version for anti-rollback"),
)
# fmt: on

CHIP = Chip(
    "esp32",
    0,
    0x3F400000,
    0x400D0000,
    bootloader_offset=0x1000,
    sbv2_schemes=frozenset({RSA3072}),
    signature_blocks=1,
    efuse=EfuseLayout(
        EfuseFamily.CLASSIC,
        secure_version_bits=32,
        digest_slots=1,
        key_blocks=0,
        purpose_digest0=None,
        fields=FIELDS,
    ),
)
