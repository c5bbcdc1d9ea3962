# ruff: noqa: E501 - eFuse rows keep espefuse's descriptions verbatim
"""ESP32-C5: RSA-3072, ECDSA P-256 or P-384 Secure Boot v2 (P-384 only once ``SECURE_BOOT_SHA384_EN`` is
burned), key-purpose eFuses with 5-bit ``KEY_PURPOSE_n`` and a 9-bit ``SECURE_VERSION``; bootloader at 0x2000.

The eFuse rows are the security-relevant field definitions of espefuse 5.6.0 (``python tools/efuse_rows.py esp32c5 …``
prints them): name, block, word, bit position, bit length, type, category, ``WR_DIS`` bit, ``RD_DIS`` bit,
description.
"""

from __future__ import annotations

from medfw.chips._model import ECDSA_P256, ECDSA_P384, RSA3072, Chip, EfuseFamily, EfuseLayout, FieldDef

_F = FieldDef

# fmt: off
FIELDS = (
    _F("WR_DIS", 0, 0, 0, 32, "uint:32", "config", None, None, "Disable programming of individual eFuses"),
    _F("RD_DIS", 0, 1, 0, 7, "uint:7", "config", 0, None, "Disable reading from BlOCK4-10"),
    _F("DIS_PAD_JTAG", 0, 1, 19, 1, "bool", "jtag", 2, None, "Represents whether PAD JTAG is disabled in the hard way (permanently). 1: Disabled 0: Enabled"),
    _F("DIS_USB_JTAG", 0, 1, 9, 1, "bool", "usb", 2, None, "Represents whether the USB-to-JTAG function in USB Serial/JTAG is disabled. Note that EFUSE_DIS_USB_JTAG is available only when EFUSE_DIS_USB_SERIAL_JTAG is configured to 0. 1: Disabled 0: Enabled"),
    _F("SOFT_DIS_JTAG", 0, 1, 16, 3, "uint:3", "jtag", 31, None, "Represents whether PAD JTAG is disabled in the soft way. It can be restarted via HMAC. Odd count of bits with a value of 1: Disabled; Even count of bits with a value of 1: Enabled"),
    _F("DIS_DOWNLOAD_MODE", 0, 4, 0, 1, "bool", "security", 18, None, "Represents whether Download mode is disable or enable. 1. Disable 0: Enable"),
    _F("ENABLE_SECURITY_DOWNLOAD", 0, 4, 5, 1, "bool", "security", 18, None, "Represents whether security download is enabled. Only downloading into flash is supported. Reading/writing RAM or registers is not supported (i.e. stub download is not supported). 1: Enabled 0: Disabled"),
    _F("DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE", 0, 4, 4, 1, "bool", "usb", 18, None, "Represents whether the USB-Serial-JTAG download function is disabled or enabled. 1: Disable 0: Enable"),
    _F("DIS_DOWNLOAD_MANUAL_ENCRYPT", 0, 1, 20, 1, "bool", "security", 2, None, "Represents whether flash encryption is disabled (except in SPI boot mode). 1: Disabled 0: Enabled"),
    _F("SPI_BOOT_CRYPT_CNT", 0, 2, 16, 3, "uint:3", "security", 4, None, "Enables flash encryption when 1 or 3 bits are set and disables otherwise"),
    _F("SECURE_BOOT_EN", 0, 3, 25, 1, "bool", "security", 15, None, "Represents whether Secure Boot is enabled. 1: Enabled 0: Disabled"),
    _F("SECURE_BOOT_AGGRESSIVE_REVOKE", 0, 3, 26, 1, "bool", "security", 16, None, "Represents whether aggressive revocation of Secure Boot is enabled. 1: Enabled 0: Disabled"),
    _F("SECURE_BOOT_SHA384_EN", 0, 4, 31, 1, "bool", "security", 14, None, "Represents if the chip supports Secure Boot using SHA-384"),
    _F("SECURE_BOOT_KEY_REVOKE0", 0, 2, 19, 1, "bool", "security", 5, None, "Revoke 1st secure boot key"),
    _F("SECURE_BOOT_KEY_REVOKE1", 0, 2, 20, 1, "bool", "security", 6, None, "Revoke 2nd secure boot key"),
    _F("SECURE_BOOT_KEY_REVOKE2", 0, 2, 21, 1, "bool", "security", 7, None, "Revoke 3rd secure boot key"),
    _F("KEY_PURPOSE_0", 0, 2, 22, 5, "uint:5", "security", 8, None, "Represents the purpose of Key0."),
    _F("KEY_PURPOSE_1", 0, 2, 27, 5, "uint:5", "security", 9, None, "Represents the purpose of Key1."),
    _F("KEY_PURPOSE_2", 0, 3, 0, 5, "uint:5", "security", 10, None, "Represents the purpose of Key2."),
    _F("KEY_PURPOSE_3", 0, 3, 5, 5, "uint:5", "security", 11, None, "Represents the purpose of Key3."),
    _F("KEY_PURPOSE_4", 0, 3, 10, 5, "uint:5", "security", 12, None, "Represents the purpose of Key4."),
    _F("KEY_PURPOSE_5", 0, 3, 15, 5, "uint:5", "security", 13, None, "Represents the purpose of Key5."),
    _F("SECURE_VERSION", 0, 4, 9, 9, "uint:9", "security", 18, None, "Represents the app secure version used by ESP-IDF anti-rollback feature"),
    _F("BLOCK_KEY0", 4, 0, 0, 256, "bytes:32", "security", 23, 0, "Key0 or user data"),
    _F("BLOCK_KEY1", 5, 0, 0, 256, "bytes:32", "security", 24, 1, "Key1 or user data"),
    _F("BLOCK_KEY2", 6, 0, 0, 256, "bytes:32", "security", 25, 2, "Key2 or user data"),
    _F("BLOCK_KEY3", 7, 0, 0, 256, "bytes:32", "security", 26, 3, "Key3 or user data"),
    _F("BLOCK_KEY4", 8, 0, 0, 256, "bytes:32", "security", 27, 4, "Key4 or user data"),
    _F("BLOCK_KEY5", 9, 0, 0, 256, "bytes:32", "security", 28, 5, "Key5 or user data"),
)
# fmt: on

CHIP = Chip(
    "esp32c5",
    23,
    0x42000000,
    0x42000000,
    bootloader_offset=0x2000,
    sbv2_schemes=frozenset({ECDSA_P256, ECDSA_P384, RSA3072}),
    efuse=EfuseLayout(
        EfuseFamily.KEY_PURPOSE,
        secure_version_bits=9,
        digest_slots=3,
        key_blocks=6,
        sha384_enable="SECURE_BOOT_SHA384_EN",
        fields=FIELDS,
    ),
)
