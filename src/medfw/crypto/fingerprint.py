"""medfw's one key fingerprint: SHA-256 of the DER SubjectPublicKeyInfo, as lowercase hex.

Kept apart from :mod:`medfw.crypto.keys` (which loads pyca/cryptography's serialization code) so that a caller
that already has the DER, such as the audit verifier with an Ed25519 checkpoint key, loads nothing more.
"""

from __future__ import annotations

import hashlib

__all__ = ["spki_fingerprint"]


def spki_fingerprint(der: bytes) -> str:
    """The fingerprint of a public key given as its DER SubjectPublicKeyInfo."""
    return hashlib.sha256(der).hexdigest()
