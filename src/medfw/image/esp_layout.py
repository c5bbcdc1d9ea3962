"""The byte layout of ESP32 family images: header and segment structs, the app and bootloader descriptors
(``esp_app_desc_t``, ``esp_bootloader_desc_t``) and the XOR checksum (see :mod:`medfw.image.esp`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from medfw import chips as _chips
from medfw.errors import MalformedImageError, UsageError

__all__ = [
    "APP_DESC_MAGIC",
    "APP_DESC_OFFSET",
    "APP_DESC_SIZE",
    "BOOTLOADER_DESC_MAGIC",
    "BOOTLOADER_DESC_SIZE",
    "CHECKSUM_SEED",
    "CHIPS",
    "FLASH_SIZES",
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_LENGTH",
    "MMU_PAGE",
    "SEGMENT_HEADER_SIZE",
    "SPI_MODES",
    "AppDesc",
    "BootloaderDesc",
    "ChipInfo",
    "Segment",
    "chip_info",
]

IMAGE_MAGIC = 0xE9
APP_DESC_MAGIC = 0xABCD5432
APP_DESC_OFFSET = 0x20
APP_DESC_SIZE = 256
HEADER_SIZE = 24
SEGMENT_HEADER_SIZE = 8
MAX_SEGMENTS = 16
MAX_SEGMENT_LENGTH = 16 * 1024 * 1024
CHECKSUM_SEED = 0xEF
MMU_PAGE = 0x10000

_HEADER = struct.Struct("<BBBBIBBBBHBHH4sB")
_SEGMENT = struct.Struct("<II")
_APP_DESC = struct.Struct("<II8s32s32s16s16s32s32sHHBB2s72s")
_BOOTLOADER_DESC = struct.Struct("<B2sBI32s24s16s")
BOOTLOADER_DESC_MAGIC = 0x50
BOOTLOADER_DESC_SIZE = 80

SPI_MODES = {0: "QIO", 1: "QOUT", 2: "DIO", 3: "DOUT", 4: "FAST_READ", 5: "SLOW_READ"}
FLASH_SIZES = {0: "1MB", 1: "2MB", 2: "4MB", 3: "8MB", 4: "16MB", 5: "32MB", 6: "64MB", 7: "128MB"}


#: the chips the image format knows: the one registry (:mod:`medfw.chips`)
CHIPS = _chips.CHIPS
ChipInfo = _chips.Chip


def chip_info(chip: str) -> ChipInfo:
    """Return the registry entry for a chip name such as ``esp32c3`` (case and dashes ignored).

    Raises:
        UsageError: unknown chip.
    """
    return _chips.get(chip)


@dataclass(frozen=True)
class Segment:
    """One image segment: where it loads, and where its data sits in the file."""

    index: int
    load_addr: int
    file_offset: int
    length: int

    @property
    def data_offset(self) -> int:
        """File offset of the segment's first data byte."""
        return self.file_offset + SEGMENT_HEADER_SIZE


@dataclass(frozen=True)
class AppDesc:
    """``esp_app_desc_t``: the application description ESP-IDF places at file offset 0x20."""

    secure_version: int
    version: str
    project_name: str
    time: str
    date: str
    idf_ver: str
    app_elf_sha256: bytes
    min_efuse_blk_rev_full: int
    max_efuse_blk_rev_full: int
    mmu_page_size: int

    @classmethod
    def from_bytes(cls, raw: bytes, *, path: str | None = None, offset: int = APP_DESC_OFFSET) -> AppDesc:
        """Parse a 256-byte ``esp_app_desc_t``.

        Raises:
            MalformedImageError: too short or the magic word is wrong.
        """
        if len(raw) < APP_DESC_SIZE:
            raise MalformedImageError("app description is truncated", path=path, field="esp_app_desc_t", offset=offset)
        (
            magic,
            secure_version,
            _r1,
            version,
            project,
            time_,
            date,
            idf_ver,
            elf_sha,
            min_rev,
            max_rev,
            mmu,
            _sf,
            _r3,
            _r2,
        ) = _APP_DESC.unpack_from(raw)
        if magic != APP_DESC_MAGIC:
            raise MalformedImageError(
                f"app description magic is 0x{magic:08x}, expected 0x{APP_DESC_MAGIC:08x}",
                path=path,
                field="esp_app_desc_t.magic_word",
                offset=offset,
            )
        return cls(
            secure_version=secure_version,
            version=_cstr(version),
            project_name=_cstr(project),
            time=_cstr(time_),
            date=_cstr(date),
            idf_ver=_cstr(idf_ver),
            app_elf_sha256=bytes(elf_sha),
            min_efuse_blk_rev_full=min_rev,
            max_efuse_blk_rev_full=max_rev,
            mmu_page_size=(1 << mmu) if 0 < mmu < 32 else 0,
        )

    def to_bytes(self) -> bytes:
        """Serialize as the 256-byte C structure (strings NUL-padded, at most 31 bytes each)."""
        mmu_log2 = self.mmu_page_size.bit_length() - 1 if self.mmu_page_size > 0 else 0
        return _APP_DESC.pack(
            APP_DESC_MAGIC,
            self.secure_version,
            b"",
            _cfield(self.version, 32, "version"),
            _cfield(self.project_name, 32, "project_name"),
            _cfield(self.time, 16, "time"),
            _cfield(self.date, 16, "date"),
            _cfield(self.idf_ver, 32, "idf_ver"),
            self.app_elf_sha256,
            self.min_efuse_blk_rev_full,
            self.max_efuse_blk_rev_full,
            mmu_log2,
            0,
            b"",
            b"",
        )


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")


def _cfield(value: str, size: int, name: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) >= size or b"\x00" in raw:
        raise UsageError(f"{name} must be at most {size - 1} bytes without NUL", field=name)
    return raw


@dataclass(frozen=True)
class BootloaderDesc:
    """``esp_bootloader_desc_t``: the description a second-stage bootloader carries at file offset 0x20."""

    secure_version: int
    version: int
    idf_ver: str
    date_time: str

    @classmethod
    def from_bytes(cls, raw: bytes, *, path: str | None = None, offset: int = APP_DESC_OFFSET) -> BootloaderDesc:
        """Parse an 80-byte ``esp_bootloader_desc_t``.

        Raises:
            MalformedImageError: too short or the magic byte is not 0x50.
        """
        if len(raw) < BOOTLOADER_DESC_SIZE:
            raise MalformedImageError(
                "bootloader description is truncated", path=path, field="esp_bootloader_desc_t", offset=offset
            )
        magic, _r1, secure_version, version, idf_ver, date_time, _r2 = _BOOTLOADER_DESC.unpack_from(raw)
        if magic != BOOTLOADER_DESC_MAGIC:
            raise MalformedImageError(
                f"bootloader description magic is 0x{magic:02x}, expected 0x{BOOTLOADER_DESC_MAGIC:02x}",
                path=path,
                field="esp_bootloader_desc_t.magic_byte",
                offset=offset,
            )
        return cls(secure_version=secure_version, version=version, idf_ver=_cstr(idf_ver), date_time=_cstr(date_time))


def _xor_bytes(data: memoryview, seed: int) -> int:
    """XOR of all bytes of ``data`` with ``seed``.

    The bytes are read as one little-endian integer and folded in halves (each step runs in C), so a
    16 MiB segment costs a few linear passes rather than a Python loop per byte.
    """
    n = len(data)
    if n == 0:
        return seed
    width = 1 << (n - 1).bit_length()  # zero-extend to a power of two: zeros do not change the XOR
    value = int.from_bytes(data, "little")
    while width > 1:
        width //= 2
        bits = 8 * width
        value = (value >> bits) ^ (value & ((1 << bits) - 1))
    return value ^ seed
