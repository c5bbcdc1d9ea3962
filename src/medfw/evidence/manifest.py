"""The signed manifest of an evidence bundle: every file with its size and SHA-256, signed as a whole.

Format (``manifest.json``)::

    {"format": "medfw-evidence-manifest/1", "release": {...}, "created": "...Z",
     "files": [{"path": "sbom/sbom.cdx.json", "sha256": "…", "size": 1234}, ...],
     "signer": {"key_id": "…", "algorithm": "ed25519", "public_key_sha256": "…"}}

The signature (``manifest.sig``, raw bytes) covers the RFC 8785 canonical form of the manifest object, so a
reader that re-serialises the JSON differently still verifies the same bytes. Ed25519 signs the canonical
bytes; ECDSA and RSA-PSS sign their SHA-256 (the :class:`medfw.crypto.signer.Signer` contract). The public
key ships in the bundle as ``manifest.pub.pem`` for convenience only: a verifier should pin it with
``--key`` (and is told when it did not).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from medfw.crypto.keys import PublicKey, key_type_of, public_key_fingerprint
from medfw.crypto.signer import Signer
from medfw.errors import EvidenceError, VerificationError

__all__ = [
    "MANIFEST_FORMAT",
    "FileEntry",
    "canonical_bytes",
    "file_entry",
    "make_manifest",
    "public_key_fingerprint",
    "sign_manifest",
    "signer_label",
    "verify_manifest_signature",
]

MANIFEST_FORMAT = "medfw-evidence-manifest/1"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: path relative to the bundle root (POSIX separators), SHA-256 and size."""

    path: str
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        """Return the manifest form."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def canonical_bytes(obj: Any) -> bytes:
    """Return the RFC 8785 (JCS) canonical UTF-8 bytes of a JSON value."""
    try:
        data: bytes = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise EvidenceError(f"manifest is not canonicalisable JSON: {e}") from e
    return data


def file_entry(root: Path, path: Path) -> FileEntry:
    """Hash ``path`` (inside ``root``) in 1 MiB chunks."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return FileEntry(path.relative_to(root).as_posix(), h.hexdigest(), size)


def signer_label(signer: Signer) -> str:
    """A non-secret label for the signing key: the key file's name, or the ``pkcs11:`` URI (never with a PIN)."""
    return signer.key_id if signer.key_id.startswith("pkcs11:") else Path(signer.key_id).name


def make_manifest(
    files: Iterable[FileEntry],
    *,
    release: Mapping[str, Any],
    created: str,
    signer: Signer,
) -> dict[str, Any]:
    """Build the manifest object (unsigned) for ``files``, sorted by path."""
    entries = sorted(files, key=lambda f: f.path)
    paths = [f.path for f in entries]
    if len(set(paths)) != len(paths):
        raise EvidenceError("duplicate path in bundle manifest")
    pub = signer.public_key()
    return {
        "format": MANIFEST_FORMAT,
        "release": dict(release),
        "created": created,
        "files": [f.as_dict() for f in entries],
        "signer": {
            "key_id": signer_label(signer),
            "algorithm": str(key_type_of(pub)),
            "public_key_sha256": public_key_fingerprint(pub),
        },
    }


def sign_manifest(manifest: Mapping[str, Any], signer: Signer) -> bytes:
    """Sign the canonical bytes of ``manifest`` with ``signer``; returns the raw signature."""
    return signer.sign_message(canonical_bytes(manifest), "sha256")


def verify_manifest_signature(manifest: Mapping[str, Any], signature: bytes, key: PublicKey) -> None:
    """Verify a manifest signature; raise :class:`VerificationError` if it does not verify.

    Also checks that the manifest names the same public key (by fingerprint) as the one given.
    """
    signer_info = manifest.get("signer")
    fp = public_key_fingerprint(key)
    if not isinstance(signer_info, Mapping) or not hmac.compare_digest(
        str(signer_info.get("public_key_sha256", "")), fp
    ):
        raise VerificationError(
            "manifest was signed by a different key than the one given", path="manifest.json", field="signer"
        )
    message = canonical_bytes(manifest)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    except InvalidSignature:
        raise VerificationError("manifest signature does not verify", path="manifest.sig") from None
