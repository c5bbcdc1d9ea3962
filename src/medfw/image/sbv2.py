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

import enum
import hashlib
import hmac
import struct
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medfw.crypto.keys import KeyType, PublicKey
from medfw.crypto.signer import HashName, Signer
from medfw.errors import IntegrityError, KeyMaterialError, MalformedImageError, SignatureError, UsageError
from medfw.image.esp import IMAGE_MAGIC as ESP_IMAGE_MAGIC

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

SECTOR_SIZE = 4096
BLOCK_SIZE = 1216
MAX_BLOCKS = 3
CRC_LENGTH = 1196
BLOCK_MAGIC = 0xE7
VERSION_RSA = 0x02
VERSION_ECDSA = 0x03
RSA_BITS = 3072
RSA_BYTES = RSA_BITS // 8

_RSA_BLOCK = struct.Struct("<BBxx32s384sI384sI384s")
_ECDSA_SMALL_BLOCK = struct.Struct("<BBBx32sB64s64s1031x")
_ECDSA_P384_BLOCK = struct.Struct("<BBBx48sB96s96s951x")


class Sbv2Scheme(enum.StrEnum):
    """Secure Boot v2 signature schemes (values match :class:`~medfw.crypto.keys.KeyType` spellings)."""

    RSA3072 = "rsa3072"
    ECDSA_P192 = "ecdsa-p192"  # legacy: verified, never produced
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"

    @property
    def hash_name(self) -> HashName:
        """The image-digest hash: SHA-384 for P-384, SHA-256 otherwise."""
        return "sha384" if self is Sbv2Scheme.ECDSA_P384 else "sha256"

    @property
    def block_version(self) -> int:
        """The block version byte: 0x02 for RSA, 0x03 for ECDSA."""
        return VERSION_RSA if self is Sbv2Scheme.RSA3072 else VERSION_ECDSA


#: ECDSA curve id → (scheme, coordinate length in bytes, curve)
_CURVES: dict[int, tuple[Sbv2Scheme, int, ec.EllipticCurve]] = {
    1: (Sbv2Scheme.ECDSA_P192, 24, ec.SECP192R1()),
    2: (Sbv2Scheme.ECDSA_P256, 32, ec.SECP256R1()),
    3: (Sbv2Scheme.ECDSA_P384, 48, ec.SECP384R1()),
}
_CURVE_IDS = {scheme: cid for cid, (scheme, _, _) in _CURVES.items()}


# ---------------------------------------------------------------------------------------------- digests


def pad_image(data: bytes) -> bytes:
    """Pad ``data`` with 0xFF to the next 4 KiB boundary (the bytes the signature covers)."""
    return data + b"\xff" * (-len(data) % SECTOR_SIZE)


def _hash(view: bytes | memoryview, hash_name: str) -> bytes:
    return hashlib.new(hash_name, view).digest()


def image_digest(data: bytes, hash_name: str = "sha256") -> bytes:
    """Digest of the padded image (what a signature block's ``image_digest`` field holds)."""
    if hash_name not in ("sha256", "sha384"):
        raise UsageError(f"Secure Boot v2 digests are sha256 or sha384, not {hash_name}", field="hash")
    h = hashlib.new(hash_name, data)
    h.update(b"\xff" * (-len(data) % SECTOR_SIZE))
    return h.digest()


def scheme_of_key(key: PublicKey, *, path: str | None = None) -> Sbv2Scheme:
    """Return the Secure Boot v2 scheme a public key signs with.

    Raises:
        KeyMaterialError: Ed25519, RSA of a size other than 3072, or an unsupported curve.
    """
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size != RSA_BITS:
            raise KeyMaterialError(f"RSA-{key.key_size} key: Secure Boot v2 requires RSA-3072", path=path)
        return Sbv2Scheme.RSA3072
    if isinstance(key, ec.EllipticCurvePublicKey):
        for scheme, _, curve in _CURVES.values():
            if key.curve.name == curve.name:
                return scheme
        raise KeyMaterialError(f"ECDSA key on {key.curve.name}: Secure Boot v2 needs P-256 or P-384", path=path)
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyMaterialError("Ed25519 keys cannot sign Secure Boot v2 images (RSA-3072, P-256, P-384)", path=path)
    raise KeyMaterialError(f"unsupported key type {type(key).__name__}", path=path)


def digest_to_sign(data: bytes, key_type: KeyType | Sbv2Scheme) -> bytes:
    """The digest an external signer must sign for ``data`` (padded to 4 KiB) with a key of ``key_type``.

    Raises:
        KeyMaterialError: Ed25519 (not a Secure Boot v2 scheme).
    """
    if key_type == KeyType.ED25519:
        raise KeyMaterialError("Ed25519 keys cannot sign Secure Boot v2 images (RSA-3072, P-256, P-384)")
    return image_digest(data, Sbv2Scheme(str(key_type)).hash_name)


# ---------------------------------------------------------------------------------------------- key fields


def _le(value: int, length: int) -> bytes:
    return value.to_bytes(length, "little")


def _key_field(key: PublicKey, scheme: Sbv2Scheme) -> bytes:
    """The key bytes as they sit in a signature block (and as the eFuse digest hashes them)."""
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        rinv = pow(2, 2 * RSA_BITS, nums.n)
        mdash = (-pow(nums.n, -1, 1 << 32)) & 0xFFFFFFFF
        return _le(nums.n, RSA_BYTES) + struct.pack("<I", nums.e) + _le(rinv, RSA_BYTES) + struct.pack("<I", mdash)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    enc = key.public_numbers()
    _, size, _ = _CURVES[_CURVE_IDS[scheme]]
    point = _le(enc.x, size) + _le(enc.y, size)
    point += b"\x00" * ((96 if scheme is Sbv2Scheme.ECDSA_P384 else 64) - len(point))
    return bytes([_CURVE_IDS[scheme]]) + point


def public_key_digest(public_key: PublicKey) -> bytes:
    """The 32-byte eFuse key digest, exactly as espsecure ``digest-sbv2-public-key`` computes it.

    Raises:
        KeyMaterialError: not an RSA-3072 or ECDSA P-192/P-256/P-384 key.
    """
    return hashlib.sha256(_key_field(public_key, scheme_of_key(public_key))).digest()


# ---------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Sbv2Block:
    """One parsed, well-formed signature block.

    Attributes:
        index: position in the sector (0..2).
        offset: byte offset of the block in the file it was parsed from.
        scheme: the signature scheme.
        image_digest: the digest the block claims for the padded image.
        key_digest: SHA-256 of the key field: the value burned into eFuse for this key.
        public_key: the public key carried by the block.
        signature: the signature in conventional form (RSA big-endian; ECDSA DER).
        crc: the stored CRC-32.
    """

    index: int
    offset: int
    scheme: Sbv2Scheme
    image_digest: bytes
    key_digest: bytes
    public_key: PublicKey
    signature: bytes
    crc: int


@dataclass(frozen=True)
class SignatureSector:
    """The parsed signature sector: its well-formed blocks, in order."""

    offset: int
    blocks: tuple[Sbv2Block, ...]

    @property
    def scheme(self) -> Sbv2Scheme:
        """The (single) scheme of the sector's blocks."""
        return self.blocks[0].scheme


@dataclass(frozen=True)
class Sbv2Verification:
    """Result of a successful :func:`verify_image`.

    Attributes:
        block_index: the block that was accepted (the first with a trusted, non-revoked key).
        key_slot: index of the matching digest in the trusted list (the eFuse key slot).
        key_digest: that key's eFuse digest.
        scheme: the sector's scheme.
        image_digest: the verified digest of the signed region.
        signed_length: bytes covered by the signature (the padded image, before the sector).
        blocks: every block in the sector (all well formed and correctly self-signed).
    """

    block_index: int
    key_slot: int
    key_digest: bytes
    scheme: Sbv2Scheme
    image_digest: bytes
    signed_length: int
    blocks: tuple[Sbv2Block, ...]


def _verify_raw(key: PublicKey, scheme: Sbv2Scheme, digest: bytes, signature: bytes) -> None:
    """Verify a conventional-form signature over a digest; raise InvalidSignature/ValueError on failure."""
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(
            signature,
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            utils.Prehashed(hashes.SHA256()),
        )
        return
    assert isinstance(key, ec.EllipticCurvePublicKey)
    alg: hashes.HashAlgorithm = hashes.SHA384() if scheme is Sbv2Scheme.ECDSA_P384 else hashes.SHA256()
    key.verify(signature, digest, ec.ECDSA(utils.Prehashed(alg)))


def _normalize_signature(signature: bytes, scheme: Sbv2Scheme) -> bytes:
    """Accept RSA raw big-endian, or ECDSA DER / raw r‖s (big-endian); return RSA raw or ECDSA DER.

    For ECDSA the length decides: exactly twice the coordinate size is raw r‖s (a DER encoding of that exact
    length is vanishingly unlikely), anything else must be DER.
    """
    if scheme is Sbv2Scheme.RSA3072:
        if len(signature) != RSA_BYTES:
            raise MalformedImageError(
                f"RSA-3072 signature is {len(signature)} bytes, expected {RSA_BYTES}", field="signature"
            )
        return signature
    _, size, _ = _CURVES[_CURVE_IDS[scheme]]
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        return utils.encode_dss_signature(r, s)
    try:
        utils.decode_dss_signature(signature)
    except ValueError:
        raise MalformedImageError(
            f"ECDSA signature is neither DER nor {2 * size}-byte r||s", field="signature"
        ) from None
    return signature


def assemble_block(digest: bytes, signature: bytes, public_key: PublicKey) -> bytes:
    """Build one 1216-byte signature block from an image digest, a signature over it and the public key.

    ``signature`` is what an external signer returns: RSA-PSS as raw big-endian bytes; ECDSA as DER or raw
    r‖s. The signature is checked against ``digest`` and ``public_key`` before the block is built.

    Raises:
        KeyMaterialError: the key cannot sign Secure Boot v2.
        MalformedImageError: the digest or signature has the wrong size or encoding.
        SignatureError: the signature does not verify.
    """
    scheme = scheme_of_key(public_key)
    want = 48 if scheme is Sbv2Scheme.ECDSA_P384 else 32
    if len(digest) != want:
        raise MalformedImageError(f"digest is {len(digest)} bytes, {scheme} needs {want}", field="digest")
    sig = _normalize_signature(signature, scheme)
    try:
        _verify_raw(public_key, scheme, digest, sig)
    except InvalidSignature:
        raise SignatureError("signature does not verify with the given public key and image digest") from None
    key_field = _key_field(public_key, scheme)
    if scheme is Sbv2Scheme.RSA3072:
        body = struct.pack("<BBxx32s", BLOCK_MAGIC, VERSION_RSA, digest) + key_field + sig[::-1]
    else:
        r, s = utils.decode_dss_signature(sig)
        _, size, _ = _CURVES[_CURVE_IDS[scheme]]
        rs = _le(r, size) + _le(s, size)
        if scheme is Sbv2Scheme.ECDSA_P384:
            body = _ECDSA_P384_BLOCK.pack(BLOCK_MAGIC, VERSION_ECDSA, 1, digest, key_field[0], key_field[1:], rs)
        else:
            rs += b"\x00" * (64 - len(rs))
            body = _ECDSA_SMALL_BLOCK.pack(BLOCK_MAGIC, VERSION_ECDSA, 0, digest, key_field[0], key_field[1:], rs)
    assert len(body) == CRC_LENGTH
    return body + struct.pack("<I", zlib.crc32(body)) + b"\x00" * 16


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
