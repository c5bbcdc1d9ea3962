"""The one signing interface of medfw, and its key-file backend.

Every signing operation in medfw (Secure Boot v2 blocks, MCUboot TLVs, TUF metadata, audit checkpoints,
evidence manifests) goes through a :class:`Signer`, so application code never branches on where a key
lives. Backends are chosen by key URI scheme with :func:`medfw.crypto.registry.load_signer`:

* a plain path or ``file:PATH`` — a private key file (:class:`FileSigner`)
* ``pkcs11:token=…;object=…`` — a key in a PKCS#11 token (``medfw.crypto.pkcs11``)

Signing is *digest-first*: RSA-PSS and ECDSA sign a digest computed on the host (what a token offering only
``CKM_RSA_PKCS_PSS`` / ``CKM_ECDSA`` can do); Ed25519 signs a message (for firmware images the message is the
image digest, as MCUboot does).
"""

from __future__ import annotations

import abc
import enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medfw.crypto.keys import KeyType, PrivateKey, PublicKey, key_type_of, load_private_key
from medfw.errors import UsageError

__all__ = ["FileSigner", "HashName", "Signer", "hash_algorithm"]


class HashName(enum.StrEnum):
    """A digest a signature covers."""

    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"


_HASHES: dict[HashName, type[hashes.HashAlgorithm]] = {
    HashName.SHA256: hashes.SHA256,
    HashName.SHA384: hashes.SHA384,
    HashName.SHA512: hashes.SHA512,
}


def hash_algorithm(name: HashName) -> hashes.HashAlgorithm:
    """Return the cryptography hash object for ``name``.

    Raises:
        ValueError: ``name`` is not a :class:`HashName` value.
    """
    return _HASHES[HashName(name)]()


def _hash_name(name: HashName | str) -> HashName:
    try:
        return HashName(name)
    except ValueError:
        raise UsageError(f"unknown hash {name!r} (one of {', '.join(HashName)})", field="hash") from None


class Signer(abc.ABC):
    """A private key that can sign, wherever it lives.

    Implementations provide :meth:`public_key`, :meth:`_sign_digest` and :meth:`_sign_message`; the base class
    checks arguments (digest length against the hash, scheme against the key type).
    """

    #: a short, non-secret description for logs and audit records (a path or URI without PIN)
    key_id: str

    @abc.abstractmethod
    def public_key(self) -> PublicKey:
        """Return the public key."""

    @property
    def key_type(self) -> KeyType:
        """The key's type."""
        return key_type_of(self.public_key(), path=self.key_id)

    def sign_digest(self, digest: bytes, hash_name: HashName | str) -> bytes:
        """Sign a precomputed digest.

        RSA keys produce RSASSA-PSS (MGF1 with the same hash, salt length = digest length) as big-endian bytes;
        ECDSA keys produce a DER ``Ecdsa-Sig-Value``.

        Raises:
            UsageError: ``hash_name`` is not a :class:`HashName`, the digest length does not match it, or the key
                is Ed25519.
        """
        hash_name = _hash_name(hash_name)
        expected = hash_algorithm(hash_name).digest_size
        if len(digest) != expected:
            raise UsageError(f"digest is {len(digest)} bytes, {hash_name} needs {expected}", path=self.key_id)
        if self.key_type is KeyType.ED25519:
            raise UsageError("an Ed25519 key signs messages, not prehashed digests", path=self.key_id)
        return self._sign_digest(digest, hash_name)

    def sign_message(self, message: bytes, hash_name: HashName | str = HashName.SHA256) -> bytes:
        """Sign a message: Ed25519 signs it directly; RSA/ECDSA hash it with ``hash_name`` then sign the digest.

        Raises:
            UsageError: ``hash_name`` is not a :class:`HashName`.
        """
        hash_name = _hash_name(hash_name)
        if self.key_type is KeyType.ED25519:
            return self._sign_message(message)
        h = hashes.Hash(hash_algorithm(hash_name))
        h.update(message)
        return self._sign_digest(h.finalize(), hash_name)

    @abc.abstractmethod
    def _sign_digest(self, digest: bytes, hash_name: HashName) -> bytes: ...

    @abc.abstractmethod
    def _sign_message(self, message: bytes) -> bytes: ...


class FileSigner(Signer):
    """A signer backed by an in-memory private key (loaded from a key file)."""

    def __init__(self, key: PrivateKey, key_id: str = "<memory>") -> None:
        key_type_of(key, path=key_id)
        self._key = key
        self.key_id = key_id

    @classmethod
    def from_file(cls, path: str) -> FileSigner:
        """Load a PEM/DER private key file."""
        return cls(load_private_key(path), key_id=path)

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def _sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        alg = hash_algorithm(hash_name)
        pre = utils.Prehashed(alg)
        if isinstance(self._key, rsa.RSAPrivateKey):
            pss = padding.PSS(mgf=padding.MGF1(alg), salt_length=alg.digest_size)
            return self._key.sign(digest, pss, pre)
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(digest, ec.ECDSA(pre))
        raise UsageError("an Ed25519 key signs messages, not prehashed digests", path=self.key_id)

    def _sign_message(self, message: bytes) -> bytes:
        if not isinstance(self._key, ed25519.Ed25519PrivateKey):
            raise UsageError("only Ed25519 keys sign raw messages", path=self.key_id)
        return self._key.sign(message)
