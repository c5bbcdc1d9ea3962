"""Forward-secure sealing keys (a one-way ratchet), the verification key file and checkpoint signing keys.

Sealing keys evolve per epoch and the writer overwrites ``K[e]`` as soon as ``K[e+1]`` exists, so whoever steals
the log's current key cannot compute any earlier key. Entries of epoch ``e`` are tagged with
``HMAC-SHA256(M[e], entry_hash)``. Two key derivations exist (``kdf``):

* ``sha256-ratchet`` (logs of format 2, the default): ``K[e+1] = SHA-256("medfw/E" || L || be64(e+1) || K[e])``
  and ``M[e] = SHA-256("medfw/M" || L || be64(e) || K[e])`` with ``L`` the first 8 bytes of SHA-256(log id): the
  hash-chain ratchet of Schneier and Kelsey's secure audit logs. Each input is exactly one SHA-256 block (55
  bytes), so a verifier walks 100,000 per-session epochs in a few hundredths of a second.
* ``hkdf-sha256`` (logs of format 1): ``K[e+1] = HKDF-SHA256(K[e], info="medfw-audit/epoch/<log id>/<e+1>")``
  and ``M[e] = HKDF-SHA256(K[e], info="medfw-audit/mac/<log id>/<e>")``. Kept so that older logs verify.
The verifier starts from ``K[0]`` (the *verification key*, kept offline) and derives every epoch's key itself,
so it checks that each entry was sealed with the key of *its own* epoch (the systemd FSS flaw,
CVE-2023-31439, was to accept any key).

Checkpoints are signed with an asymmetric key (Ed25519 by default, ECDSA P-256 optional) kept outside the log (a
0600 key file or a ``pkcs11:`` URI, see :mod:`medfw.audit.signing`); its public part is pinned by the
verification key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from medfw.errors import AuditError

if TYPE_CHECKING:
    from medfw.audit.ckeys import (
        CheckpointPrivateKey,
        CheckpointPublicKey,
        algorithm_of,
        generate_checkpoint_key,
        key_id,
        load_checkpoint_private_key,
        load_checkpoint_public_key,
        private_pem,
        public_pem,
        sign_bytes,
        verify_signature,
    )

__all__ = [
    "CHECKPOINT_KEY_TYPES",
    "KDFS",
    "KDF_HKDF",
    "KDF_RATCHET",
    "KEY_FILE_FORMAT",
    "KEY_SIZE",
    "CheckpointPrivateKey",
    "CheckpointPublicKey",
    "EpochKeys",
    "VerificationKey",
    "algorithm_of",
    "check_kdf",
    "check_public_pem",
    "generate_checkpoint_key",
    "key_check_value",
    "key_id",
    "load_checkpoint_private_key",
    "load_checkpoint_public_key",
    "mac_key",
    "next_epoch_key",
    "private_pem",
    "public_pem",
    "seal_tag",
    "sign_bytes",
    "tag_matches",
    "verify_signature",
]

KEY_SIZE = 32
KEY_FILE_FORMAT = "medfw-audit-verification-key"
CHECKPOINT_KEY_TYPES = ("ed25519", "ecdsa-p256")
KDF_HKDF = "hkdf-sha256"
KDF_RATCHET = "sha256-ratchet"
KDFS = (KDF_HKDF, KDF_RATCHET)
RATCHET_EPOCH = b"medfw/E"
RATCHET_MAC = b"medfw/M"
#: one ratchet input: the 7-byte purpose ("medfw/E" or "medfw/M") and the 8-byte log label, be64(epoch), the key
_RATCHET_INPUT = struct.Struct(">15sQ32s")

#: names of :mod:`medfw.audit.ckeys` (the checkpoint signing keys) this module re-exports, loaded on first use:
#: sealing and verifying entries needs only SHA-256 and HMAC, not the signature code
_CKEYS = frozenset(
    {
        "CheckpointPrivateKey",
        "CheckpointPublicKey",
        "algorithm_of",
        "generate_checkpoint_key",
        "key_id",
        "load_checkpoint_private_key",
        "load_checkpoint_public_key",
        "private_pem",
        "public_pem",
        "sign_bytes",
        "verify_signature",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _CKEYS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from medfw.audit import ckeys  # noqa: PLC0415 - see _CKEYS

    value = getattr(ckeys, name)
    globals()[name] = value
    return value


def _hkdf(key: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - format 1 logs only
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=None, info=info).derive(key)


def _log_label(log_id: str) -> bytes:
    return hashlib.sha256(log_id.encode("utf-8")).digest()[:8]


def _check_key(key: bytes) -> None:
    """A sealing key is 32 bytes (the ratchet input's packing would pad or cut anything else silently)."""
    if len(key) != KEY_SIZE:
        raise AuditError(f"a sealing key must be {KEY_SIZE} bytes", field="epoch_key")


def _ratchet(prefix: bytes, epoch: int, key: bytes) -> bytes:
    """``SHA-256(purpose || L || be64(epoch) || key)``: one step of the ``sha256-ratchet`` derivation."""
    _check_key(key)
    return hashlib.sha256(_RATCHET_INPUT.pack(prefix, epoch, key)).digest()


def next_epoch_key(key: bytes, log_id: str, epoch: int, kdf: str = KDF_RATCHET) -> bytes:
    """Return ``K[epoch+1]`` from ``K[epoch]``."""
    if kdf == KDF_RATCHET:
        return _ratchet(RATCHET_EPOCH + _log_label(log_id), epoch + 1, key)
    return _hkdf(key, b"medfw-audit/epoch/%b/%d" % (log_id.encode(), epoch + 1))


def mac_key(key: bytes, log_id: str, epoch: int, kdf: str = KDF_RATCHET) -> bytes:
    """Return the HMAC key ``M[epoch]`` derived from ``K[epoch]``."""
    if kdf == KDF_RATCHET:
        return _ratchet(RATCHET_MAC + _log_label(log_id), epoch, key)
    return _hkdf(key, b"medfw-audit/mac/%b/%d" % (log_id.encode(), epoch))


def check_kdf(kdf: str, *, path: str | None = None) -> str:
    """Return ``kdf`` if it is a known key derivation.

    Raises:
        AuditError: unknown derivation.
    """
    if kdf not in KDFS:
        raise AuditError(f"unknown key derivation {kdf!r} (known: {', '.join(KDFS)})", path=path, field="kdf")
    return kdf


def seal_tag(mac: bytes, entry_hash: bytes) -> bytes:
    """Return ``HMAC-SHA256(mac, entry_hash)``, the tag stored with an entry."""
    return hmac.digest(mac, entry_hash, "sha256")


def tag_matches(mac: bytes, entry_hash: bytes, tag: bytes) -> bool:
    """True when ``tag`` is ``HMAC-SHA256(mac, entry_hash)`` (constant-time comparison)."""
    return hmac.compare_digest(hmac.digest(mac, entry_hash, "sha256"), tag)


def key_check_value(initial_key: bytes, log_id: str) -> bytes:
    """Return a value that lets a log recognise its own verification key (HMAC of a fixed label)."""
    return seal_tag(initial_key, b"medfw-audit/kcv/" + log_id.encode())


class EpochKeys:
    """Derives and caches the HMAC key of every epoch from the initial key (verifier side)."""

    def __init__(self, initial_key: bytes, log_id: str, kdf: str = KDF_RATCHET) -> None:
        if len(initial_key) != KEY_SIZE:
            raise AuditError(f"verification key must be {KEY_SIZE} bytes", field="epoch_key")
        self.log_id = log_id
        self.kdf = check_kdf(kdf)
        label = _log_label(log_id)
        self._pe, self._pm = RATCHET_EPOCH + label, RATCHET_MAC + label
        self._keys = [initial_key]
        self._macs: dict[int, bytes] = {}

    def key(self, epoch: int) -> bytes:
        """Return ``K[epoch]`` (derived once, then cached).

        Raises:
            ValueError: ``epoch`` is negative.
        """
        if epoch < 0:
            raise ValueError(f"there is no epoch {epoch}")
        keys = self._keys
        if len(keys) <= epoch:
            keys += self.walk_keys(len(keys) - 1, keys[-1], epoch)
        return keys[epoch]

    def walk(self, epoch: int, key: bytes, target: int) -> bytes:
        """Return ``K[target]`` walked forward from a known ``K[epoch]`` (``epoch <= target``), without caching.

        A worker that scans chunks of a log in increasing order goes on from where its last chunk ended instead of
        walking from the initial key again.
        """
        if target < epoch:
            raise ValueError(f"cannot walk back from epoch {epoch} to {target}")
        _check_key(key)
        if self.kdf == KDF_RATCHET:
            pack, pe, sha = _RATCHET_INPUT.pack, self._pe, hashlib.sha256
            for e in range(epoch + 1, target + 1):
                key = sha(pack(pe, e, key)).digest()
            return key
        for e in range(epoch, target):
            key = next_epoch_key(key, self.log_id, e, self.kdf)
        return key

    def walk_keys(self, epoch: int, key: bytes, last: int) -> list[bytes]:
        """Return ``[K[epoch+1], ..., K[last]]`` walked forward from ``K[epoch]`` (not cached)."""
        _check_key(key)
        out: list[bytes] = []
        add = out.append
        if self.kdf == KDF_RATCHET:
            # 100,000 one-event sessions are 100,000 epochs: one SHA-256 block each, in a loop of its own
            pack, pe, sha = _RATCHET_INPUT.pack, self._pe, hashlib.sha256
            for e in range(epoch + 1, last + 1):
                key = sha(pack(pe, e, key)).digest()
                add(key)
            return out
        for e in range(epoch, last):
            key = next_epoch_key(key, self.log_id, e, self.kdf)
            add(key)
        return out

    def macs_of(self, first: int, keys: list[bytes]) -> list[bytes]:
        """Return ``[M[first], M[first+1], ...]`` from ``keys = [K[first], K[first+1], ...]`` (not cached)."""
        if self.kdf == KDF_RATCHET:
            pack, pm, sha = _RATCHET_INPUT.pack, self._pm, hashlib.sha256
            return [sha(pack(pm, e, k)).digest() for e, k in enumerate(keys, first)]
        return [mac_key(k, self.log_id, e, self.kdf) for e, k in enumerate(keys, first)]

    def mac(self, epoch: int) -> bytes:
        """Return ``M[epoch]``.

        Raises:
            ValueError: ``epoch`` is negative (no such key exists; a record claiming it is never genuine).
        """
        cached = self._macs.get(epoch)
        if cached is None:
            cached = self._macs[epoch] = self.mac_of(epoch, self.key(epoch))
        return cached

    def mac_of(self, epoch: int, key: bytes) -> bytes:
        """Return ``M[epoch]`` from ``K[epoch]`` (not cached)."""
        if epoch < 0:
            raise ValueError(f"there is no epoch {epoch}")
        _check_key(key)
        return self.macs_of(epoch, [key])[0]


_PEM = re.compile(rb"\A-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\r?\n?\Z")
#: the fixed DER SubjectPublicKeyInfo prefix of an Ed25519 public key (RFC 8410), followed by the 32-byte key
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
#: the fixed DER SubjectPublicKeyInfo prefixes of the two checkpoint key types, and the key length after each
_SPKI = (
    (ED25519_SPKI_PREFIX, 32),
    (bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"), 65),  # ECDSA P-256, uncompressed point
    (bytes.fromhex("3039301306072a8648ce3d020106082a8648ce3d030107032200"), 33),  # ECDSA P-256, compressed point
)


def public_key_der(pem: bytes) -> bytes | None:
    """The DER SubjectPublicKeyInfo inside ``pem`` when it is an Ed25519 or ECDSA P-256 public key with exactly
    the layout those have, else None. A structural check that needs no signature code."""
    m = _PEM.match(pem)
    try:
        der = binascii.a2b_base64(m.group(1)) if m else b""
    except binascii.Error:
        return None
    return der if any(der.startswith(prefix) and len(der) == len(prefix) + n for prefix, n in _SPKI) else None


def check_public_pem(pem: bytes, *, path: str | None = None) -> bytes:
    """Return ``pem`` if it is the PEM form of an Ed25519 or ECDSA P-256 public key (by its exact DER layout).

    The point itself is validated when the key is loaded (:func:`medfw.audit.ckeys.load_checkpoint_public_key`)
    to check a signature.

    Raises:
        AuditError: anything else.
    """
    if public_key_der(pem) is None:
        raise AuditError(
            "checkpoint public key is not an Ed25519 or ECDSA P-256 public key in PEM form",
            path=path,
            field="checkpoint_public_key",
        )
    return pem


class VerificationKey(NamedTuple):
    """What the verifier keeps offline: the log id, the initial sealing key, the pinned checkpoint public key and
    the log's key derivation.

    A named tuple, not a dataclass: every ``medfw audit verify`` loads it before its scan can start, and
    :mod:`dataclasses` loads :mod:`inspect` (about 10 ms).
    """

    log_id: str
    initial_key: bytes
    checkpoint_public_key_pem: bytes
    kdf: str = KDF_HKDF

    def to_bytes(self) -> bytes:
        """Serialise as the JSON key file written by ``medfw audit init --key-out``."""
        doc: dict[str, Any] = {
            "format": KEY_FILE_FORMAT,
            "version": 1 if self.kdf == KDF_HKDF else 2,
            "log_id": self.log_id,
            "epoch_key": base64.b64encode(self.initial_key).decode("ascii"),
            "checkpoint_public_key": self.checkpoint_public_key_pem.decode("ascii"),
        }
        if self.kdf != KDF_HKDF:
            doc["kdf"] = self.kdf
        return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | None = None) -> VerificationKey:
        """Parse a key file (version 1: HKDF logs; version 2 names its ``kdf``).

        Raises:
            AuditError: the data is not a medfw audit verification key.
        """
        try:
            doc: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AuditError("not a medfw audit verification key (not JSON)", path=path) from None
        if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
            raise AuditError("not a medfw audit verification key", path=path, field="format")
        version = doc.get("version")
        if version not in (1, 2) or isinstance(version, bool):
            raise AuditError(f"unsupported key file version {version!r}", path=path, field="version")
        kdf = KDF_HKDF if version == 1 else check_kdf(str(doc.get("kdf")), path=path)
        log_id, ek, pub = doc.get("log_id"), doc.get("epoch_key"), doc.get("checkpoint_public_key")
        if not isinstance(log_id, str) or not log_id:
            raise AuditError("key file has no log_id", path=path, field="log_id")
        try:
            initial = base64.b64decode(str(ek), validate=True)
        except ValueError:
            raise AuditError("epoch_key is not base64", path=path, field="epoch_key") from None
        if len(initial) != KEY_SIZE:
            raise AuditError(f"epoch_key must be {KEY_SIZE} bytes", path=path, field="epoch_key")
        if not isinstance(pub, str):
            raise AuditError("key file has no checkpoint_public_key", path=path, field="checkpoint_public_key")
        check_public_pem(pub.encode("ascii", "replace"), path=path)
        return cls(log_id=log_id, initial_key=initial, checkpoint_public_key_pem=pub.encode("ascii"), kdf=kdf)

    def public_key(self) -> CheckpointPublicKey:
        """Return the pinned checkpoint public key."""
        from medfw.audit.ckeys import load_checkpoint_public_key  # noqa: PLC0415 - see _CKEYS

        return load_checkpoint_public_key(self.checkpoint_public_key_pem)
