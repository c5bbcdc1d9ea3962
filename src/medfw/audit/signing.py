"""Where the checkpoint signing key lives: its own 0600 key file or a ``pkcs11:`` URI, never inside the log.

The log stores only a *reference* to the key (``checkpoint_key`` in its meta: a path or a PKCS#11 URI without
PIN) and the public key. A writer opens the key only when it signs a checkpoint, so a session that appends and
closes never touches it. Whoever can rewrite the log can therefore not re-sign its checkpoints, and a verifier
that pins the public key (from the verification key file or ``--pubkey``) rejects checkpoints made with any
other key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from medfw._io import atomic_write, read_bytes
from medfw.audit.ckeys import (
    CheckpointPrivateKey,
    CheckpointPublicKey,
    generate_checkpoint_key,
    load_checkpoint_private_key,
    private_pem,
    public_pem,
    sign_bytes,
)
from medfw.errors import AuditError

__all__ = ["CheckpointSigner", "check_reference", "create_key_file", "is_pkcs11", "open_signer"]

_MAX_KEY_FILE = 64 * 1024


def is_pkcs11(ref: str) -> bool:
    """True for ``pkcs11:`` key references."""
    return ref.startswith("pkcs11:")


@dataclass(frozen=True)
class CheckpointSigner:
    """A checkpoint signing key, wherever it lives (``reference`` is a path or URI, never a secret)."""

    reference: str
    public_key: CheckpointPublicKey
    _key: CheckpointPrivateKey | None = None
    _token: object | None = None

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (Ed25519, or ECDSA P-256 with SHA-256 and a DER signature)."""
        if self._key is not None:
            return sign_bytes(self._key, message)
        from medfw.crypto.signer import Signer  # noqa: PLC0415 - PKCS#11 only

        assert isinstance(self._token, Signer)
        return self._token.sign_message(message, "sha256")

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return public_pem(self.public_key)


def create_key_file(path: str | Path, kind: str = "ed25519") -> CheckpointSigner:
    """Generate a checkpoint key and write it to ``path`` (mode 0600, refusing to overwrite).

    Raises:
        AuditError: unknown key type.
        InputError: ``path`` exists.
    """
    key = generate_checkpoint_key(kind)
    atomic_write(path, private_pem(key), mode=0o600, overwrite=False)
    return CheckpointSigner(reference=str(Path(path).resolve()), public_key=key.public_key(), _key=key)


def _open_file(ref: str) -> CheckpointSigner:
    path = ref.removeprefix("file:")
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        msg = f"checkpoint signing key unavailable: {e.strerror}"
        raise AuditError(msg, path=path, field="checkpoint_key") from None
    if stat.S_IMODE(mode) & 0o077:
        raise AuditError(
            f"checkpoint signing key is readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it",
            path=path,
            field="checkpoint_key",
        )
    pem = read_bytes(path, max_length=_MAX_KEY_FILE, what="checkpoint signing key")
    try:
        key = load_checkpoint_private_key(pem)
    except AuditError as e:
        raise AuditError(e.message, path=path, field="checkpoint_key") from None
    return CheckpointSigner(reference=path, public_key=key.public_key(), _key=key)


def _open_pkcs11(ref: str) -> CheckpointSigner:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: PLC0415

    from medfw.crypto.registry import load_signer  # noqa: PLC0415 - only PKCS#11 keys need the token stack

    signer = load_signer(ref)
    pub = signer.public_key()
    if isinstance(pub, ed25519.Ed25519PublicKey) or (
        isinstance(pub, ec.EllipticCurvePublicKey) and isinstance(pub.curve, ec.SECP256R1)
    ):
        return CheckpointSigner(reference=ref, public_key=pub, _token=signer)
    raise AuditError("checkpoint key in the token is not Ed25519 or ECDSA P-256", path=signer.key_id)


def open_signer(ref: str) -> CheckpointSigner:
    """Open the checkpoint signing key ``ref`` names (a key file path, ``file:PATH`` or a ``pkcs11:`` URI).

    Raises:
        AuditError: the key is missing, unreadable, readable by others, or of another type.
        HSMError: the token cannot be used.
    """
    if is_pkcs11(ref):
        return _open_pkcs11(ref)
    return _open_file(ref)


def check_reference(ref: str) -> str:
    """Return ``ref`` if it may be stored in the log (a path, or a PKCS#11 URI that carries no PIN).

    Raises:
        AuditError: the URI holds a PIN (give it through ``pin-source`` or ``MEDFW_PKCS11_PIN`` instead).
    """
    if is_pkcs11(ref) and "pin-value" in ref.lower():
        raise AuditError(
            "the checkpoint key URI contains a PIN (pin-value); the log stores the URI, so give the PIN through "
            "pin-source or MEDFW_PKCS11_PIN",
            field="checkpoint_key",
        )
    if not ref or "\x00" in ref or len(ref) > 4096:
        raise AuditError("checkpoint key reference is empty or malformed", field="checkpoint_key")
    return ref
