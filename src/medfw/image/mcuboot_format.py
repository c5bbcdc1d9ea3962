"""MCUboot image layout: header, TLV areas, image trailer; a strict parser.

An MCUboot image (``bootutil/image.h``, laid out by imgtool 2.x) is, in order::

    header (32 bytes, padded to ih_hdr_size) | body (ih_img_size bytes)
    | protected TLV area (magic 0x6908, ih_protect_tlv_size bytes, may be absent)
    | unprotected TLV area (magic 0x6907: hash, KEYHASH, signature)
    | [padding up to the image trailer at the end of the slot]

The hash (and so the signature) covers everything before the unprotected TLV area. All integers are
little-endian. This module is pure: bytes in, frozen dataclasses out. Every error names the field and the byte
offset where the problem was found.
"""

from __future__ import annotations

from collections.abc import Callable

from medfw.errors import IntegrityError, MalformedImageError
from medfw.image.mcuboot_layout import (
    _BOOT_MAGIC_TAIL,
    _HEADER,
    _TLV_HEADER,
    _TLV_INFO,
    ALIGNMENTS,
    BOOT_MAGIC,
    DEFAULT_MAX_ALIGN,
    DEFAULT_MAX_SECTORS,
    ENCRYPTED_FLAGS,
    FLAGS,
    HEADER_SIZE,
    IMAGE_MAGIC,
    IMAGE_MAGIC_V1,
    MAX_ALIGNMENTS,
    TLV_HEADER_SIZE,
    TLV_INFO_MAGIC,
    TLV_INFO_SIZE,
    TLV_PROT_INFO_MAGIC,
    TLV_TYPES,
    UNPROTECTED_ALLOWED,
    ImageVersion,
    McubootHeader,
    McubootImage,
    McubootTrailer,
    Tlv,
    _align_up,
    boot_magic,
    tlv_name,
    trailer_size,
)

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
    "parse_image",
    "parse_with_reader",
    "tlv_name",
    "trailer_size",
]


def _u16(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 2], "little")


#: reads ``length`` bytes at ``offset``; the parser only asks for ranges inside the image size it was given
Reader = Callable[[int, int], bytes]


def _parse_area(
    read: Reader, size: int, off: int, *, protected: bool, expected_size: int | None
) -> tuple[tuple[Tlv, ...], int]:
    """Parse one TLV area starting with its info header at ``off``; return (tlvs, end offset)."""
    area = "protected TLV area" if protected else "TLV area"
    want_magic = TLV_PROT_INFO_MAGIC if protected else TLV_INFO_MAGIC
    if off + TLV_INFO_SIZE > size:
        raise IntegrityError(f"image truncated: {area} info header missing", field=f"{area} info", offset=off)
    magic, tot = _TLV_INFO.unpack(read(off, TLV_INFO_SIZE))
    if magic != want_magic:
        raise IntegrityError(
            f"bad {area} magic 0x{magic:04x}, expected 0x{want_magic:04x}", field=f"{area} magic", offset=off
        )
    if expected_size is not None and tot != expected_size:
        raise IntegrityError(
            f"{area} size {tot} does not match ih_protect_tlv_size {expected_size}",
            field=f"{area} tlv_tot",
            offset=off + 2,
        )
    if tot < TLV_INFO_SIZE:
        raise IntegrityError(f"{area} size {tot} is smaller than its header", field=f"{area} tlv_tot", offset=off + 2)
    end = off + tot
    if end > size:
        raise IntegrityError(
            f"image truncated: {area} needs {tot} bytes, {size - off} present", field=f"{area} tlv_tot", offset=off
        )
    content = read(off + TLV_INFO_SIZE, tot - TLV_INFO_SIZE)
    base = off + TLV_INFO_SIZE
    tlvs: list[Tlv] = []
    pos = 0
    while pos < len(content):
        if pos + TLV_HEADER_SIZE > len(content):
            raise IntegrityError(f"TLV header overruns the {area}", field="TLV header", offset=base + pos)
        tlv_type, length = _TLV_HEADER.unpack_from(content, pos)
        if pos + TLV_HEADER_SIZE + length > len(content):
            raise IntegrityError(
                f"TLV {tlv_name(tlv_type)} of {length} bytes overruns the {area}",
                field="TLV length",
                offset=base + pos + 2,
            )
        if not protected and tlv_type not in UNPROTECTED_ALLOWED:
            raise IntegrityError(
                f"TLV {tlv_name(tlv_type)} is not allowed in the unprotected TLV area",
                field="TLV type",
                offset=base + pos,
            )
        value = content[pos + TLV_HEADER_SIZE : pos + TLV_HEADER_SIZE + length]
        tlvs.append(Tlv(type=tlv_type, offset=base + pos, value=value, protected=protected))
        pos += TLV_HEADER_SIZE + length
    return tuple(tlvs), end


#: how far from the end of the data the trailer fields can reach (magic, image_ok, copy_done, swap_info)
TRAILER_PROBE = 4 * 32


def _find_trailer(read: Reader, size: int, tlv_end: int) -> McubootTrailer | None:
    if size - tlv_end < 16:
        return None
    tail = read(size - 16, 16)
    if tail == BOOT_MAGIC:
        max_align = DEFAULT_MAX_ALIGN
    elif tail[2:] == _BOOT_MAGIC_TAIL and _u16(tail, 0) in MAX_ALIGNMENTS:
        max_align = _u16(tail, 0)
    else:
        return None
    magic_area = _align_up(16, max_align)
    image_ok_off = size - magic_area - max_align
    copy_done_off = image_ok_off - max_align
    swap_info_off = copy_done_off - max_align
    if swap_info_off < tlv_end:
        return None
    return McubootTrailer(
        max_align=max_align,
        offset=size - magic_area,
        image_ok=read(image_ok_off, 1)[0],
        copy_done=read(copy_done_off, 1)[0],
        swap_info=read(swap_info_off, 1)[0],
    )


def parse_image(data: bytes | bytearray | memoryview) -> McubootImage:
    """Parse the layout of an MCUboot image. Nothing is verified (see :func:`verify_image`).

    Checks: header magic and sizes, protected-area magic and its size against ``ih_protect_tlv_size``,
    unprotected-area magic, every TLV fitting its area, only bootutil's allowed types outside the protected
    area, and a well-formed security counter.

    Raises:
        MalformedImageError: not an MCUboot image at all: shorter than its header, or a wrong header magic.
        IntegrityError: a recognised image whose sizes or TLV areas are damaged (altered or truncated: exit 1),
            naming the field and byte offset.
    """
    view = memoryview(data).cast("B")
    return parse_with_reader(lambda off, n: bytes(view[off : off + n]), len(view))


def parse_with_reader(read: Reader, size: int) -> McubootImage:
    """Parse an image of ``size`` bytes through ``read(offset, length)`` (see :func:`parse_image`).

    The parser reads only the 32-byte header, the TLV areas and the last :data:`TRAILER_PROBE` bytes, never the
    body, so a file-backed reader can stream the body separately.
    """
    if size < HEADER_SIZE:
        raise MalformedImageError(
            f"image truncated: {size} bytes, the header alone needs {HEADER_SIZE}", field="header", offset=0
        )
    magic, load_addr, hdr_size, prot_size, img_size, flags, major, minor, rev, build, _pad = _HEADER.unpack(
        read(0, HEADER_SIZE)
    )
    if magic != IMAGE_MAGIC:
        legacy = " (legacy V1 magic, unsupported)" if magic == IMAGE_MAGIC_V1 else ""
        raise MalformedImageError(
            f"bad image magic 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x}{legacy}", field="ih_magic", offset=0
        )
    if hdr_size < HEADER_SIZE:
        raise IntegrityError(f"header size {hdr_size} is smaller than {HEADER_SIZE}", field="ih_hdr_size", offset=8)
    header = McubootHeader(
        magic=magic,
        load_addr=load_addr,
        hdr_size=hdr_size,
        protect_tlv_size=prot_size,
        img_size=img_size,
        flags=flags,
        version=ImageVersion(major, minor, rev, build),
    )
    body_end = hdr_size + img_size
    if body_end > size:
        raise IntegrityError(
            f"image truncated: header + body need {body_end} bytes, {size} present", field="ih_img_size", offset=12
        )
    protected: tuple[Tlv, ...] = ()
    if prot_size:
        protected, hashed_size = _parse_area(read, size, body_end, protected=True, expected_size=prot_size)
    else:
        hashed_size = body_end
        if size >= body_end + 2 and _u16(read(body_end, 2), 0) == TLV_PROT_INFO_MAGIC:
            raise IntegrityError(
                "protected TLV area present but ih_protect_tlv_size is 0", field="ih_protect_tlv_size", offset=10
            )
    tlvs, tlv_end = _parse_area(read, size, hashed_size, protected=False, expected_size=None)

    counter: int | None = None
    for tlv in protected:
        if tlv.type == TLV_TYPES["SEC_CNT"]:
            if counter is not None:
                raise IntegrityError("duplicate security counter TLV", field="SEC_CNT", offset=tlv.offset)
            if len(tlv.value) != 4:
                raise IntegrityError(
                    f"security counter TLV is {len(tlv.value)} bytes, expected 4",
                    field="SEC_CNT",
                    offset=tlv.offset + 2,
                )
            counter = int.from_bytes(tlv.value, "little")
    return McubootImage(
        header=header,
        protected_tlvs=protected,
        tlvs=tlvs,
        hashed_size=hashed_size,
        tlv_end=tlv_end,
        size=size,
        security_counter=counter,
        trailer=_find_trailer(read, size, tlv_end),
    )
