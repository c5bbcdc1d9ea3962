"""Key generation, loading and serialization for the four key types medfw signs with.

Keys are pyca/cryptography objects. Private keys are written as unencrypted PKCS#8 PEM with mode 0600 (the
offline-key model: protect the file, or keep the key in an HSM), and never logged or put into an error.
"""

from __future__ import annotations

import enum
import os
from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from medfw._io import atomic_write, read_bytes
from medfw.crypto.fingerprint import spki_fingerprint
from medfw.errors import KeyMaterialError

__all__ = [
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "key_type_of",
    "load_private_key",
    "load_private_key_bytes",
    "load_public_key",
    "load_public_key_bytes",
    "private_key_pem",
    "public_key_fingerprint",
    "public_key_pem",
    "write_private_key",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

MAX_KEY_FILE = 64 * 1024


class KeyType(enum.StrEnum):
    """The key types medfw supports (CLI spelling)."""

    RSA3072 = "rsa3072"
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    ED25519 = "ed25519"


def generate_private_key(key_type: KeyType) -> PrivateKey:
    """Generate a new private key of ``key_type`` (RSA public exponent 65537)."""
    if key_type is KeyType.RSA3072:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type is KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    return ed25519.Ed25519PrivateKey.generate()


def key_type_of(key: PrivateKey | PublicKey, *, path: str | None = None) -> KeyType:
    """Classify a key; raise :class:`KeyMaterialError` for sizes or curves medfw does not sign with."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size != 3072:
            raise KeyMaterialError(f"RSA-{key.key_size} key: RSA-3072 is required", path=path)
        return KeyType.RSA3072
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyType.ECDSA_P256
        if isinstance(key.curve, ec.SECP384R1):
            return KeyType.ECDSA_P384
        raise KeyMaterialError(f"ECDSA key on curve {key.curve.name}: P-256 or P-384 is required", path=path)
    return KeyType.ED25519


def load_private_key_bytes(data: bytes, *, path: str | None = None) -> PrivateKey:
    """Parse a PEM or DER private key (unencrypted).

    Raises:
        KeyMaterialError: not a private key, encrypted, or of an unsupported type.
    """
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise KeyMaterialError("private key is password-protected; an unencrypted key is expected", path=path) from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY" in data:
            raise KeyMaterialError("file holds a public key, a private key is required", path=path) from None
        raise KeyMaterialError("not a PEM or DER private key", path=path) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyMaterialError(f"unsupported private key type {type(key).__name__}", path=path)
    key_type_of(key, path=path)
    return key


def load_public_key_bytes(data: bytes, *, path: str | None = None) -> PublicKey:
    """Parse a PEM/DER public key, or derive it from a private key file.

    Raises:
        KeyMaterialError: not a key, or of an unsupported type.
    """
    key: object
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        key = load_private_key_bytes(data, path=path).public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise KeyMaterialError(f"unsupported public key type {type(key).__name__}", path=path)
    key_type_of(key, path=path)
    return key


def load_private_key(path: str | os.PathLike[str]) -> PrivateKey:
    """Load a private key file (PEM or DER)."""
    return load_private_key_bytes(read_bytes(path, max_length=MAX_KEY_FILE, what="key file"), path=str(path))


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Load a public key file, or the public half of a private key file."""
    return load_public_key_bytes(read_bytes(path, max_length=MAX_KEY_FILE, what="key file"), path=str(path))


def private_key_pem(key: PrivateKey) -> bytes:
    """Serialize a private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: PublicKey) -> bytes:
    """Serialize a public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_private_key(key: PrivateKey, path: str | os.PathLike[str], *, force: bool = False) -> None:
    """Write a private key as PEM with mode 0600, atomically; refuse to overwrite unless ``force``."""
    atomic_write(path, private_key_pem(key), mode=0o600, overwrite=force)


def public_key_fingerprint(key: PublicKey) -> str:
    """The one key fingerprint of medfw: SHA-256 of the DER SubjectPublicKeyInfo, as lowercase hex.

    Audit records, approvals, rotation plans, evidence manifests and ``keys export-public`` all name keys by it.
    """
    return spki_fingerprint(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
