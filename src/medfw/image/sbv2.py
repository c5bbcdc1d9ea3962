"""ESP32 Secure Boot v2 signatures: sign, assemble, parse and verify, byte-compatible with espsecure.

A signed image is the image padded with 0xFF to a 4 KiB boundary, followed by one 4096-byte signature
sector holding up to three 1216-byte signature blocks (the rest 0xFF)::

    off  RSA-3072 block (version 0x02)      ECDSA P-192/P-256 (0x03)      ECDSA P-384 (0x03)
    0    magic 0xE7                         magic 0xE7                     magic 0xE7
    1    version 0x02                       version 0x03                   version 0x03
    2    0, 0                               sha_version 0 (SHA-256), 0     sha_version 1 (SHA-384), 0
    4    SHA-256 of the padded image        SHA-256 image digest           48-byte SHA-384 image digest
    36   n (384, LE) | e (u32) |            curve_id (1=P-192, 2=P-256) |  (52) curve_id 3 |
         R=2^6144 mod n (384, LE) |         X‖Y (64, each LE) |            X‖Y (96, each LE) |
         M'=-n^-1 mod 2^32 (u32) |          r‖s (64, each LE) | zeros      r‖s (96, each LE) | zeros
    812  RSA-PSS signature (384, LE)
    1196 CRC-32 (zlib) of bytes 0..1195, LE
    1200 16 zero bytes

RSA signatures are RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt over the image digest; ECDSA
signs the image digest (SHA-256, or SHA-384 for P-384). The eFuse key digest is SHA-256 over the block's key
field (bytes 36..811 for RSA, 36..100 for P-192/P-256, 52..148 for P-384).

Verification here is stricter than the ROM: the sector must be canonical (every block well formed, with a
valid CRC, zero reserved bytes and a valid signature by its own key; unused space 0xFF; one scheme), so any
change to a signed image is detected. The trust decision then follows the bootloader: the first block whose
key digest equals a trusted, non-revoked eFuse digest (slot index = position in the trusted list) accepts
the image. Everything here is pure: bytes in, bytes or results out.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence

from cryptography.exceptions import InvalidSignature

from medfw.crypto.keys import PublicKey
from medfw.crypto.signer import Signer
from medfw.errors import IntegrityError, KeyMaterialError, MalformedImageError, SignatureError, UsageError
from medfw.image.esp import IMAGE_MAGIC as ESP_IMAGE_MAGIC
from medfw.image.sbv2_block import (
    BLOCK_SIZE,
    MAX_BLOCKS,
    SECTOR_SIZE,
    Sbv2Block,
    Sbv2Scheme,
    Sbv2Verification,
    SignatureSector,
    _hash,
    _verify_raw,
    assemble_block,
    digest_to_sign,
    image_digest,
    pad_image,
    public_key_digest,
    scheme_of_key,
)
from medfw.image.sbv2_parse import parse_signature_sector, parse_signed_image

__all__ = [
    "BLOCK_SIZE",
    "MAX_BLOCKS",
    "SECTOR_SIZE",
    "Sbv2Block",
    "Sbv2Scheme",
    "Sbv2Verification",
    "SignatureSector",
    "assemble_block",
    "assemble_signed_image",
    "block_status",
    "digest_to_sign",
    "image_digest",
    "pad_image",
    "parse_signature_sector",
    "parse_signed_image",
    "public_key_digest",
    "scheme_of_key",
    "sign_image",
    "verify_image",
]


# ---------------------------------------------------------------------------------------------- sign


def _sector(blocks: Sequence[bytes]) -> bytes:
    body = b"".join(blocks)
    return body + b"\xff" * (SECTOR_SIZE - len(body))


def assemble_signed_image(data: bytes, blocks: Sequence[bytes], *, append: bool = False) -> bytes:
    """Join an image and ready-made blocks (from :func:`assemble_block`) into a signed image.

    Without ``append``, ``data`` is the unsigned image (padded here). With ``append``, ``data`` is already
    signed: its blocks are kept and ``blocks`` are added after them.

    Raises:
        UsageError: no blocks, or more than three in total.
        MalformedImageError / SignatureError: a block (old or new) is malformed, of another scheme, or does
            not sign this image.
    """
    if not blocks:
        raise UsageError("at least one signature block is needed")
    if not data:
        raise UsageError("the image is empty: nothing to sign")
    existing: list[bytes] = []
    if append:
        try:
            sector = parse_signed_image(data)
        except IntegrityError as e:
            raise MalformedImageError(
                f"--append needs a signed image: {e.message}", field=e.field, offset=e.offset
            ) from None
        start = len(data) - SECTOR_SIZE
        existing = [
            bytes(data[start + b.index * BLOCK_SIZE : start + (b.index + 1) * BLOCK_SIZE]) for b in sector.blocks
        ]
        body = bytes(data[:start])
    else:
        body = pad_image(data)
    all_blocks = [*existing, *blocks]
    if len(all_blocks) > MAX_BLOCKS:
        raise UsageError(
            f"{len(existing)} block(s) present and {len(blocks)} new: a sector holds at most {MAX_BLOCKS}",
            field="block",
        )
    for i, raw in enumerate(blocks):
        if len(raw) != BLOCK_SIZE:
            raise MalformedImageError(f"new block {i} is {len(raw)} bytes, expected {BLOCK_SIZE}", field="block")
    signed = body + _sector(all_blocks)
    _check_self_consistent(signed, None)
    return signed


def sign_image(data: bytes, signers: Sequence[Signer], *, append: bool = False) -> bytes:
    """Sign an image with one to three keys, as espsecure ``sign-data --version 2`` does.

    The image is padded with 0xFF to 4 KiB and followed by a signature sector with one block per signer.
    With ``append``, ``data`` must already be signed; the new blocks go after the present ones. Every
    signature is verified before the image is returned (guards against a faulty signer or token).

    Raises:
        UsageError: no signers, or more than three blocks in total.
        KeyMaterialError: a key cannot sign Secure Boot v2, or the keys' schemes differ.
        MalformedImageError: ``append`` on an image without a valid signature sector.
        SignatureError: a signer produced an invalid signature.
    """
    if not signers:
        raise UsageError("at least one signing key is needed", field="key")
    if not data:
        raise UsageError("the image is empty: nothing to sign")
    keys = [s.public_key() for s in signers]
    schemes = [scheme_of_key(k, path=s.key_id) for k, s in zip(keys, signers, strict=True)]
    if append:
        try:
            sector = parse_signed_image(data)
        except IntegrityError as e:
            raise MalformedImageError(
                f"--append needs a signed image: {e.message}", field=e.field, offset=e.offset
            ) from None
        schemes.append(sector.scheme)
        body = bytes(data[: len(data) - SECTOR_SIZE])
    else:
        body = pad_image(data)
    if len(set(schemes)) != 1:
        raise KeyMaterialError(
            f"all Secure Boot v2 keys of a device use one scheme; got {', '.join(sorted(set(map(str, schemes))))}"
        )
    scheme = schemes[0]
    digest = _hash(body, scheme.hash_name)
    existing: list[bytes] = []
    if append:
        for block in sector.blocks:
            if not hmac.compare_digest(block.image_digest, digest):
                raise SignatureError(
                    f"signature block {block.index}: image digest does not match the image; not appending",
                    field=f"block[{block.index}].image_digest",
                    offset=block.offset + 4,
                )
            existing.append(bytes(data[block.offset : block.offset + BLOCK_SIZE]))
    if len(existing) + len(signers) > MAX_BLOCKS:
        raise UsageError(
            f"{len(existing)} block(s) present and {len(signers)} new: a sector holds at most {MAX_BLOCKS}",
            field="key",
        )
    blocks: list[bytes] = []
    for signer, key in zip(signers, keys, strict=True):
        raw_sig = signer.sign_digest(digest, scheme.hash_name)
        try:
            blocks.append(assemble_block(digest, raw_sig, key))
        except SignatureError as e:
            raise SignatureError(f"signer produced an invalid signature: {e.message}", path=signer.key_id) from None
    return body + _sector([*existing, *blocks])


# ---------------------------------------------------------------------------------------------- verify


def _check_self_consistent(data: bytes, path: str | None) -> tuple[SignatureSector, bytes]:
    """Parse the sector, check every block's image digest and self-signature; return sector and digest."""
    try:
        sector = parse_signed_image(data, path=path)
    except IntegrityError as e:
        if e.field == "block[0].magic" and data[:1] != bytes([ESP_IMAGE_MAGIC]):
            raise MalformedImageError(
                "not a signed image: neither an ESP image (magic 0xE9) nor followed by a signature sector",
                path=path,
                field="magic",
                offset=0,
            ) from None
        raise
    signed = memoryview(data)[: len(data) - SECTOR_SIZE]
    digest = _hash(signed, sector.scheme.hash_name)  # one scheme per sector, so one pass over the image
    for block in sector.blocks:
        if not hmac.compare_digest(block.image_digest, digest):
            raise SignatureError(
                f"signature block {block.index}: image digest does not match the image "
                f"(block {block.image_digest.hex()}, image {digest.hex()})",
                path=path,
                field=f"block[{block.index}].image_digest",
                offset=block.offset + 4,
            )
        try:
            _verify_raw(block.public_key, block.scheme, digest, block.signature)
        except InvalidSignature:
            raise SignatureError(
                f"signature block {block.index}: signature does not verify with the block's key",
                path=path,
                field=f"block[{block.index}].signature",
                offset=block.offset + (812 if block.scheme is Sbv2Scheme.RSA3072 else 101),
            ) from None
    return sector, digest


def _digest_matches(trusted: bytes, key_digest: bytes) -> bool:
    # ESP32-C2 keeps only the first 128 bits of the digest in eFuse.
    return hmac.compare_digest(trusted, key_digest[: len(trusted)])


def verify_image(
    data: bytes,
    *,
    trusted_digests: Sequence[bytes] | None = None,
    public_keys: Sequence[PublicKey] | None = None,
    revoked: Collection[int] = (),
    path: str | None = None,
) -> Sbv2Verification:
    """Verify a signed image the way the bootloader does, failing closed.

    The trusted list is ``trusted_digests`` (eFuse key digests, 32 bytes, or 16 for ESP32-C2) followed by the
    digests of ``public_keys``; a digest's position is its key slot. ``revoked`` lists revoked slots.

    Checks, in order: sector layout and every block (magic, version, CRC, reserved bytes, key), one scheme,
    each block's image digest and signature; then the first block whose key digest matches a non-revoked
    trusted slot is accepted.

    Raises:
        UsageError: no trusted keys were given, or a trusted digest has a bad length.
        MalformedImageError: the input is not a signed image at all (bad length; neither an ESP image nor
            followed by a signature sector).
        IntegrityError: the signature sector is damaged or absent from an ESP image (exit 1).
        SignatureError: a digest or signature does not verify, or no block carries a trusted,
            non-revoked key (the message says, per block, why).
    """
    trusted: list[bytes] = [bytes(d) for d in trusted_digests or ()]
    trusted += [public_key_digest(k) for k in public_keys or ()]
    if not trusted:
        raise UsageError("no trusted key or key digest given: nothing to verify against", field="key")
    for i, d in enumerate(trusted):
        if len(d) not in (16, 32):
            raise UsageError(f"trusted key digest {i} is {len(d)} bytes, expected 32 (or 16 for ESP32-C2)")
    sector, digest = _check_self_consistent(data, path)
    reasons: list[str] = []
    for block in sector.blocks:
        slots = [i for i, d in enumerate(trusted) if _digest_matches(d, block.key_digest)]
        live = [i for i in slots if i not in revoked]
        if live:
            return Sbv2Verification(
                block_index=block.index,
                key_slot=live[0],
                key_digest=block.key_digest,
                scheme=block.scheme,
                image_digest=digest,
                signed_length=len(data) - SECTOR_SIZE,
                blocks=sector.blocks,
            )
        if slots:
            reasons.append(f"block {block.index}: key is in revoked slot {slots[0]}")
        else:
            reasons.append(f"block {block.index}: key digest {block.key_digest.hex()} is not trusted")
    raise SignatureError(
        "no signature block carries a trusted, non-revoked key (" + "; ".join(reasons) + ")",
        path=path,
        field="block.key",
        offset=sector.offset,
    )


def block_status(block: Sbv2Block, signed_region: bytes | memoryview) -> tuple[bool, bool]:
    """Report (without raising) whether ``block`` matches ``signed_region``: (image digest ok, signature ok).

    For display (``medfw image info``); trust decisions use :func:`verify_image`.
    """
    digest = _hash(signed_region, block.scheme.hash_name)
    digest_ok = hmac.compare_digest(digest, block.image_digest)
    try:
        _verify_raw(block.public_key, block.scheme, block.image_digest, block.signature)
    except InvalidSignature:
        return digest_ok, False
    return digest_ok, True
