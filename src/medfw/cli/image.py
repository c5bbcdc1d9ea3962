"""``medfw image``: inspect firmware images (``medfw image info``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.table import Table

from medfw._io import read_bytes
from medfw.cli._common import add_group, add_json_flag, emit, out_console, print_table
from medfw.errors import IntegrityError, MalformedImageError, MedfwError
from medfw.image import sbv2
from medfw.image.esp import FLASH_SIZES, IMAGE_MAGIC, SPI_MODES, EspImage

__all__ = ["MAX_IMAGE", "read_image", "register", "signature_info"]

MAX_IMAGE = 64 * 1024 * 1024


def read_image(path: str, *, what: str = "image", max_length: int = MAX_IMAGE) -> bytes:
    """Read an image file of at most ``max_length`` bytes.

    The bound handed to :func:`medfw._io.read_bytes` is the file's own size when that is smaller: asking for
    far more than the file holds makes the read allocate, then shrink and copy, a buffer of the bound's size.
    A file that grows between the size check and the read is refused as too large (fails closed).
    """
    try:
        size = os.stat(path).st_size
    except OSError:
        size = max_length  # read_bytes reports the problem with its own message
    return read_bytes(path, max_length=min(size, max_length), what=what)


def signature_info(data: bytes, image: EspImage, *, path: str | None = None) -> dict[str, Any] | None:
    """Describe the Secure Boot v2 sector after the image, or ``None`` when the image has none.

    The sector is where the bootloader looks for it: right after the image padded to 4 KiB.
    """
    start = -(-image.image_length // sbv2.SECTOR_SIZE) * sbv2.SECTOR_SIZE
    if len(data) < start + sbv2.SECTOR_SIZE:
        return None
    try:
        sector = sbv2.parse_signature_sector(
            memoryview(data)[start : start + sbv2.SECTOR_SIZE], offset=start, path=path
        )
    except (MalformedImageError, IntegrityError) as e:
        return {"offset": start, "error": e.diagnostics(), "blocks": []}
    blocks = []
    signed = memoryview(data)[:start]
    for b in sector.blocks:
        digest_ok, sig_ok = sbv2.block_status(b, signed)
        blocks.append(
            {
                "index": b.index,
                "scheme": str(b.scheme),
                "key_digest": b.key_digest.hex(),
                "image_digest": b.image_digest.hex(),
                "image_digest_valid": digest_ok,
                "signature_valid": sig_ok,
            }
        )
    return {"offset": start, "scheme": str(sector.scheme), "blocks": blocks, "error": None}


#: the first four bytes of an MCUboot image (``IMAGE_MAGIC`` 0x96f3b83d, and the legacy V1 magic), little-endian
_MCUBOOT_MAGICS = (bytes.fromhex("3db8f396"), bytes.fromhex("3cb8f396"))


def _mcuboot_info(args: argparse.Namespace, data: bytes) -> int:
    from medfw.image.mcuboot import describe_image  # noqa: PLC0415

    try:
        desc = describe_image(data)
    except MedfwError as e:
        raise e.with_path(args.file) from None
    info = {"path": args.file, "file_length": len(data), **desc}

    def human() -> None:
        out_console.print(f"{args.file}: MCUboot image {desc['version']}", markup=False)
        hdr = desc["header"]
        flags = ", ".join(hdr["flags"]) or "none"
        out_console.print(
            f"  header {hdr['hdr_size']} bytes, body {hdr['img_size']} bytes, load address 0x{hdr['load_addr']:x}, "
            f"flags {flags}",
            markup=False,
        )
        counter = desc["security_counter"]
        out_console.print(f"  security counter {'none' if counter is None else counter}", markup=False)
        h = desc["hash"]
        if h is None:
            out_console.print("  no single hash TLV", markup=False)
        else:
            state = "valid" if h["ok"] else "INVALID"
            out_console.print(f"  {h['algorithm']} {h['digest']} ({state})", markup=False)
        sigs = ", ".join(desc["signatures"]) or "none"
        out_console.print(f"  KEYHASH {desc['key_hash'] or 'none'}; signature TLVs: {sigs}", markup=False)
        for t in desc["tlvs"]:
            where = "protected" if t["protected"] else "unprotected"
            out_console.print(f"    TLV {t['type']} at 0x{t['offset']:x}, {t['length']} bytes ({where})", markup=False)
        out_console.print("  signatures are checked by `medfw verify mcuboot --key KEY`", markup=False)

    emit(args, info, human)
    return 0


def _info(args: argparse.Namespace) -> int:
    data = read_image(args.file)
    if data[:4] in _MCUBOOT_MAGICS:
        return _mcuboot_info(args, data)
    if data[:1] != bytes([IMAGE_MAGIC]):
        raise MalformedImageError(
            f"not a firmware image medfw knows: magic {data[:4].hex() or 'none'} is neither an ESP image's "
            "(0xe9) nor an MCUboot image's (0x96f3b83d)",
            path=args.file,
            field="magic",
            offset=0,
        )
    image = EspImage.from_bytes(data, path=args.file, strict=False)
    info = {"path": args.file, "file_length": len(data), "format": "esp", **image.to_dict()}
    info["signature"] = signature_info(data, image, path=args.file)

    def human() -> None:
        out_console.print(f"{args.file}: ESP image for {image.chip} (chip id {image.chip_id})", markup=False)
        out_console.print(
            f"  entry 0x{image.entry_addr:08x}, flash mode {SPI_MODES.get(image.spi_mode, image.spi_mode)}, "
            f"flash size {FLASH_SIZES.get(image.spi_size, image.spi_size)}, "
            f"chip revision {image.min_chip_rev_full}..{image.max_chip_rev_full}",
            markup=False,
        )
        table = Table("segment", "load addr", "file offset", "length", title="segments")
        for s in image.segments:
            table.add_row(str(s.index), f"0x{s.load_addr:08x}", f"0x{s.file_offset:06x}", f"0x{s.length:x}")
        print_table(table)
        out_console.print(
            f"  checksum 0x{image.checksum:02x} ({'valid' if image.checksum_valid else 'INVALID'}); "
            + (
                f"SHA-256 {image.stored_sha256.hex()} ({'valid' if image.sha256_valid else 'INVALID'})"
                if image.stored_sha256 is not None
                else "no appended SHA-256"
            ),
            markup=False,
        )
        out_console.print(f"  image length {image.image_length} bytes of {len(data)}", markup=False)
        desc = image.app_desc
        if desc is not None:
            out_console.print(
                f"  app: {desc.project_name} {desc.version}, secure_version {desc.secure_version}, "
                f"IDF {desc.idf_ver}, built {desc.date} {desc.time}, ELF SHA-256 {desc.app_elf_sha256.hex()}",
                markup=False,
            )
        boot = image.bootloader_desc
        if boot is not None:
            out_console.print(
                f"  bootloader: version {boot.version}, secure_version {boot.secure_version}, IDF {boot.idf_ver}, "
                f"built {boot.date_time}",
                markup=False,
            )
        sig = info["signature"]
        if sig is None:
            out_console.print("  no Secure Boot v2 signature sector", markup=False)
        elif sig["error"]:
            out_console.print(f"  signature sector at 0x{sig['offset']:x}: {sig['error']}", markup=False)
        else:
            out_console.print(
                f"  Secure Boot v2 signature sector at 0x{sig['offset']:x} ({sig['scheme']})", markup=False
            )
            for b in sig["blocks"]:
                state = "valid" if b["image_digest_valid"] and b["signature_valid"] else "INVALID"
                out_console.print(f"    block {b['index']}: key digest {b['key_digest']} ({state})", markup=False)

    emit(args, info, human)
    return 0


def register(sub: Any) -> None:
    """Register ``medfw image info``."""
    group = add_group(sub, "image", "inspect firmware images")
    p = group.add_parser(
        "info",
        help="show an ESP or MCUboot image: header, segments or TLVs, version, signatures",
        description="Detect the format from the magic. For an ESP32-family app or bootloader image, print its "
        "header, segments, checksum and appended SHA-256, the app description (secure_version) and any Secure "
        "Boot v2 signature blocks with the key digests they carry. For an MCUboot image, print its header, "
        "version, security counter, TLVs, whether the stored hash matches, KEYHASH and trailer.",
    )
    p.add_argument("file", metavar="FILE", help="image file")
    add_json_flag(p)
    p.set_defaults(func=_info)
