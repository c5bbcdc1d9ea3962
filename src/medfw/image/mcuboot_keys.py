"""How MCUboot names, hashes and checks keys: KEYHASH, hash algorithm per key type, signature TLV per key type.

* KEYHASH is the hash of the public key bytes built into the bootloader: DER PKCS#1 ``RSAPublicKey`` for RSA,
  DER ``SubjectPublicKeyInfo`` for ECDSA and Ed25519. Inside an image it uses the image hash algorithm, so a
  P-384 image carries a SHA-384 KEYHASH while ``imgtool getpubhash`` always prints SHA-256.
* The image hash is SHA-384 for ECDSA P-384 and SHA-256 otherwise (Ed25519 images may also use SHA-512).
* RSA-3072 signs with RSASSA-PSS (MGF1-SHA-256, salt 32) over the digest, ECDSA with a DER signature over the
  digest, Ed25519 signs the digest bytes themselves as its message.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medfw.crypto.keys import KeyType, PrivateKey, PublicKey
from medfw.crypto.signer import HashName, hash_algorithm

__all__ = [
    "HASH_TLV",
    "SIG_TLV",
    "allowed_hashes",
    "default_hash",
    "key_hash",
    "public_key_bytes",
    "signature_valid",
]

#: hash name -> TLV type of the image hash
HASH_TLV: dict[HashName, int] = {HashName.SHA256: 0x10, HashName.SHA384: 0x11, HashName.SHA512: 0x12}

#: key type -> signature TLV type
SIG_TLV: dict[KeyType, int] = {
    KeyType.RSA3072: 0x23,
    KeyType.ECDSA_P256: 0x22,
    KeyType.ECDSA_P384: 0x22,
    KeyType.ED25519: 0x24,
}

_ALLOWED: dict[KeyType, tuple[HashName, ...]] = {
    KeyType.RSA3072: (HashName.SHA256,),
    KeyType.ECDSA_P256: (HashName.SHA256,),
    KeyType.ECDSA_P384: (HashName.SHA384,),
    KeyType.ED25519: (HashName.SHA256, HashName.SHA512),
}


def default_hash(key_type: KeyType) -> HashName:
    """The image hash imgtool picks for a key type (``--sha auto``)."""
    return _ALLOWED[key_type][0]


def allowed_hashes(key_type: KeyType) -> tuple[HashName, ...]:
    """The image hashes a key type may be used with."""
    return _ALLOWED[key_type]


def public_key_bytes(public_key: PublicKey | PrivateKey) -> bytes:
    """The public-key bytes MCUboot embeds: DER PKCS#1 for RSA, DER SubjectPublicKeyInfo otherwise.

    A private key stands for its public half.
    """
    if isinstance(public_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        public_key = public_key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hash(public_key: PublicKey | PrivateKey, hash_name: HashName = HashName.SHA256) -> bytes:
    """imgtool's KEYHASH of ``public_key``: ``hash_name`` over :func:`public_key_bytes`.

    With the default SHA-256 this equals ``imgtool getpubhash -e raw``; images signed with ECDSA P-384 carry the
    SHA-384 variant.
    """
    return hashlib.new(hash_name, public_key_bytes(public_key)).digest()


def signature_valid(public_key: PublicKey, signature: bytes, digest: bytes, hash_name: HashName) -> bool:
    """Check an MCUboot signature over the image ``digest``; never raises for bad signatures.

    ECDSA signatures may carry trailing zero bytes (imgtool ``--pad-sig`` for MCUboot < 1.5); anything else after
    the DER structure is rejected.
    """
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if len(signature) != public_key.key_size // 8:
                return False
            alg = hash_algorithm(hash_name)
            public_key.verify(
                signature,
                digest,
                padding.PSS(mgf=padding.MGF1(alg), salt_length=alg.digest_size),
                utils.Prehashed(alg),
            )
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) < 2 or signature[0] != 0x30 or signature[1] >= 0x80:
                return False
            der_len = signature[1] + 2
            if len(signature) < der_len or any(signature[der_len:]):
                return False
            public_key.verify(signature[:der_len], digest, ec.ECDSA(utils.Prehashed(hash_algorithm(hash_name))))
        else:
            public_key.verify(signature, digest)
    except (InvalidSignature, ValueError):
        return False
    return True
