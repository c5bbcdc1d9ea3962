"""Build and sign an MCUboot image, byte for byte as imgtool 2.x lays it out.

Signing goes through :class:`medfw.crypto.signer.Signer` (a key file or a PKCS#11 token): RSA and ECDSA sign the
image digest (``sign_digest``), Ed25519 signs the digest bytes as its message (``sign_message``). The signature
is checked against the signer's public key before the image is returned, so a faulty token cannot produce an
image that will not boot.
"""

from __future__ import annotations

import enum
import hashlib
import struct

from medfw.crypto.keys import KeyType
from medfw.crypto.signer import Signer
from medfw.errors import InputError, SignatureError, UsageError
from medfw.image.mcuboot_format import (
    DEFAULT_MAX_ALIGN,
    DEFAULT_MAX_SECTORS,
    FLAGS,
    HEADER_SIZE,
    IMAGE_MAGIC,
    MAX_ALIGNMENTS,
    TLV_INFO_MAGIC,
    TLV_PROT_INFO_MAGIC,
    TLV_TYPES,
    ImageVersion,
    boot_magic,
    trailer_size,
)
from medfw.image.mcuboot_keys import HASH_TLV, SIG_TLV, default_hash, key_hash, signature_valid

__all__ = ["CounterRule", "SecurityCounter", "sign_image"]


class CounterRule(enum.StrEnum):
    """How the SEC_CNT value is chosen when it is not given as a number."""

    AUTO = "auto"  # from the version, as imgtool's ``--security-counter auto``


SecurityCounter = int | None | CounterRule

_U32 = 0xFFFFFFFF


def _tlv_area(magic: int, entries: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in entries)
    return struct.pack("<HH", magic, 4 + len(body)) + body


def _check_u32(value: int, name: str) -> None:
    if not 0 <= value <= _U32:
        raise UsageError(f"{name} {value} does not fit in 32 bits", field=name)


def sign_image(
    payload: bytes,
    signer: Signer,
    *,
    version: str | ImageVersion,
    header_size: int,
    pad_header: bool = False,
    security_counter: SecurityCounter = None,
    slot_size: int | None = None,
    pad: bool = False,
    confirm: bool = False,
    align: int = 1,
    erased_val: int = 0xFF,
    load_addr: int = 0,
    rom_fixed: int | None = None,
    max_align: int | None = None,
    max_sectors: int = DEFAULT_MAX_SECTORS,
    overwrite_only: bool = False,
    non_bootable: bool = False,
) -> bytes:
    """Return ``payload`` as a signed MCUboot image (what ``imgtool sign`` writes for the same options).

    Args:
        payload: the firmware binary. Without ``pad_header`` its first ``header_size`` bytes must be zero (the
            build left room for the header, as Zephyr does); with it, ``header_size`` bytes of ``erased_val``
            are prepended.
        signer: the signing key (RSA-3072, ECDSA P-256/P-384, Ed25519).
        version: ``MAJOR.MINOR.REVISION[+BUILD]``.
        header_size: ``ih_hdr_size`` (at least 32).
        security_counter: a value for the protected SEC_CNT TLV, ``"auto"`` (derived from the version like
            imgtool), or None for no counter.
        slot_size: the slot size; the image plus its trailer must fit.
        pad: pad to ``slot_size`` with ``erased_val`` and write the trailer magic (a test upgrade request).
        confirm: also set image_ok in the trailer (a permanent upgrade); implies ``pad``.
        align: flash write size (1, 2, 4, 8, 16 or 32), sizing the swap status area.
        erased_val: the value of erased flash, 0xFF or 0x00.
        load_addr: RAM load address (sets the RAM_LOAD flag when non-zero).
        rom_fixed: flash address the image is linked for (sets ROM_FIXED); exclusive with ``load_addr``.
        max_align: BOOT_MAX_ALIGN (8, 16 or 32; default max(8, align)).
        max_sectors: sectors allowed for in the swap status area.
        overwrite_only: trailer for overwrite-only upgrades.
        non_bootable: set the NON_BOOTABLE flag.

    Raises:
        UsageError: an option is invalid or options conflict.
        InputError: the payload does not fit (header room not zero, image larger than the slot).
        KeyMaterialError: the key type cannot sign MCUboot images here.
        SignatureError: the signer returned a signature that does not verify.
    """
    ver = version if isinstance(version, ImageVersion) else ImageVersion.parse(version)
    if not HEADER_SIZE <= header_size <= 0xFFFF:
        raise UsageError(f"header size {header_size} must be between {HEADER_SIZE} and 65535", field="header_size")
    if erased_val not in (0x00, 0xFF):
        raise UsageError(f"erased value 0x{erased_val:x} must be 0x00 or 0xff", field="erased_val")
    if load_addr and rom_fixed is not None:
        raise UsageError("a load address and a fixed ROM address cannot both be set", field="load_addr")
    _check_u32(load_addr, "load_addr")
    if rom_fixed is not None:
        _check_u32(rom_fixed, "rom_fixed")
    if max_align is None:
        max_align = max(DEFAULT_MAX_ALIGN, align)
    if max_align not in MAX_ALIGNMENTS:
        raise UsageError(f"max alignment {max_align} is not one of 8, 16, 32", field="max_align")
    tsize = trailer_size(align=align, max_align=max_align, max_sectors=max_sectors, overwrite_only=overwrite_only)
    if confirm:
        pad = True
    if pad and slot_size is None:
        raise UsageError("padding to the slot (--pad/--confirm) needs the slot size", field="slot_size")
    if slot_size is not None and slot_size <= 0:
        raise UsageError(f"slot size {slot_size} must be positive", field="slot_size")

    counter: int | None
    if security_counter == CounterRule.AUTO:
        counter = ver.auto_security_counter()
    elif security_counter is None or isinstance(security_counter, int):
        counter = security_counter
    else:
        raise UsageError(
            f"security counter {security_counter!r} must be an integer or 'auto'", field="security_counter"
        )
    if counter is not None:
        _check_u32(counter, "security_counter")

    key_type = signer.key_type
    public_key = signer.public_key()
    hash_name = default_hash(key_type)

    body: bytes | memoryview
    if pad_header:
        body = payload
    else:
        if len(payload) < header_size:
            raise InputError(
                f"input is {len(payload)} bytes, shorter than the {header_size}-byte header it must start with "
                "(use --pad-header)",
                field="header",
                offset=0,
            )
        if any(payload[:header_size]):
            first = next(i for i, b in enumerate(payload[:header_size]) if b)
            raise InputError(
                f"input does not start with {header_size} zero bytes for the header and --pad-header was not given",
                field="header",
                offset=first,
            )
        body = memoryview(payload)[header_size:]
    img_size = len(body)
    _check_u32(img_size, "image size")

    protected = b""
    if counter is not None:
        protected = _tlv_area(TLV_PROT_INFO_MAGIC, [(TLV_TYPES["SEC_CNT"], struct.pack("<I", counter))])

    flags = 0
    if load_addr:
        flags |= FLAGS["RAM_LOAD"]
    if rom_fixed:
        flags |= FLAGS["ROM_FIXED"]
    if non_bootable:
        flags |= FLAGS["NON_BOOTABLE"]
    header = struct.pack(
        "<IIHHIIBBHII",
        IMAGE_MAGIC,
        rom_fixed or load_addr,
        header_size,
        len(protected),
        img_size,
        flags,
        ver.major,
        ver.minor,
        ver.revision,
        ver.build,
        0,
    )
    header += bytes([erased_val]) * (header_size - HEADER_SIZE) if pad_header else bytes(header_size - HEADER_SIZE)

    # The image is assembled once, at the end, from its parts: hashing the parts avoids copying the body.
    hasher = hashlib.new(hash_name)
    for part in (header, body, protected):
        hasher.update(part)
    digest = hasher.digest()

    signature = signer.sign_message(digest) if key_type is KeyType.ED25519 else signer.sign_digest(digest, hash_name)
    if not signature_valid(public_key, signature, digest, hash_name):
        raise SignatureError("the signer returned a signature that does not verify", path=signer.key_id)

    tlvs = _tlv_area(
        TLV_INFO_MAGIC,
        [
            (HASH_TLV[hash_name], digest),
            (TLV_TYPES["KEYHASH"], key_hash(public_key, hash_name)),
            (SIG_TLV[key_type], signature),
        ],
    )
    size = len(header) + len(body) + len(protected) + len(tlvs)
    if slot_size is not None and size + tsize > slot_size:
        raise InputError(
            f"signed image ({size} bytes = 0x{size:x}) plus trailer ({tsize} bytes = 0x{tsize:x}) "
            f"exceeds the slot size ({slot_size} bytes = 0x{slot_size:x})",
            field="slot_size",
        )
    parts: list[bytes | memoryview] = [header, body, protected, tlvs]
    if pad:
        assert slot_size is not None
        magic = boot_magic(max_align)
        trailer = bytearray([erased_val]) * (tsize - len(magic)) + magic
        if confirm and not overwrite_only:
            trailer[-(((16 + max_align - 1) & ~(max_align - 1)) + max_align)] = 0x01
        parts += [bytes([erased_val]) * (slot_size - size - tsize), bytes(trailer)]
    return b"".join(parts)
