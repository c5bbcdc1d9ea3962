"""Read-only views of a log: list entries (``show``) and produce Merkle proofs (``prove``).

Nothing here verifies HMAC tags: these are views of what is stored. Use :func:`medfw.audit.verify_log` to
establish that the log is intact, and the proofs against a signed checkpoint to convince a third party.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from medfw.audit.merkle import MerkleTree
from medfw.audit.record import Record, entry_hash, parse_record
from medfw.audit.store import open_store, storage_errors
from medfw.errors import AuditError

__all__ = ["ProofResult", "count_rows", "list_entries", "prove", "read_rows"]


def _parse_ts(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def list_entries(path: str | Path, *, type_: str | None = None, since: datetime | None = None) -> list[Record]:
    """Return the log's entries, optionally only one event type and only at or after ``since`` (UTC-aware).

    Raises:
        AuditError: not a log, or a stored record is not a canonical record (names its position).
    """
    with storage_errors(path):
        return _list(path, type_, since)


def read_rows(path: str | Path, start: int = 0, limit: int | None = None) -> list[tuple[bytes, bytes]]:
    """Return the stored ``(record, tag)`` rows from position ``start``, at most ``limit`` of them (unverified).

    Raises:
        AuditError: not a log.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            rows: list[tuple[bytes, bytes]] = []
            hi = None if limit is None else start + limit
            for chunk in store.iter_chunks(start, hi):
                rows.extend(chunk)
            return rows
        finally:
            store.close()


def count_rows(path: str | Path) -> int:
    """Return how many entries the log holds (stored rows, whatever its writer state says).

    Raises:
        AuditError: not a log.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            return store.count()
        finally:
            store.close()


def _list(path: str | Path, type_: str | None, since: datetime | None) -> list[Record]:
    store = open_store(path)
    try:
        out: list[Record] = []
        for pos, (rec, _tag) in enumerate(store.iter_entries()):
            try:
                r = parse_record(rec)
            except AuditError as e:
                raise AuditError(f"entry at position {pos} is unreadable: {e.message}", path=store.label) from None
            if type_ is not None and r.type != type_:
                continue
            if since is not None:
                ts = _parse_ts(r.ts)
                if ts is None or ts < since:
                    continue
            out.append(r)
        return out
    finally:
        store.close()


@dataclass(frozen=True)
class ProofResult:
    """An inclusion proof for one entry, and optionally a consistency proof between two tree sizes."""

    log_id: str
    seq: int
    size: int
    record: str
    leaf_hash: bytes
    root: bytes
    inclusion: list[bytes]
    from_size: int | None
    from_root: bytes | None
    consistency: list[bytes] | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (hashes in hex)."""
        return {
            "log_id": self.log_id,
            "seq": self.seq,
            "size": self.size,
            "record": self.record,
            "leaf_hash": self.leaf_hash.hex(),
            "root": self.root.hex(),
            "inclusion_proof": [p.hex() for p in self.inclusion],
            "from_size": self.from_size,
            "from_root": self.from_root.hex() if self.from_root is not None else None,
            "consistency_proof": [p.hex() for p in self.consistency] if self.consistency is not None else None,
        }


def prove(path: str | Path, seq: int, *, size: int | None = None, from_size: int | None = None) -> ProofResult:
    """Return the inclusion proof of ``seq`` in the tree of the first ``size`` entries (default: all).

    With ``from_size``, also the consistency proof from that size to ``size``.

    Raises:
        AuditError: not a log, or the seq/sizes are outside the log.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            log_id = (store.get_meta("log_id") or b"").decode("utf-8", "replace")
            records = [rec for rec, _ in store.iter_entries()]
        finally:
            store.close()
    n = len(records) if size is None else size
    if not 0 < n <= len(records):
        raise AuditError(f"tree size {n} is outside 1..{len(records)}", field="against")
    if not 0 <= seq < n:
        raise AuditError(f"seq {seq} is not in a tree of size {n}", field="seq")
    if from_size is not None and not 0 < from_size <= n:
        raise AuditError(f"from size {from_size} is outside 1..{n}", field="from_size")
    tree = MerkleTree([entry_hash(r) for r in records[:n]])
    return ProofResult(
        log_id=log_id,
        seq=seq,
        size=n,
        record=records[seq].decode("utf-8", "replace"),
        leaf_hash=entry_hash(records[seq]),
        root=tree.root(),
        inclusion=tree.inclusion_proof(seq, n),
        from_size=from_size,
        from_root=tree.root(from_size) if from_size is not None else None,
        consistency=tree.consistency_proof(from_size, n) if from_size is not None else None,
    )
