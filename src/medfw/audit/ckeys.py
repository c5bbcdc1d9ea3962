"""Checkpoint signing keys: Ed25519 (default) or ECDSA P-256, through pyca/cryptography.

The private key lives outside the log (a 0600 key file or a ``pkcs11:`` URI, see :mod:`medfw.audit.signing`); its
public part is pinned by the verification key (:class:`medfw.audit.keys.VerificationKey`). Kept apart from the
sealing-key ratchet so that verifying a log's entries never loads the signature code before it is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias, TypeGuard

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from medfw.audit.keys import CHECKPOINT_KEY_TYPES, ED25519_SPKI_PREFIX, public_key_der
from medfw.errors import AuditError, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    CheckpointPrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    CheckpointPublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

__all__ = [
    "CHECKPOINT_KEY_TYPES",
    "CheckpointPrivateKey",
    "CheckpointPublicKey",
    "algorithm_of",
    "generate_checkpoint_key",
    "is_checkpoint_private_key",
    "key_id",
    "load_checkpoint_private_key",
    "load_checkpoint_public_key",
    "private_pem",
    "public_pem",
    "sign_bytes",
    "verify_signature",
]

# The ECDSA, hash and serialization modules of pyca/cryptography (and through the latter dataclasses) are loaded
# only where ECDSA or a PEM other than an Ed25519 public key is handled: verifying a log with an Ed25519
# checkpoint key needs none of them.


def __getattr__(name: str) -> Any:
    if name not in ("CheckpointPrivateKey", "CheckpointPublicKey"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - see above

    value = {
        "CheckpointPrivateKey": ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
        "CheckpointPublicKey": ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey,
    }[name]
    globals()[name] = value
    return value


def is_checkpoint_private_key(key: object) -> TypeGuard[CheckpointPrivateKey]:
    """True for an Ed25519 or ECDSA private key object (not a signer that only signs)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return True
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - see above

    return isinstance(key, ec.EllipticCurvePrivateKey)


def key_id(public_key: CheckpointPublicKey) -> str:
    """Return the key's id in checkpoints: medfw's one key fingerprint (hex SHA-256 of the DER SPKI)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):  # its DER is a fixed prefix and the raw key (RFC 8410)
        from medfw.crypto.fingerprint import spki_fingerprint  # noqa: PLC0415 - only where checkpoints are handled

        return spki_fingerprint(ED25519_SPKI_PREFIX + public_key.public_bytes_raw())
    from medfw.crypto.keys import public_key_fingerprint  # noqa: PLC0415 - only where checkpoints are handled

    return public_key_fingerprint(public_key)


def algorithm_of(public_key: CheckpointPublicKey) -> str:
    """Return ``ed25519`` or ``ecdsa-p256``."""
    return "ed25519" if isinstance(public_key, ed25519.Ed25519PublicKey) else "ecdsa-p256"


def generate_checkpoint_key(kind: str = "ed25519") -> CheckpointPrivateKey:
    """Generate a checkpoint signing key (``ed25519`` or ``ecdsa-p256``).

    Raises:
        AuditError: unknown key type.
    """
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256":
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - see above

        return ec.generate_private_key(ec.SECP256R1())
    raise AuditError(f"unknown checkpoint key type {kind!r} (use {' or '.join(CHECKPOINT_KEY_TYPES)})")


def private_pem(key: CheckpointPrivateKey) -> bytes:
    """Serialise a checkpoint private key as unencrypted PKCS#8 PEM (for its 0600 key file, never the log)."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see above

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: CheckpointPublicKey) -> bytes:
    """Serialise a checkpoint public key as SubjectPublicKeyInfo PEM."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see above

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_checkpoint_private_key(pem: bytes) -> CheckpointPrivateKey:
    """Load a checkpoint private key.

    Raises:
        AuditError: not an Ed25519 or ECDSA P-256 private key.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see above
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise AuditError("checkpoint signing key is unreadable", field="checkpoint_key") from e
    if isinstance(key, ed25519.Ed25519PrivateKey) or (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise AuditError("checkpoint signing key is not Ed25519 or ECDSA P-256", field="checkpoint_key")


def load_checkpoint_public_key(pem: bytes, *, path: str | None = None) -> CheckpointPublicKey:
    """Load a checkpoint public key from PEM.

    Raises:
        AuditError: not an Ed25519 or ECDSA P-256 public key.
    """
    der = public_key_der(pem)
    if der is not None and der.startswith(ED25519_SPKI_PREFIX):  # the common case, without the PEM loader
        return ed25519.Ed25519PublicKey.from_public_bytes(der[len(ED25519_SPKI_PREFIX) :])
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - see above
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise AuditError("not a PEM public key", path=path, field="checkpoint_public_key") from e
    if isinstance(key, ed25519.Ed25519PublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise AuditError("checkpoint public key is not Ed25519 or ECDSA P-256", path=path, field="checkpoint_public_key")


def sign_bytes(key: CheckpointPrivateKey, message: bytes) -> bytes:
    """Sign ``message`` (Ed25519, or ECDSA P-256 with SHA-256, DER signature)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see above
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify_signature(key: CheckpointPublicKey, signature: bytes, message: bytes) -> None:
    """Verify a checkpoint signature.

    Raises:
        SignatureError: the signature does not verify.
    """
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - see above
            from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("checkpoint signature does not verify", field="signature") from None
