"""Parsing Secure Boot v2 signature sectors and blocks, strictly (layout and rules: :mod:`medfw.image.sbv2`)."""

from __future__ import annotations

import hashlib
import zlib

from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from medfw.crypto.keys import PublicKey
from medfw.errors import IntegrityError, MalformedImageError
from medfw.image.sbv2_block import (
    _CURVES,
    _ECDSA_P384_BLOCK,
    _ECDSA_SMALL_BLOCK,
    _RSA_BLOCK,
    BLOCK_MAGIC,
    BLOCK_SIZE,
    CRC_LENGTH,
    MAX_BLOCKS,
    RSA_BITS,
    SECTOR_SIZE,
    VERSION_ECDSA,
    VERSION_RSA,
    Sbv2Block,
    Sbv2Scheme,
    SignatureSector,
)

__all__ = ["parse_signature_sector", "parse_signed_image"]


def _parse_block(raw: bytes, index: int, offset: int, path: str | None) -> Sbv2Block:
    """Parse one block that starts with the magic byte; raise IntegrityError on any defect."""

    def bad(message: str, field: str, rel: int) -> IntegrityError:
        return IntegrityError(
            f"signature block {index}: {message}", path=path, field=f"block[{index}].{field}", offset=offset + rel
        )

    version = raw[1]
    if version not in (VERSION_RSA, VERSION_ECDSA):
        raise bad(f"version 0x{version:02x} is not 0x02 (RSA) or 0x03 (ECDSA)", "version", 1)
    stored_crc = int.from_bytes(raw[CRC_LENGTH : CRC_LENGTH + 4], "little")
    if stored_crc != zlib.crc32(raw[:CRC_LENGTH]):
        raise bad("CRC-32 does not match bytes 0..1195", "crc", CRC_LENGTH)
    if any(raw[CRC_LENGTH + 4 :]):
        raise bad("the 16 padding bytes after the CRC are not zero", "padding", CRC_LENGTH + 4)
    key: PublicKey
    if version == VERSION_RSA:
        if raw[2] or raw[3]:
            raise bad("reserved bytes 2..3 are not zero", "reserved", 2)
        _, _, digest, n_le, e, rinv_le, mdash, sig_le = _RSA_BLOCK.unpack(raw[:CRC_LENGTH])
        n = int.from_bytes(n_le, "little")
        if n.bit_length() != RSA_BITS or n % 2 == 0:
            raise bad("modulus is not an odd 3072-bit number", "key.n", 36)
        if e < 3 or e % 2 == 0:
            raise bad(f"public exponent {e} is invalid", "key.e", 420)
        if int.from_bytes(rinv_le, "little") != pow(2, 2 * RSA_BITS, n):
            raise bad("R does not equal 2^6144 mod n", "key.rinv", 424)
        if (mdash * n) & 0xFFFFFFFF != 0xFFFFFFFF:
            raise bad("M' does not equal -n^-1 mod 2^32", "key.mdash", 808)
        key = rsa.RSAPublicNumbers(e, n).public_key()
        scheme = Sbv2Scheme.RSA3072
        key_digest = hashlib.sha256(raw[36:812]).digest()
        signature = sig_le[::-1]
    else:
        sha_version = raw[2]
        if raw[3]:
            raise bad("reserved byte 3 is not zero", "reserved", 3)
        if sha_version == 0:
            _, _, _, digest, curve_id, point, rs = _ECDSA_SMALL_BLOCK.unpack(raw[:CRC_LENGTH])
            reserved_at, key_span = 165, (36, 101)
            if curve_id not in (1, 2):
                raise bad(f"curve id {curve_id} is not 1 (P-192) or 2 (P-256) for a SHA-256 block", "curve_id", 36)
        elif sha_version == 1:
            _, _, _, digest, curve_id, point, rs = _ECDSA_P384_BLOCK.unpack(raw[:CRC_LENGTH])
            reserved_at, key_span = 245, (52, 149)
            if curve_id != 3:
                raise bad(f"curve id {curve_id} is not 3 (P-384) for a SHA-384 block", "curve_id", 52)
        else:
            raise bad(f"sha_version {sha_version} is not 0 (SHA-256) or 1 (SHA-384)", "sha_version", 2)
        if any(raw[reserved_at:CRC_LENGTH]):
            raise bad("reserved bytes after the signature are not zero", "reserved", reserved_at)
        scheme, size, curve = _CURVES[curve_id]
        if any(point[2 * size :]) or any(rs[2 * size :]):
            raise bad("unused bytes of the P-192 key or signature are not zero", "key", key_span[0] + 1)
        x = int.from_bytes(point[:size], "little")
        y = int.from_bytes(point[size : 2 * size], "little")
        try:
            key = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        except ValueError:
            raise bad("public key is not a point on the curve", "key", key_span[0] + 1) from None
        r = int.from_bytes(rs[:size], "little")
        s = int.from_bytes(rs[size : 2 * size], "little")
        if r == 0 or s == 0:
            raise bad("signature r or s is zero", "signature", key_span[1])
        signature = utils.encode_dss_signature(r, s)
        key_digest = hashlib.sha256(raw[key_span[0] : key_span[1]]).digest()
    return Sbv2Block(
        index=index,
        offset=offset,
        scheme=scheme,
        image_digest=bytes(digest),
        key_digest=key_digest,
        public_key=key,
        signature=signature,
        crc=stored_crc,
    )


def parse_signature_sector(data: bytes | memoryview, *, offset: int = 0, path: str | None = None) -> SignatureSector:
    """Parse a 4096-byte signature sector (``offset`` = where it sits in its file, for error messages).

    The sector must be canonical: blocks 0..k-1 well formed (magic 0xE7, version 2/3, CRC, zero reserved
    and padding bytes, a valid key), all of one scheme, and every byte after them 0xFF.

    Raises:
        MalformedImageError: the sector is not exactly 4096 bytes.
        IntegrityError: the sector holds no block, or any defect above (a damaged or altered sector: exit 1).
    """
    sector = bytes(data)
    if len(sector) != SECTOR_SIZE:
        raise MalformedImageError(
            f"signature sector is {len(sector)} bytes, expected {SECTOR_SIZE}", path=path, offset=offset
        )
    blocks: list[Sbv2Block] = []
    for i in range(MAX_BLOCKS):
        raw = sector[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE]
        if raw[0] != BLOCK_MAGIC:
            break
        blocks.append(_parse_block(raw, i, offset + i * BLOCK_SIZE, path))
    end = len(blocks) * BLOCK_SIZE
    if not blocks:
        raise IntegrityError(
            f"no signature block: byte 0 of the signature sector is 0x{sector[0]:02x}, not the magic 0xE7",
            path=path,
            field="block[0].magic",
            offset=offset,
        )
    tail = sector[end:]
    if tail.count(0xFF) != len(tail):
        bad_at = next(i for i, b in enumerate(tail) if b != 0xFF)
        raise IntegrityError(
            f"signature sector bytes after block {len(blocks) - 1} must be 0xFF",
            path=path,
            field="sector.padding",
            offset=offset + end + bad_at,
        )
    schemes = {b.scheme for b in blocks}
    if len(schemes) > 1:
        listing = ", ".join(f"block {b.index} {b.scheme}" for b in blocks)
        raise IntegrityError(
            f"mixed signature schemes in one sector ({listing}); a device accepts only one",
            path=path,
            field="block.version",
            offset=offset,
        )
    return SignatureSector(offset=offset, blocks=tuple(blocks))


def parse_signed_image(data: bytes, *, path: str | None = None) -> SignatureSector:
    """Parse the signature sector at the end of a signed image (the last 4096 bytes).

    Raises:
        MalformedImageError: the image is not a non-empty multiple of 4 KiB plus a sector.
        IntegrityError: the sector holds no signature block or a damaged one.
    """
    if len(data) < 2 * SECTOR_SIZE or len(data) % SECTOR_SIZE:
        raise MalformedImageError(
            f"signed image is {len(data)} bytes: expected a multiple of {SECTOR_SIZE}, at least {2 * SECTOR_SIZE} "
            "(padded image plus signature sector)",
            path=path,
            field="length",
            offset=len(data),
        )
    start = len(data) - SECTOR_SIZE
    return parse_signature_sector(memoryview(data)[start:], offset=start, path=path)
