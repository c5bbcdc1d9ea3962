# ruff: noqa: E501 - eFuse rows keep espefuse's descriptions verbatim
"""ESP32-S2: RSA-3072 Secure Boot v2, key-purpose eFuses (``BLOCK_KEYn`` + ``KEY_PURPOSE_n``, three revocable
digest slots); JTAG is disabled by ``HARD_DIS_JTAG`` (there is no USB-JTAG bridge).

The eFuse rows are the security-relevant field definitions of espefuse 5.6.0 (``python tools/efuse_rows.py esp32s2 …``
prints them): name, block, word, bit position, bit length, type, category, ``WR_DIS`` bit, ``RD_DIS`` bit,
description.
"""

from __future__ import annotations

from medfw.chips._model import RSA3072, Chip, EfuseFamily, EfuseLayout, FieldDef

_F = FieldDef

# fmt: off
FIELDS = (
    _F("WR_DIS", 0, 0, 0, 32, "uint:32", "config", None, None, "Disable programming of individual eFuses"),
    _F("RD_DIS", 0, 1, 0, 7, "uint:7", "config", 0, None, "Disable reading from BlOCK4-10"),
    _F("HARD_DIS_JTAG", 0, 1, 18, 1, "bool", "jtag", 2, None, "Hardware disables JTAG permanently"),
    _F("SOFT_DIS_JTAG", 0, 1, 17, 1, "bool", "jtag", 2, None, "Software disables JTAG. When software disabled; JTAG can be activated temporarily by HMAC peripheral"),
    _F("DIS_DOWNLOAD_MODE", 0, 4, 0, 1, "bool", "security", 18, None, "Set this bit to disable all download boot modes"),
    _F("ENABLE_SECURITY_DOWNLOAD", 0, 4, 5, 1, "bool", "security", 18, None, "Set this bit to enable secure UART download mode (read/write flash only)"),
    _F("DIS_DOWNLOAD_MANUAL_ENCRYPT", 0, 1, 19, 1, "bool", "security", 2, None, "Disables flash encryption when in download boot modes"),
    _F("SPI_BOOT_CRYPT_CNT", 0, 2, 18, 3, "uint:3", "security", 4, None, "Enables flash encryption when 1 or 3 bits are set and disabled otherwise"),
    _F("SECURE_BOOT_EN", 0, 3, 20, 1, "bool", "security", 15, None, "Set this bit to enable secure boot"),
    _F("SECURE_BOOT_AGGRESSIVE_REVOKE", 0, 3, 21, 1, "bool", "security", 16, None, "Set this bit to enable aggressive secure boot key revocation mode"),
    _F("SECURE_BOOT_KEY_REVOKE0", 0, 2, 21, 1, "bool", "security", 5, None, "Revoke 1st secure boot key"),
    _F("SECURE_BOOT_KEY_REVOKE1", 0, 2, 22, 1, "bool", "security", 6, None, "Revoke 2nd secure boot key"),
    _F("SECURE_BOOT_KEY_REVOKE2", 0, 2, 23, 1, "bool", "security", 7, None, "Revoke 3rd secure boot key"),
    _F("KEY_PURPOSE_0", 0, 2, 24, 4, "uint:4", "security", 8, None, "Purpose of KEY0"),
    _F("KEY_PURPOSE_1", 0, 2, 28, 4, "uint:4", "security", 9, None, "Purpose of KEY1"),
    _F("KEY_PURPOSE_2", 0, 3, 0, 4, "uint:4", "security", 10, None, "Purpose of KEY2"),
    _F("KEY_PURPOSE_3", 0, 3, 4, 4, "uint:4", "security", 11, None, "Purpose of KEY3"),
    _F("KEY_PURPOSE_4", 0, 3, 8, 4, "uint:4", "security", 12, None, "Purpose of KEY4"),
    _F("KEY_PURPOSE_5", 0, 3, 12, 4, "uint:4", "security", 13, None, "Purpose of KEY5"),
    _F("SECURE_VERSION", 0, 4, 11, 16, "uint:16", "security", 18, None, "Secure version (used by ESP-IDF anti-rollback feature)"),
    _F("BLOCK_KEY0", 4, 0, 0, 256, "bytes:32", "security", 23, 0, "Key0 or user data"),
    _F("BLOCK_KEY1", 5, 0, 0, 256, "bytes:32", "security", 24, 1, "Key1 or user data"),
    _F("BLOCK_KEY2", 6, 0, 0, 256, "bytes:32", "security", 25, 2, "Key2 or user data"),
    _F("BLOCK_KEY3", 7, 0, 0, 256, "bytes:32", "security", 26, 3, "Key3 or user data"),
    _F("BLOCK_KEY4", 8, 0, 0, 256, "bytes:32", "security", 27, 4, "Key4 or user data"),
    _F("BLOCK_KEY5", 9, 0, 0, 256, "bytes:32", "security", 28, 5, "Key5 or user data"),
)
# fmt: on

CHIP = Chip(
    "esp32s2",
    2,
    0x3F000000,
    0x40080000,
    bootloader_offset=0x1000,
    sbv2_schemes=frozenset({RSA3072}),
    efuse=EfuseLayout(
        EfuseFamily.KEY_PURPOSE,
        secure_version_bits=16,
        digest_slots=3,
        key_blocks=6,
        fields=FIELDS,
    ),
)
