"""MCUboot image layout constants, the TLV type table and the frozen dataclasses of a parsed image (header,
TLVs, trailer, version); the parser is :mod:`medfw.image.mcuboot_format`."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from medfw.errors import UsageError

__all__ = [
    "ALIGNMENTS",
    "BOOT_MAGIC",
    "DEFAULT_MAX_ALIGN",
    "DEFAULT_MAX_SECTORS",
    "ENCRYPTED_FLAGS",
    "FLAGS",
    "HEADER_SIZE",
    "IMAGE_MAGIC",
    "IMAGE_MAGIC_V1",
    "MAX_ALIGNMENTS",
    "TLV_HEADER_SIZE",
    "TLV_INFO_MAGIC",
    "TLV_INFO_SIZE",
    "TLV_PROT_INFO_MAGIC",
    "TLV_TYPES",
    "UNPROTECTED_ALLOWED",
    "ImageVersion",
    "McubootHeader",
    "McubootImage",
    "McubootTrailer",
    "Tlv",
    "boot_magic",
    "tlv_name",
    "trailer_size",
]


IMAGE_MAGIC = 0x96F3B83D
IMAGE_MAGIC_V1 = 0x96F3B83C
HEADER_SIZE = 32
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_INFO_SIZE = 4
TLV_HEADER_SIZE = 4
DEFAULT_MAX_ALIGN = 8
DEFAULT_MAX_SECTORS = 128
ALIGNMENTS = (1, 2, 4, 8, 16, 32)
MAX_ALIGNMENTS = (8, 16, 32)

_HEADER = struct.Struct("<IIHHIIBBHII")
_TLV_INFO = struct.Struct("<HH")
_TLV_HEADER = struct.Struct("<HH")

#: ih_flags bits (``IMAGE_F_*``)
FLAGS: dict[str, int] = {
    "PIC": 0x1,
    "ENCRYPTED_AES128": 0x4,
    "ENCRYPTED_AES256": 0x8,
    "NON_BOOTABLE": 0x10,
    "RAM_LOAD": 0x20,
    "ROM_FIXED": 0x100,
    "COMPRESSED_LZMA1": 0x200,
    "COMPRESSED_LZMA2": 0x400,
    "COMPRESSED_ARM_THUMB": 0x800,
}
ENCRYPTED_FLAGS = FLAGS["ENCRYPTED_AES128"] | FLAGS["ENCRYPTED_AES256"]

#: TLV type values (``IMAGE_TLV_*``; the code of imgtool and bootutil, not docs/design.md, is authoritative)
TLV_TYPES: dict[str, int] = {
    "KEYHASH": 0x01,
    "PUBKEY": 0x02,
    "SHA256": 0x10,
    "SHA384": 0x11,
    "SHA512": 0x12,
    "RSA2048_PSS": 0x20,
    "ECDSA224": 0x21,
    "ECDSA_SIG": 0x22,
    "RSA3072_PSS": 0x23,
    "ED25519": 0x24,
    "SIG_PURE": 0x25,
    "ENC_RSA2048": 0x30,
    "ENC_KW": 0x31,
    "ENC_EC256": 0x32,
    "ENC_X25519": 0x33,
    "ENC_X25519_SHA512": 0x34,
    "DEPENDENCY": 0x40,
    "SEC_CNT": 0x50,
    "BOOT_RECORD": 0x60,
    "DECOMP_SIZE": 0x70,
    "DECOMP_SHA": 0x71,
    "DECOMP_SIGNATURE": 0x72,
    "COMP_DEC_SIZE": 0x73,
    "UUID_VID": 0x74,
    "UUID_CID": 0x75,
}
_TLV_NAMES = {v: k for k, v in TLV_TYPES.items()}

#: the only TLV types bootutil accepts outside the protected area (``allowed_unprot_tlvs`` in image_validate.c)
UNPROTECTED_ALLOWED = frozenset(
    TLV_TYPES[n]
    for n in (
        "KEYHASH",
        "PUBKEY",
        "SHA256",
        "SHA384",
        "SHA512",
        "RSA2048_PSS",
        "ECDSA224",
        "ECDSA_SIG",
        "RSA3072_PSS",
        "ED25519",
        "SIG_PURE",
        "ENC_RSA2048",
        "ENC_KW",
        "ENC_EC256",
        "ENC_X25519",
        "ENC_X25519_SHA512",
    )
)

#: the trailer magic for BOOT_MAX_ALIGN == 8
BOOT_MAGIC = bytes.fromhex("77c295f360d2ef7f3552500f2cb67980")
_BOOT_MAGIC_TAIL = bytes.fromhex("2de15d29410b8d77679c110f1f8a")

_VERSION_RE = re.compile(r"^([1-9]\d*|0)(\.([1-9]\d*|0)(\.([1-9]\d*|0)(\+([1-9]\d*|0))?)?)?$")


def tlv_name(tlv_type: int) -> str:
    """Return the symbolic name of a TLV type (``0x00a0``-style hex for vendor or unknown types)."""
    return _TLV_NAMES.get(tlv_type, f"0x{tlv_type:04x}")


@dataclass(frozen=True)
class ImageVersion:
    """``ih_ver``: major (u8), minor (u8), revision (u16), build number (u32)."""

    major: int
    minor: int = 0
    revision: int = 0
    build: int = 0

    def __post_init__(self) -> None:
        for name, value, bits in (
            ("major", self.major, 8),
            ("minor", self.minor, 8),
            ("revision", self.revision, 16),
            ("build", self.build, 32),
        ):
            if not 0 <= value < (1 << bits):
                raise UsageError(f"version {name} {value} does not fit in {bits} bits", field="version")

    @classmethod
    def parse(cls, text: str) -> ImageVersion:
        """Parse ``MAJOR[.MINOR[.REVISION[+BUILD]]]`` (imgtool's grammar: decimal, no leading zeros).

        Raises:
            UsageError: the text is not a version or a part is out of range.
        """
        m = _VERSION_RE.match(text)
        if m is None:
            raise UsageError(f"invalid version {text!r}: expected MAJOR.MINOR.REVISION[+BUILD]", field="version")
        return cls(int(m.group(1)), int(m.group(3) or 0), int(m.group(5) or 0), int(m.group(7) or 0))

    def auto_security_counter(self) -> int:
        """The security counter imgtool derives for ``--security-counter auto``: major<<24 | minor<<16 | revision."""
        return (self.major << 24) + (self.minor << 16) + self.revision

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.revision}+{self.build}"


@dataclass(frozen=True)
class McubootHeader:
    """The 32-byte image header (``struct image_header``)."""

    magic: int
    load_addr: int
    hdr_size: int
    protect_tlv_size: int
    img_size: int
    flags: int
    version: ImageVersion

    @property
    def flag_names(self) -> tuple[str, ...]:
        """Names of the set flag bits (unknown bits as hex)."""
        names = [name for name, bit in FLAGS.items() if self.flags & bit]
        unknown = self.flags & ~sum(FLAGS.values())
        if unknown:
            names.append(f"0x{unknown:x}")
        return tuple(names)


@dataclass(frozen=True)
class Tlv:
    """One TLV entry.

    Attributes:
        type: the TLV type.
        offset: byte offset of the TLV's 4-byte header in the image.
        value: the payload bytes.
        protected: whether it lies in the protected (hashed) area.
    """

    type: int
    offset: int
    value: bytes
    protected: bool

    @property
    def name(self) -> str:
        """Symbolic type name."""
        return tlv_name(self.type)

    @property
    def value_offset(self) -> int:
        """Byte offset of the payload in the image."""
        return self.offset + TLV_HEADER_SIZE


@dataclass(frozen=True)
class McubootTrailer:
    """The image trailer found at the end of a padded image (the end of the file is taken as the slot end).

    ``image_ok`` / ``copy_done`` are the raw flag bytes (0x01 = set; the erased value = unset).
    """

    max_align: int
    offset: int
    image_ok: int
    copy_done: int
    swap_info: int

    @property
    def confirmed(self) -> bool:
        """True when image_ok is set (a permanent, confirmed image)."""
        return self.image_ok == 0x01


@dataclass(frozen=True)
class McubootImage:
    """A parsed MCUboot image (layout only: nothing here has been verified).

    Attributes:
        header: the image header.
        protected_tlvs: TLVs of the protected area, in order.
        tlvs: TLVs of the unprotected area, in order.
        hashed_size: number of leading bytes the image hash covers (header + body + protected area).
        tlv_end: offset just past the unprotected TLV area.
        size: total size of the data parsed.
        security_counter: value of the protected SEC_CNT TLV, if any.
        trailer: the image trailer if the data ends with a trailer magic.
    """

    header: McubootHeader
    protected_tlvs: tuple[Tlv, ...]
    tlvs: tuple[Tlv, ...]
    hashed_size: int
    tlv_end: int
    size: int
    security_counter: int | None
    trailer: McubootTrailer | None

    @property
    def version(self) -> ImageVersion:
        """The image version from the header."""
        return self.header.version

    @property
    def body_offset(self) -> int:
        """Offset of the first body byte (= ih_hdr_size)."""
        return self.header.hdr_size


def _align_up(n: int, align: int) -> int:
    return (n + align - 1) & ~(align - 1)


def boot_magic(max_align: int = DEFAULT_MAX_ALIGN) -> bytes:
    """The 16-byte trailer magic for ``max_align`` (the classic magic for 8, else u16 align + a fixed tail)."""
    if max_align == DEFAULT_MAX_ALIGN:
        return BOOT_MAGIC
    return struct.pack("<H", max_align) + _BOOT_MAGIC_TAIL


def trailer_size(
    *,
    align: int = 1,
    max_align: int = DEFAULT_MAX_ALIGN,
    max_sectors: int = DEFAULT_MAX_SECTORS,
    overwrite_only: bool = False,
) -> int:
    """Size of the trailer imgtool reserves at the end of a slot (swap status, flags, magic).

    Raises:
        UsageError: ``align`` or ``max_align`` is not a supported flash write size.
    """
    if align not in ALIGNMENTS:
        raise UsageError(f"alignment {align} is not one of {', '.join(map(str, ALIGNMENTS))}", field="align")
    if max_align not in MAX_ALIGNMENTS:
        raise UsageError(f"max alignment {max_align} is not one of 8, 16, 32", field="max_align")
    if max_sectors <= 0:
        raise UsageError("max sectors must be positive", field="max_sectors")
    magic_area = _align_up(16, max_align)
    if overwrite_only:
        return max_align * 2 + magic_area
    return max_sectors * 3 * align + max_align * 4 + magic_area
