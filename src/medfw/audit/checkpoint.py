"""Signed checkpoints: ``{log id, size, root, last seq, epoch, boot id, time}`` signed with the log's key.

The signed message is the RFC 8785 canonical form of the checkpoint body, so it can be re-derived from the
JSON document. A checkpoint commits to the RFC 9162 Merkle root of the first ``size`` entries; a verifier
that holds an earlier checkpoint detects a log that was truncated (fewer entries), rolled back and
re-appended, or forked (different root at the same size).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import rfc8785

from medfw.audit.ckeys import (
    algorithm_of,
    is_checkpoint_private_key,
    key_id,
    load_checkpoint_public_key,
    public_pem,
    sign_bytes,
    verify_signature,
)
from medfw.errors import AuditError, SignatureError

if TYPE_CHECKING:
    from medfw.audit.ckeys import CheckpointPrivateKey, CheckpointPublicKey

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "SignedCheckpoint", "sign_checkpoint"]

CHECKPOINT_FORMAT = "medfw-audit-checkpoint"


class Checkpoint(NamedTuple):
    """The state of a log at one moment.

    Attributes:
        log_id: the log this checkpoint belongs to.
        size: number of entries covered (seqs ``0 .. size-1``).
        root: RFC 9162 Merkle root over the entries' hashes.
        last_seq: ``size - 1`` (``-1`` for an empty log).
        epoch: the sealing-key epoch of the last entry.
        boot_id: the writer's boot/session id when the checkpoint was made.
        time: UTC time of signing (RFC 3339).
        reason: why it was made (``interval``, ``close``, ``request``, ``export``, ``pre-update``, …).
    """

    log_id: str
    size: int
    root: bytes
    last_seq: int
    epoch: int
    boot_id: str
    time: str
    reason: str

    def body(self) -> dict[str, Any]:
        """Return the JSON body that is signed."""
        return {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            "log_id": self.log_id,
            "size": self.size,
            "root": self.root.hex(),
            "last_seq": self.last_seq,
            "epoch": self.epoch,
            "boot_id": self.boot_id,
            "time": self.time,
            "reason": self.reason,
        }

    def signed_bytes(self) -> bytes:
        """Return the canonical bytes the signature covers."""
        data: bytes = rfc8785.dumps(self.body())
        return data

    @classmethod
    def from_body(cls, body: Any, *, path: str | None = None) -> Checkpoint:
        """Parse a checkpoint body.

        Raises:
            AuditError: missing or mistyped fields.
        """
        if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT or body.get("version") != 1:
            raise AuditError("not a medfw audit checkpoint", path=path, field="checkpoint")
        try:
            root = bytes.fromhex(str(body["root"]))
            cp = cls(
                log_id=str(body["log_id"]),
                size=body["size"],
                root=root,
                last_seq=body["last_seq"],
                epoch=body["epoch"],
                boot_id=str(body["boot_id"]),
                time=str(body["time"]),
                reason=str(body["reason"]),
            )
        except (KeyError, ValueError) as e:
            raise AuditError(f"checkpoint field missing or malformed: {e}", path=path, field="checkpoint") from e
        for name in ("size", "last_seq", "epoch"):
            v = getattr(cp, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise AuditError(f"checkpoint {name} is not an integer", path=path, field=name)
        if cp.size < 0 or cp.last_seq != cp.size - 1 or len(root) != 32:
            raise AuditError("checkpoint size, last_seq or root is inconsistent", path=path, field="size")
        return cp


class SignedCheckpoint(NamedTuple):
    """A checkpoint with its signature and the (unpinned) public key that made it.

    Named tuples, not dataclasses, here and in the verifier's other types: :mod:`dataclasses` loads :mod:`inspect`,
    about 10 ms of every ``medfw audit verify``.
    """

    checkpoint: Checkpoint
    algorithm: str
    key_id: str
    signature: bytes
    public_key_pem: bytes

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document form (as written by ``medfw audit checkpoint --out``)."""
        return {
            "checkpoint": self.checkpoint.body(),
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "public_key": self.public_key_pem.decode("ascii"),
        }

    def to_bytes(self) -> bytes:
        """Return the JSON document as bytes."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, doc: Any, *, path: str | None = None) -> SignedCheckpoint:
        """Parse a checkpoint document (does not verify the signature).

        Raises:
            AuditError: the document is malformed.
        """
        if not isinstance(doc, dict):
            raise AuditError("not a medfw audit checkpoint document", path=path)
        cp = Checkpoint.from_body(doc.get("checkpoint"), path=path)
        try:
            sig = base64.b64decode(str(doc["signature"]), validate=True)
            pem = str(doc["public_key"]).encode("ascii")
            alg, kid = str(doc["algorithm"]), str(doc["key_id"])
        except (KeyError, ValueError) as e:
            raise AuditError(f"checkpoint signature fields malformed: {e}", path=path, field="signature") from e
        return cls(checkpoint=cp, algorithm=alg, key_id=kid, signature=sig, public_key_pem=pem)

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | None = None) -> SignedCheckpoint:
        """Parse a checkpoint file.

        Raises:
            AuditError: not JSON or not a checkpoint.
        """
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AuditError("checkpoint file is not JSON", path=path) from None
        return cls.from_dict(doc, path=path)

    def verify(self, public_key: CheckpointPublicKey | None = None) -> None:
        """Verify the signature with ``public_key`` (pinned), or with the embedded key when it is None.

        Raises:
            SignatureError: the signature does not verify, or it was made by another key than the pinned one.
        """
        embedded = load_checkpoint_public_key(self.public_key_pem, path=None)
        key = public_key if public_key is not None else embedded
        if key_id(key) != self.key_id:
            raise SignatureError("checkpoint was signed by another key than the trusted one", field="key_id")
        verify_signature(key, self.signature, self.checkpoint.signed_bytes())


class _Signs(Protocol):
    public_key: CheckpointPublicKey

    def sign(self, message: bytes) -> bytes: ...


def sign_checkpoint(checkpoint: Checkpoint, key: CheckpointPrivateKey | _Signs) -> SignedCheckpoint:
    """Sign ``checkpoint`` with a private key or a :class:`medfw.audit.signing.CheckpointSigner`."""
    if is_checkpoint_private_key(key):
        pub = key.public_key()
        signature = sign_bytes(key, checkpoint.signed_bytes())
    else:
        signer = cast("_Signs", key)
        pub = signer.public_key
        signature = signer.sign(checkpoint.signed_bytes())
    return SignedCheckpoint(
        checkpoint=checkpoint,
        algorithm=algorithm_of(pub),
        key_id=key_id(pub),
        signature=signature,
        public_key_pem=public_pem(pub),
    )
