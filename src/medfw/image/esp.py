"""The ESP32 family firmware image format (app and bootloader images), pure bytes in, objects out.

Layout (ESP-IDF ``esp_app_format.h``, esptool ``bin_image.py``)::

    0x00  esp_image_header_t (24 bytes): magic 0xE9, segment count, SPI mode, SPI speed/size,
          entry address, then the extended header (wp_pin, drive strengths, chip_id, chip revisions,
          hash_appended)
    0x18  segments: {u32 load_addr; u32 data_len} + data, at most 16
    ....  zero padding so the XOR checksum (seed 0xEF) is the last byte of a 16-byte block
    ....  SHA-256 over everything before it, when hash_appended == 1
    ....  (signed images) 0xFF padding to 4 KiB and the Secure Boot v2 signature sector

An app carries ``esp_app_desc_t`` (magic 0xABCD5432) at file offset 0x20, the start of its first (DROM)
segment, which holds ``secure_version`` (the anti-rollback version).

:meth:`EspImage.from_bytes` is the only way from bytes to an image; it rejects anything the bootloader
would reject (bad magic, unknown chip, segment overruns, bad checksum or hash) with a
:class:`~medfw.errors.MalformedImageError` naming the field and byte offset. :func:`build_app_image` makes a
structurally valid app image for tests, demos and device models.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from medfw import chips as _chips
from medfw.errors import MalformedImageError, UsageError
from medfw.image.esp_layout import (
    _HEADER,
    _SEGMENT,
    APP_DESC_MAGIC,
    APP_DESC_OFFSET,
    APP_DESC_SIZE,
    BOOTLOADER_DESC_MAGIC,
    BOOTLOADER_DESC_SIZE,
    CHECKSUM_SEED,
    CHIPS,
    FLASH_SIZES,
    HEADER_SIZE,
    IMAGE_MAGIC,
    MAX_SEGMENT_LENGTH,
    MAX_SEGMENTS,
    MMU_PAGE,
    SEGMENT_HEADER_SIZE,
    SPI_MODES,
    AppDesc,
    BootloaderDesc,
    ChipInfo,
    Segment,
    _xor_bytes,
    chip_info,
)

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
    "EspImage",
    "Segment",
    "build_app_image",
    "chip_info",
]


@dataclass(frozen=True)
class EspImage:
    """A parsed ESP app or bootloader image.

    Attributes:
        chip_id: ``esp_chip_id_t`` from the extended header.
        chip: the chip name (``esp32``, ``esp32c3`` …).
        segments: the segments in file order.
        app_desc: the application description, or ``None`` (bootloaders, non-IDF images).
        bootloader_desc: a bootloader's ``esp_bootloader_desc_t`` (ESP-IDF ≥ 5.3), or ``None``.
        image_length: bytes of the image proper: header, segments, checksum and appended SHA-256 —
            everything before any Secure Boot v2 padding and signature sector.
        hash_appended: whether a SHA-256 follows the checksum.
        checksum / checksum_valid: the stored XOR checksum and whether it matches the segments.
        stored_sha256 / sha256_valid: the appended hash (or ``None``) and whether it matches.
    """

    chip_id: int
    chip: str
    segments: tuple[Segment, ...]
    app_desc: AppDesc | None
    image_length: int
    hash_appended: bool
    entry_addr: int
    spi_mode: int
    spi_speed: int
    spi_size: int
    wp_pin: int
    min_chip_rev: int
    min_chip_rev_full: int
    max_chip_rev_full: int
    checksum: int
    checksum_valid: bool
    stored_sha256: bytes | None
    sha256_valid: bool | None
    trailing_length: int
    bootloader_desc: BootloaderDesc | None = None

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | None = None, strict: bool = True) -> EspImage:
        """Parse an image from the start of ``data`` (trailing bytes, e.g. a signature sector, are allowed).

        With ``strict`` (the default) a checksum or appended-hash mismatch raises, as the bootloader refuses
        such an image; with ``strict=False`` they are reported in ``checksum_valid`` / ``sha256_valid``.

        Raises:
            MalformedImageError: naming the field and byte offset of the first problem.
        """
        view = memoryview(data)
        if len(view) < HEADER_SIZE:
            raise MalformedImageError(
                f"image is truncated: {len(view)} bytes, the header alone is {HEADER_SIZE}",
                path=path,
                field="esp_image_header_t",
                offset=0,
            )
        (
            magic,
            seg_count,
            spi_mode,
            speed_size,
            entry,
            wp_pin,
            _d0,
            _d1,
            _d2,
            chip_id,
            min_rev,
            min_full,
            max_full,
            _res,
            hash_app,
        ) = _HEADER.unpack_from(view)
        if magic != IMAGE_MAGIC:
            raise MalformedImageError(
                f"image magic is 0x{magic:02x}, expected 0x{IMAGE_MAGIC:02x}", path=path, field="magic", offset=0
            )
        if seg_count == 0 or seg_count > MAX_SEGMENTS:
            raise MalformedImageError(
                f"segment count {seg_count} is outside 1..{MAX_SEGMENTS}", path=path, field="segment_count", offset=1
            )
        chip = _chips.by_id(chip_id)
        if chip is None:
            raise MalformedImageError(f"unknown chip id {chip_id}", path=path, field="chip_id", offset=12)
        if hash_app not in (0, 1):
            raise MalformedImageError(
                f"hash_appended is {hash_app}, expected 0 or 1", path=path, field="hash_appended", offset=23
            )
        segments: list[Segment] = []
        pos = HEADER_SIZE
        checksum = CHECKSUM_SEED
        for i in range(seg_count):
            if pos + SEGMENT_HEADER_SIZE > len(view):
                raise MalformedImageError(
                    f"image is truncated in the header of segment {i}", path=path, field=f"segment[{i}]", offset=pos
                )
            load_addr, length = _SEGMENT.unpack_from(view, pos)
            if length % 4 != 0 or length >= MAX_SEGMENT_LENGTH:
                raise MalformedImageError(
                    f"segment {i} length 0x{length:x} is not a multiple of 4 below 16 MiB",
                    path=path,
                    field=f"segment[{i}].data_len",
                    offset=pos + 4,
                )
            start = pos + SEGMENT_HEADER_SIZE
            if start + length > len(view):
                raise MalformedImageError(
                    f"segment {i} runs past the end of the image ({length} bytes from offset {start}, "
                    f"image is {len(view)} bytes)",
                    path=path,
                    field=f"segment[{i}].data_len",
                    offset=pos + 4,
                )
            checksum = _xor_bytes(view[start : start + length], checksum)
            segments.append(Segment(index=i, load_addr=load_addr, file_offset=pos, length=length))
            pos = start + length
        checksum_end = (pos + 16) & ~15  # the checksum is the last byte of a 16-byte block
        if checksum_end > len(view):
            raise MalformedImageError(
                "image is truncated before its checksum", path=path, field="checksum", offset=checksum_end - 1
            )
        stored_checksum = view[checksum_end - 1]
        checksum_valid = stored_checksum == checksum
        if strict and not checksum_valid:
            raise MalformedImageError(
                f"checksum is 0x{stored_checksum:02x}, segments give 0x{checksum:02x}",
                path=path,
                field="checksum",
                offset=checksum_end - 1,
            )
        image_length = checksum_end
        stored_sha: bytes | None = None
        sha_valid: bool | None = None
        if hash_app:
            if checksum_end + 32 > len(view):
                raise MalformedImageError(
                    "image is truncated in its appended SHA-256", path=path, field="sha256", offset=checksum_end
                )
            stored_sha = bytes(view[checksum_end : checksum_end + 32])
            sha_valid = hmac.compare_digest(stored_sha, hashlib.sha256(view[:checksum_end]).digest())
            if strict and not sha_valid:
                raise MalformedImageError(
                    "appended SHA-256 does not match the image", path=path, field="sha256", offset=checksum_end
                )
            image_length += 32
        app_desc: AppDesc | None = None
        first = segments[0]
        if first.length >= APP_DESC_SIZE and first.data_offset == APP_DESC_OFFSET:
            raw = bytes(view[APP_DESC_OFFSET : APP_DESC_OFFSET + APP_DESC_SIZE])
            if int.from_bytes(raw[:4], "little") == APP_DESC_MAGIC:
                app_desc = AppDesc.from_bytes(raw, path=path)
        bootloader_desc: BootloaderDesc | None = None
        if app_desc is None and first.length >= BOOTLOADER_DESC_SIZE and view[APP_DESC_OFFSET] == BOOTLOADER_DESC_MAGIC:
            raw = bytes(view[APP_DESC_OFFSET : APP_DESC_OFFSET + BOOTLOADER_DESC_SIZE])
            bootloader_desc = BootloaderDesc.from_bytes(raw, path=path)
        return cls(
            chip_id=chip_id,
            chip=chip.name,
            segments=tuple(segments),
            app_desc=app_desc,
            image_length=image_length,
            hash_appended=bool(hash_app),
            entry_addr=entry,
            spi_mode=spi_mode,
            spi_speed=speed_size & 0x0F,
            spi_size=speed_size >> 4,
            wp_pin=wp_pin,
            min_chip_rev=min_rev,
            min_chip_rev_full=min_full,
            max_chip_rev_full=max_full,
            checksum=stored_checksum,
            checksum_valid=checksum_valid,
            stored_sha256=stored_sha,
            sha256_valid=sha_valid,
            trailing_length=len(view) - image_length,
            bootloader_desc=bootloader_desc,
        )

    @property
    def secure_version(self) -> int | None:
        """The app's anti-rollback ``secure_version`` (``None`` without an app description)."""
        return self.app_desc.secure_version if self.app_desc is not None else None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (used by ``medfw image info --json``)."""
        desc = self.app_desc
        return {
            "chip": self.chip,
            "chip_id": self.chip_id,
            "entry_addr": f"0x{self.entry_addr:08x}",
            "spi_mode": SPI_MODES.get(self.spi_mode, str(self.spi_mode)),
            "flash_size": FLASH_SIZES.get(self.spi_size, str(self.spi_size)),
            "min_chip_rev_full": self.min_chip_rev_full,
            "max_chip_rev_full": self.max_chip_rev_full,
            "image_length": self.image_length,
            "trailing_length": self.trailing_length,
            "checksum": f"0x{self.checksum:02x}",
            "checksum_valid": self.checksum_valid,
            "hash_appended": self.hash_appended,
            "sha256": self.stored_sha256.hex() if self.stored_sha256 is not None else None,
            "sha256_valid": self.sha256_valid,
            "segments": [
                {
                    "index": s.index,
                    "load_addr": f"0x{s.load_addr:08x}",
                    "file_offset": s.file_offset,
                    "length": s.length,
                }
                for s in self.segments
            ],
            "app_desc": None
            if desc is None
            else {
                "secure_version": desc.secure_version,
                "version": desc.version,
                "project_name": desc.project_name,
                "date": desc.date,
                "time": desc.time,
                "idf_ver": desc.idf_ver,
                "app_elf_sha256": desc.app_elf_sha256.hex(),
            },
            "bootloader_desc": None
            if self.bootloader_desc is None
            else {
                "secure_version": self.bootloader_desc.secure_version,
                "version": self.bootloader_desc.version,
                "idf_ver": self.bootloader_desc.idf_ver,
                "date_time": self.bootloader_desc.date_time,
            },
        }


def build_app_image(
    *,
    chip: str = _chips.DEFAULT_CHIP,
    version: str,
    secure_version: int,
    project_name: str = "medfw-example",
    payload: bytes = b"",
    size: int | None = None,
    idf_ver: str = "v5.4",
    date: str = "Jan  1 2026",
    time: str = "00:00:00",
) -> bytes:
    """Build a structurally valid, unsigned ESP-IDF app image.

    Segment 0 is a DROM segment starting with ``esp_app_desc_t`` at file offset 0x20 (where ESP-IDF puts it);
    segment 1 is a flash-mapped code segment holding ``payload`` (zero-filled to a multiple of 4), its load
    address congruent to its file offset modulo the 64 KiB MMU page, as the bootloader requires. The XOR
    checksum and appended SHA-256 are filled in. ``app_elf_sha256`` is the SHA-256 of ``payload``.

    Args:
        size: if given, the payload segment is zero-filled so the image is exactly ``size`` bytes
            (a multiple of 16, large enough for the header, descriptor and payload).

    Raises:
        UsageError: unknown chip, out-of-range ``secure_version``, strings too long, or unreachable ``size``.
    """
    info = chip_info(chip)
    if not 0 <= secure_version <= 0xFFFFFFFF:
        raise UsageError("secure_version must fit in 32 bits", field="secure_version")
    desc = AppDesc(
        secure_version=secure_version,
        version=version,
        project_name=project_name,
        time=time,
        date=date,
        idf_ver=idf_ver,
        app_elf_sha256=hashlib.sha256(payload).digest(),
        min_efuse_blk_rev_full=0,
        max_efuse_blk_rev_full=0,
        mmu_page_size=MMU_PAGE,
    ).to_bytes()
    body = payload + b"\x00" * (-len(payload) % 4)
    payload_data_offset = HEADER_SIZE + SEGMENT_HEADER_SIZE + len(desc) + SEGMENT_HEADER_SIZE
    if size is not None:
        if size % 16 != 0:
            raise UsageError(f"image size {size} is not a multiple of 16", field="size")
        # image = payload_data_offset + len(body) + checksum padding (1..16 bytes) + 32-byte hash
        room = size - 32 - payload_data_offset - 1
        target = room - room % 4
        if target < len(body):
            raise UsageError(
                f"image size {size} is too small for the header, descriptor and {len(payload)}-byte payload",
                field="size",
            )
        body += b"\x00" * (target - len(body))
    payload_addr = info.irom_start + payload_data_offset % MMU_PAGE
    segments = [(info.drom_start + APP_DESC_OFFSET, desc), (payload_addr, body)]
    header = _HEADER.pack(
        IMAGE_MAGIC,
        len(segments),
        2,  # DIO
        0x10,  # 2 MB flash, default speed
        payload_addr,
        0xEE,  # wp_pin disabled
        0,
        0,
        0,
        info.chip_id,
        0,
        0,
        0xFFFF,
        b"",
        1,  # hash appended
    )
    out = bytearray(header)
    checksum = CHECKSUM_SEED
    for addr, seg in segments:
        out += _SEGMENT.pack(addr, len(seg)) + seg
        checksum = _xor_bytes(memoryview(seg), checksum)
    out += b"\x00" * (15 - len(out) % 16)
    out.append(checksum)
    out += hashlib.sha256(out).digest()
    if size is not None and len(out) != size:
        raise UsageError(f"cannot build an image of exactly {size} bytes", field="size")
    return bytes(out)
