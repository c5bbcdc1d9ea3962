"""MCUboot images: sign, parse and verify, byte-compatible with imgtool 2.x and bootutil.

The public surface of medfw's MCUboot support. The pieces live in

* :mod:`medfw.image.mcuboot_format` — header, TLV areas, trailer layout and the strict parser,
* :mod:`medfw.image.mcuboot_keys` — KEYHASH, hash and signature TLV per key type, signature checks,
* :mod:`medfw.image.mcuboot_sign` — building and signing an image,
* :mod:`medfw.image.mcuboot_verify` — verification as the bootloader does it,
* :mod:`medfw.image.mcuboot_file` — the same verification streaming from a file (the only module doing I/O).

All functions except :func:`verify_file` are pure: bytes and key objects in, bytes or frozen dataclasses out.
"""

from __future__ import annotations

from medfw.image.mcuboot_file import verify_file
from medfw.image.mcuboot_format import (
    ImageVersion,
    McubootHeader,
    McubootImage,
    McubootTrailer,
    Tlv,
    parse_image,
    trailer_size,
)
from medfw.image.mcuboot_keys import key_hash, public_key_bytes
from medfw.image.mcuboot_sign import CounterRule, SecurityCounter, sign_image
from medfw.image.mcuboot_verify import McubootVerification, describe_image, verify_image

__all__ = [
    "CounterRule",
    "ImageVersion",
    "McubootHeader",
    "McubootImage",
    "McubootTrailer",
    "McubootVerification",
    "SecurityCounter",
    "Tlv",
    "describe_image",
    "key_hash",
    "parse_image",
    "public_key_bytes",
    "sign_image",
    "trailer_size",
    "verify_file",
    "verify_image",
]
