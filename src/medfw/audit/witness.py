"""Witnessed checkpoints: copies of signed checkpoints held outside the log, so truncation and forks show.

A *witness* holds the latest checkpoint of a log: a file (``medfw audit checkpoint --export FILE``) or the fleet
server (``--post URL``), which keeps one checkpoint per log id and accepts a new one only when it is signed by
the key pinned at the first post and an RFC 9162 consistency proof shows that it extends the one it holds
(:func:`check_extension`, which the server runs). ``medfw audit verify --witness FILE|URL`` then checks the log
against what the witness holds: a log shorter than the witnessed size was truncated, a log whose first ``size``
entries have another root was forked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from medfw._io import read_bytes
from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.ckeys import CheckpointPublicKey
from medfw.audit.merkle import MerkleTree, verify_consistency
from medfw.audit.record import entry_hash
from medfw.audit.store import open_store, storage_errors
from medfw.errors import (
    AuditError,
    PolicyViolationError,
    TransportError,
    UsageError,
    VerificationError,
)

__all__ = [
    "WITNESS_API",
    "check_extension",
    "consistency_proof_for",
    "fetch_witness",
    "load_witness",
    "post_checkpoint",
    "witness_url",
]

WITNESS_API = "/api/v1/audit/witness/"
_MAX_DOC = 1024 * 1024


def witness_url(server: str, log_id: str) -> str:
    """The witness endpoint of ``log_id`` on a fleet server (``server`` is its base URL or the full endpoint).

    Raises:
        UsageError: not an http(s) URL.
    """
    if not server.startswith(("http://", "https://")):
        raise UsageError("witness URL must start with http:// or https://", field="witness")
    if WITNESS_API in urlsplit(server).path:
        return server
    return server.rstrip("/") + WITNESS_API + quote(log_id, safe="")


def check_extension(
    held: SignedCheckpoint | None, new: SignedCheckpoint, proof: list[bytes], pinned: CheckpointPublicKey
) -> None:
    """Accept ``new`` only if the pinned key signed it and it extends ``held`` (the witness's rule).

    Raises:
        SignatureError: ``new`` is not signed by the pinned key.
        VerificationError: ``new`` is smaller than ``held`` (rollback), the same size with another root (fork),
            or the consistency proof does not show that it extends ``held``.
    """
    new.verify(pinned)
    if held is None:
        return
    a, b = held.checkpoint, new.checkpoint
    if a.log_id != b.log_id:
        raise VerificationError(f"checkpoint is for log {b.log_id!r}, the witness holds {a.log_id!r}", field="log_id")
    if b.size < a.size:
        raise VerificationError(
            f"checkpoint of size {b.size} is older than the witnessed size {a.size} (rollback or truncation)",
            field="size",
        )
    if b.size == a.size:
        if b.root != a.root:
            raise VerificationError(
                f"fork: the witness holds another root for size {a.size} ({a.root.hex()[:16]}…)", field="root"
            )
        return
    if a.size == 0:
        return
    verify_consistency(a.size, b.size, proof, a.root, b.root)


def consistency_proof_for(path: str | Path, size1: int, size2: int) -> list[bytes]:
    """The RFC 9162 consistency proof between the first ``size1`` and ``size2`` entries of the log at ``path``.

    Raises:
        AuditError: the log has fewer than ``size2`` entries, or ``size1`` is out of range.
    """
    if size1 in {0, size2}:
        return []
    with storage_errors(path):
        store = open_store(path)
        try:
            hashes = [entry_hash(rec) for rec, _ in store.iter_entries()][:size2]
        finally:
            store.close()
    if len(hashes) < size2 or not 0 < size1 <= size2:
        raise AuditError(f"cannot prove consistency from size {size1} to {size2}", path=str(path), field="size")
    return MerkleTree(hashes).consistency_proof(size1, size2)


@contextlib.contextmanager
def _client(timeout: float, client: Any) -> Iterator[Any]:
    """The given ``httpx.Client`` (left open), or a new one for this call."""
    if client is not None:
        yield client
        return
    import httpx  # noqa: PLC0415 - only witnesses over HTTP need it

    with httpx.Client(timeout=timeout) as c:
        yield c


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _answer(r: Any, url: str) -> Any:
    if r.status_code in (401, 403):
        raise PolicyViolationError(f"the witness refused the credential ({r.status_code})", path=url)
    try:
        doc = r.json()
    except ValueError:
        doc = None
    detail = doc.get("detail") if isinstance(doc, dict) else None
    if r.status_code == 409:
        raise VerificationError(f"the witness refused the checkpoint: {detail or r.text[:200]}", path=url)
    if r.status_code >= 400:
        raise AuditError(f"the witness answered {r.status_code}: {detail or r.text[:200]}", path=url)
    return doc


def fetch_witness(
    url: str, *, token: str | None = None, timeout: float = 30.0, client: Any = None
) -> SignedCheckpoint | None:
    """The checkpoint a fleet-server witness holds at ``url`` (None when it holds none).

    Raises:
        TransportError: the server cannot be reached.
        AuditError: the answer is not a checkpoint.
    """
    import httpx  # noqa: PLC0415 - only witnesses over HTTP need it

    with _client(timeout, client) as c:
        try:
            r = c.get(url, headers=_headers(token))
        except httpx.HTTPError as e:
            raise TransportError(f"cannot reach the witness: {e}", path=url) from None
    if r.status_code == 404:
        return None
    doc = _answer(r, url)
    if not isinstance(doc, dict):
        raise AuditError("the witness answered something that is not a checkpoint", path=url)
    return SignedCheckpoint.from_dict(doc.get("checkpoint", doc), path=url)


def load_witness(source: str, *, log_id: str, token: str | None = None, client: Any = None) -> SignedCheckpoint:
    """A witnessed checkpoint from a file or a fleet-server URL.

    Raises:
        AuditError: the witness holds no checkpoint of ``log_id``, or the file is not a checkpoint.
    """
    if source.startswith(("http://", "https://")):
        url = witness_url(source, log_id)
        signed = fetch_witness(url, token=token, client=client)
        if signed is None:
            raise AuditError(f"the witness holds no checkpoint of log {log_id!r}", path=url)
        return signed
    return SignedCheckpoint.from_bytes(read_bytes(source, max_length=_MAX_DOC, what="checkpoint"), path=source)


def post_checkpoint(
    path: str | Path,
    server: str,
    signed: SignedCheckpoint,
    *,
    token: str | None = None,
    timeout: float = 30.0,
    client: Any = None,
) -> dict[str, Any]:
    """Hand ``signed`` to the fleet-server witness, with the consistency proof from what the witness holds.

    Returns the witness's answer (``{"log_id", "size", "root", "previous_size"}``).

    Raises:
        TransportError: the server cannot be reached.
        VerificationError: the witness refused the checkpoint (not an extension of the one it holds).
        PolicyViolationError: the token was refused.
    """
    import httpx  # noqa: PLC0415

    url = witness_url(server, signed.checkpoint.log_id)
    held = fetch_witness(url, token=token, timeout=timeout, client=client)
    from_size = held.checkpoint.size if held is not None else 0
    if held is not None and from_size > signed.checkpoint.size:
        raise VerificationError(
            f"the witness holds size {from_size}, more than this log's checkpoint ({signed.checkpoint.size}): "
            "the log was truncated or rolled back",
            path=url,
        )
    proof = consistency_proof_for(path, from_size, signed.checkpoint.size) if held is not None else []
    body = {"checkpoint": signed.to_dict(), "from_size": from_size, "consistency": [p.hex() for p in proof]}
    with _client(timeout, client) as c:
        try:
            r = c.post(url, json=body, headers=_headers(token))
        except httpx.HTTPError as e:
            raise TransportError(f"cannot reach the witness: {e}", path=url) from None
    doc = _answer(r, url)
    return doc if isinstance(doc, dict) else {}
