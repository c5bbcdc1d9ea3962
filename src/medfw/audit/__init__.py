"""Tamper-evident audit trail: hash-chained, HMAC-sealed with forward-secure epoch keys, RFC 9162 Merkle proofs
and signed checkpoints.

Producers only need :class:`AuditEvent` and an :class:`AuditSink` (:func:`open_log` returns one).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfw.audit.bundle import BundleReport, export_bundle, verify_bundle
    from medfw.audit.checkpoint import Checkpoint, SignedCheckpoint
    from medfw.audit.keys import VerificationKey
    from medfw.audit.log import AuditLog, InitResult, SealedEntry, checkpoint, init_log, open_log
    from medfw.audit.merkle import (
        MerkleTree,
        root_from_inclusion_proof,
        verify_consistency,
        verify_inclusion,
    )
    from medfw.audit.query import count_rows, read_rows
    from medfw.audit.report import CLASSIFICATIONS, VerifyReport
    from medfw.audit.sink import AuditEvent, AuditSink, MemorySink, NullSink
    from medfw.audit.verify import verify_log
    from medfw.audit.vocabulary import EVENT_TYPES, OUTCOMES

# Every name is imported on first use: producers load only the sink interface, the log machinery (cryptography,
# SQLAlchemy for PostgreSQL stores) only when a log is opened, and the verifier neither.
_LAZY: dict[str, str] = {
    "AuditEvent": "sink",
    "AuditSink": "sink",
    "MemorySink": "sink",
    "NullSink": "sink",
    "BundleReport": "bundle",
    "export_bundle": "bundle",
    "verify_bundle": "bundle",
    "Checkpoint": "checkpoint",
    "SignedCheckpoint": "checkpoint",
    "VerificationKey": "keys",
    "AuditLog": "log",
    "InitResult": "log",
    "SealedEntry": "log",
    "checkpoint": "log",
    "init_log": "log",
    "open_log": "log",
    "MerkleTree": "merkle",
    "root_from_inclusion_proof": "merkle",
    "read_rows": "query",
    "count_rows": "query",
    "verify_consistency": "merkle",
    "verify_inclusion": "merkle",
    "CLASSIFICATIONS": "report",
    "VerifyReport": "report",
    "verify_log": "verify",
    "EVENT_TYPES": "vocabulary",
    "OUTCOMES": "vocabulary",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medfw.audit.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CLASSIFICATIONS",
    "EVENT_TYPES",
    "OUTCOMES",
    "AuditEvent",
    "AuditLog",
    "AuditSink",
    "BundleReport",
    "Checkpoint",
    "InitResult",
    "MemorySink",
    "MerkleTree",
    "NullSink",
    "SealedEntry",
    "SignedCheckpoint",
    "VerificationKey",
    "VerifyReport",
    "checkpoint",
    "consistency_proof",
    "count_rows",
    "export_bundle",
    "inclusion_proof",
    "init_log",
    "open_log",
    "read_rows",
    "root_from_inclusion_proof",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]


def inclusion_proof(leaf_hashes: list[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``size`` leaf hashes."""
    from medfw.audit.merkle import MerkleTree  # noqa: PLC0415 - lazy, see _LAZY

    return MerkleTree(leaf_hashes[: len(leaf_hashes) if size is None else size]).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: list[bytes], size1: int, size2: int | None = None) -> list[bytes]:
    """Return the RFC 9162 consistency proof between the trees of the first ``size1`` and ``size2`` leaves."""
    from medfw.audit.merkle import MerkleTree  # noqa: PLC0415 - lazy, see _LAZY

    return MerkleTree(leaf_hashes[: len(leaf_hashes) if size2 is None else size2]).consistency_proof(size1, size2)
