"""Secure Boot v2 signature blocks: the schemes, the image digest, the eFuse key digest, and building one block
(layout and rules: :mod:`medfw.image.sbv2`)."""

from __future__ import annotations

import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medfw.crypto.keys import KeyType, PublicKey
from medfw.crypto.signer import HashName
from medfw.errors import KeyMaterialError, MalformedImageError, SignatureError, UsageError

__all__ = [
    "BLOCK_MAGIC",
    "BLOCK_SIZE",
    "CRC_LENGTH",
    "MAX_BLOCKS",
    "RSA_BITS",
    "RSA_BYTES",
    "SECTOR_SIZE",
    "VERSION_ECDSA",
    "VERSION_RSA",
    "Sbv2Block",
    "Sbv2Scheme",
    "Sbv2Verification",
    "SignatureSector",
    "assemble_block",
    "digest_to_sign",
    "image_digest",
    "pad_image",
    "public_key_digest",
    "scheme_of_key",
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
        return HashName.SHA384 if self is Sbv2Scheme.ECDSA_P384 else HashName.SHA256

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


def image_digest(data: bytes, hash_name: HashName | str = HashName.SHA256) -> bytes:
    """Digest of the padded image (what a signature block's ``image_digest`` field holds).

    Raises:
        UsageError: ``hash_name`` is neither ``sha256`` nor ``sha384``.
    """
    if hash_name not in (HashName.SHA256, HashName.SHA384):
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
