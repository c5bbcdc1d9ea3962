"""A securesystemslib :class:`~securesystemslib.signer.Signer` backed by a medfw :class:`~medfw.crypto.signer.Signer`.

TUF metadata (root, targets, snapshot, timestamp) is signed through this adapter, so every key medfw can use —
a key file or a ``pkcs11:`` token key — can hold a TUF role. The TUF signature scheme follows the key type:

* RSA-3072 → ``rsassa-pss-sha256`` (salt = digest length, which python-tuf's PSS verifier accepts)
* ECDSA P-256 → ``ecdsa-sha2-nistp256``, P-384 → ``ecdsa-sha2-nistp384`` (DER signatures)
* Ed25519 → ``ed25519``

The private key never leaves the medfw signer; only the digest (or, for Ed25519, the canonical metadata bytes)
is passed to it.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from securesystemslib.signer import Key, Signature, SSlibKey
from securesystemslib.signer import Signer as SslibSigner

from medfw.crypto.keys import KeyType
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import HashName, Signer
from medfw.errors import KeyMaterialError

__all__ = ["MedfwTufSigner", "tuf_public_key"]

_SCHEMES: dict[KeyType, tuple[str, HashName | None]] = {
    KeyType.RSA3072: ("rsassa-pss-sha256", HashName.SHA256),
    KeyType.ECDSA_P256: ("ecdsa-sha2-nistp256", HashName.SHA256),
    KeyType.ECDSA_P384: ("ecdsa-sha2-nistp384", HashName.SHA384),
    KeyType.ED25519: ("ed25519", None),
}


def tuf_public_key(signer: Signer) -> SSlibKey:
    """Return the TUF public key (with its default key id) of a medfw signer."""
    scheme, _ = _SCHEMES[signer.key_type]
    return SSlibKey.from_crypto(signer.public_key(), scheme=scheme)


class MedfwTufSigner(SslibSigner):
    """Signs TUF metadata with a medfw :class:`Signer` (key file or PKCS#11 token).

    Args:
        signer: the medfw signer holding the private key.
    """

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._public = tuf_public_key(signer)
        self._scheme, self._hash = _SCHEMES[signer.key_type]

    @property
    def medfw_signer(self) -> Signer:
        """The wrapped medfw signer."""
        return self._signer

    @property
    def public_key(self) -> Key:
        """The TUF public key matching the signatures this signer makes."""
        return self._public

    @property
    def key_id(self) -> str:
        """The TUF key id (hex SHA-256 of the canonical public key)."""
        return self._public.keyid

    @classmethod
    def from_medfw_uri(cls, uri: str) -> MedfwTufSigner:
        """Open a signer from a medfw key URI (a path, ``file:PATH`` or ``pkcs11:…``)."""
        return cls(load_signer(uri))

    @classmethod
    def from_priv_key_uri(
        cls,
        priv_key_uri: str,
        public_key: Key,
        secrets_handler: Callable[[str], str] | None = None,
    ) -> MedfwTufSigner:
        """Open the signer for ``priv_key_uri`` and check that it matches ``public_key``.

        Raises:
            KeyMaterialError: the private key does not belong to ``public_key``.
        """
        signer = cls.from_medfw_uri(priv_key_uri)
        if signer.public_key.keyval != public_key.keyval:
            raise KeyMaterialError("private key does not match the TUF public key", path=priv_key_uri)
        return signer

    def sign(self, payload: bytes) -> Signature:
        """Sign canonical metadata bytes and return a TUF signature."""
        if self._hash is None:
            sig = self._signer.sign_message(payload)
        else:
            h = hashes.Hash(hashes.SHA256() if self._hash == "sha256" else hashes.SHA384())
            h.update(payload)
            sig = self._signer.sign_digest(h.finalize(), self._hash)
        return Signature(self._public.keyid, sig.hex())
