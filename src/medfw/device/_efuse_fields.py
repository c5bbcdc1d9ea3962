# ruff: noqa: E501 - generated table rows keep espefuse's descriptions verbatim
"""eFuse field layout for the chips the device model supports (the security-relevant subset).

The rows are the field definitions of espefuse 5.6.0 (``espefuse/efuse/<chip>/mem_definition.py`` and its
YAML tables): name, block, word, bit position, bit length, type, category, the ``WR_DIS`` bit that
write-protects the field, the ``RD_DIS`` bit that read-protects it, and the description. They let
:meth:`medfw.device.efuse.Efuses.to_espefuse_summary` produce exactly the JSON shape of
``espefuse summary --format json``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["FIELDS", "FieldDef"]


@dataclass(frozen=True)
class FieldDef:
    """One eFuse field as espefuse defines it."""

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


_F = FieldDef


def _key_purpose_fields(
    dis_usb_jtag_word: int,
    dis_usb_jtag_pos: int,
    usb_serial_jtag_download_description: str,
    spi_boot_crypt_cnt_description: str,
    descriptions: dict[str, str] | None = None,
) -> tuple[FieldDef, ...]:
    """The ESP32-C3, ESP32-S3 and ESP32-C6 rows.

    The layout is the same but for where ``DIS_USB_JTAG`` sits; ``descriptions`` replaces the description of the
    fields it names (ESP32-C6's espefuse tables word most of them differently).
    """
    rows = (
        _F("WR_DIS", 0, 0, 0, 32, "uint:32", "config", None, None, "Disable programming of individual eFuses"),
        _F("RD_DIS", 0, 1, 0, 7, "uint:7", "config", 0, None, "Disable reading from BlOCK4-10"),
        _F(
            "DIS_PAD_JTAG",
            0,
            1,
            19,
            1,
            "bool",
            "jtag",
            2,
            None,
            "Set this bit to disable JTAG in the hard way. JTAG is disabled permanently",
        ),
        _F(
            "DIS_USB_JTAG",
            0,
            dis_usb_jtag_word,
            dis_usb_jtag_pos,
            1,
            "bool",
            "usb",
            2,
            None,
            "Set this bit to disable function of usb switch to jtag in module of usb device",
        ),
        _F(
            "SOFT_DIS_JTAG",
            0,
            1,
            16,
            3,
            "uint:3",
            "jtag",
            31,
            None,
            "Set these bits to disable JTAG in the soft way (odd number 1 means disable ). JTAG can be enabled in HMAC module",
        ),
        _F(
            "DIS_DOWNLOAD_MODE",
            0,
            4,
            0,
            1,
            "bool",
            "security",
            18,
            None,
            "Set this bit to disable download mode (boot_mode[3:0] = 0; 1; 2; 3; 6; 7)",
        ),
        _F(
            "ENABLE_SECURITY_DOWNLOAD",
            0,
            4,
            5,
            1,
            "bool",
            "security",
            18,
            None,
            "Set this bit to enable secure UART download mode",
        ),
        _F(
            "DIS_USB_SERIAL_JTAG_DOWNLOAD_MODE",
            0,
            4,
            4,
            1,
            "bool",
            "usb",
            18,
            None,
            usb_serial_jtag_download_description,
        ),
        _F(
            "DIS_DOWNLOAD_MANUAL_ENCRYPT",
            0,
            1,
            20,
            1,
            "bool",
            "security",
            2,
            None,
            "Set this bit to disable flash encryption when in download boot modes",
        ),
        _F(
            "SPI_BOOT_CRYPT_CNT",
            0,
            2,
            18,
            3,
            "uint:3",
            "security",
            4,
            None,
            spi_boot_crypt_cnt_description,
        ),
        _F("SECURE_BOOT_EN", 0, 3, 20, 1, "bool", "security", 15, None, "Set this bit to enable secure boot"),
        _F(
            "SECURE_BOOT_AGGRESSIVE_REVOKE",
            0,
            3,
            21,
            1,
            "bool",
            "security",
            16,
            None,
            "Set this bit to enable revoking aggressive secure boot",
        ),
        _F("SECURE_BOOT_KEY_REVOKE0", 0, 2, 21, 1, "bool", "security", 5, None, "Revoke 1st secure boot key"),
        _F("SECURE_BOOT_KEY_REVOKE1", 0, 2, 22, 1, "bool", "security", 6, None, "Revoke 2nd secure boot key"),
        _F("SECURE_BOOT_KEY_REVOKE2", 0, 2, 23, 1, "bool", "security", 7, None, "Revoke 3rd secure boot key"),
        _F("KEY_PURPOSE_0", 0, 2, 24, 4, "uint:4", "security", 8, None, "Purpose of Key0"),
        _F("KEY_PURPOSE_1", 0, 2, 28, 4, "uint:4", "security", 9, None, "Purpose of Key1"),
        _F("KEY_PURPOSE_2", 0, 3, 0, 4, "uint:4", "security", 10, None, "Purpose of Key2"),
        _F("KEY_PURPOSE_3", 0, 3, 4, 4, "uint:4", "security", 11, None, "Purpose of Key3"),
        _F("KEY_PURPOSE_4", 0, 3, 8, 4, "uint:4", "security", 12, None, "Purpose of Key4"),
        _F("KEY_PURPOSE_5", 0, 3, 12, 4, "uint:4", "security", 13, None, "Purpose of Key5"),
        _F(
            "SECURE_VERSION",
            0,
            4,
            14,
            16,
            "uint:16",
            "security",
            18,
            None,
            "Secure version (used by ESP-IDF anti-rollback feature)",
        ),
        _F("BLOCK_KEY0", 4, 0, 0, 256, "bytes:32", "security", 23, 0, "Key0 or user data"),
        _F("BLOCK_KEY1", 5, 0, 0, 256, "bytes:32", "security", 24, 1, "Key1 or user data"),
        _F("BLOCK_KEY2", 6, 0, 0, 256, "bytes:32", "security", 25, 2, "Key2 or user data"),
        _F("BLOCK_KEY3", 7, 0, 0, 256, "bytes:32", "security", 26, 3, "Key3 or user data"),
        _F("BLOCK_KEY4", 8, 0, 0, 256, "bytes:32", "security", 27, 4, "Key4 or user data"),
        _F("BLOCK_KEY5", 9, 0, 0, 256, "bytes:32", "security", 28, 5, "Key5 or user data"),
    )
    if not descriptions:
        return rows
    return tuple(replace(f, description=descriptions.get(f.name, f.description)) for f in rows)


FIELDS: dict[str, tuple[FieldDef, ...]] = {
    "esp32": (
        _F("WR_DIS", 0, 0, 0, 16, "uint:16", "config", 1, None, "Efuse write disable mask"),
        _F("RD_DIS", 0, 0, 16, 4, "uint:4", "config", 0, None, "Disable reading from BlOCK1-3"),
        _F(
            "FLASH_CRYPT_CNT",
            0,
            0,
            20,
            7,
            "uint:7",
            "flash",
            2,
            None,
            "Flash encryption is enabled if this field has an odd number of bits set",
        ),
        _F(
            "UART_DOWNLOAD_DIS",
            0,
            0,
            27,
            1,
            "bool",
            "security",
            2,
            None,
            "Disable UART download mode. Valid for ESP32 V3 and newer; only",
        ),
        _F("ABS_DONE_0", 0, 6, 4, 1, "bool", "security", 12, None, "Secure boot V1 is enabled for bootloader image"),
        _F("ABS_DONE_1", 0, 6, 5, 1, "bool", "security", 13, None, "Secure boot V2 is enabled for bootloader image"),
        _F("JTAG_DISABLE", 0, 6, 6, 1, "bool", "jtag", 14, None, "Disable JTAG"),
        _F(
            "DISABLE_DL_ENCRYPT",
            0,
            6,
            7,
            1,
            "bool",
            "security",
            15,
            None,
            "Disable flash encryption in UART bootloader",
        ),
        _F(
            "DISABLE_DL_DECRYPT",
            0,
            6,
            8,
            1,
            "bool",
            "security",
            15,
            None,
            "Disable flash decryption in UART bootloader",
        ),
        _F("DISABLE_DL_CACHE", 0, 6, 9, 1, "bool", "config", 15, None, "Disable flash cache in UART bootloader"),
        _F("CONSOLE_DEBUG_DISABLE", 0, 6, 2, 1, "bool", "config", 15, None, "Disable ROM BASIC interpreter fallback"),
        _F("CODING_SCHEME", 0, 6, 0, 2, "uint:2", "config", 10, 3, "Efuse variable block length scheme"),
        _F("BLOCK2", 2, 0, 0, 256, "bytes:32", "security", 8, 1, "Security boot key"),
        _F("SECURE_VERSION", 3, 4, 0, 32, "uint:32", "security", 9, 2, "Secure version for anti-rollback"),
    ),
    "esp32c3": _key_purpose_fields(
        dis_usb_jtag_word=1,
        dis_usb_jtag_pos=9,
        usb_serial_jtag_download_description="Disable UART download mode through USB-Serial-JTAG",
        spi_boot_crypt_cnt_description="Enables flash encryption when 1 or 3 bits are set and disables otherwise",
    ),
    "esp32s3": _key_purpose_fields(
        dis_usb_jtag_word=3,
        dis_usb_jtag_pos=22,
        usb_serial_jtag_download_description="Set this bit to disable UART download mode through USB",
        spi_boot_crypt_cnt_description="Enables flash encryption when 1 or 3 bits are set and disabled otherwise",
    ),
    "esp32c6": _key_purpose_fields(
        dis_usb_jtag_word=1,
        dis_usb_jtag_pos=9,
        usb_serial_jtag_download_description="Represents whether the USB-Serial-JTAG download function is disabled or enabled. 1: disabled. 0: enabled",
        spi_boot_crypt_cnt_description="Enables flash encryption when 1 or 3 bits are set and disables otherwise",
        descriptions={
            "DIS_PAD_JTAG": "Represents whether JTAG is disabled in the hard way(permanently). 1: disabled. 0: enabled",
            "DIS_USB_JTAG": "Represents whether the function of usb switch to jtag is disabled or enabled. 1: disabled. 0: enabled",
            "SOFT_DIS_JTAG": "Represents whether JTAG is disabled in soft way. Odd number: disabled. Even number: enabled",
            "DIS_DOWNLOAD_MODE": "Represents whether Download mode is disabled or enabled. 1: disabled. 0: enabled",
            "ENABLE_SECURITY_DOWNLOAD": "Represents whether security download is enabled or disabled. 1: enabled. 0: disabled",
            "DIS_DOWNLOAD_MANUAL_ENCRYPT": "Represents whether flash encrypt function is disabled or enabled(except in SPI boot mode). 1: disabled. 0: enabled",
            "SECURE_BOOT_EN": "Represents whether secure boot is enabled or disabled. 1: enabled. 0: disabled",
            "SECURE_BOOT_AGGRESSIVE_REVOKE": "Represents whether revoking aggressive secure boot is enabled or disabled. 1: enabled. 0: disabled",
            **{f"KEY_PURPOSE_{n}": f"Represents the purpose of Key{n}" for n in range(6)},
            "SECURE_VERSION": "Represents the version used by ESP-IDF anti-rollback feature",
        },
    ),
}
