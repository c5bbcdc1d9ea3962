"""Tamper-evident audit trail: hash-chained, HMAC-sealed with forward-secure epoch keys, RFC 9162 Merkle proofs
and signed checkpoints.

Producers only need :class:`AuditEvent` and an :class:`AuditSink` (:func:`open_log` returns one).
"""

from __future__ import annotations

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
from medfw.audit.sink import AuditEvent, AuditSink, MemorySink, NullSink
from medfw.audit.verify import CLASSIFICATIONS, VerifyReport, verify_log
from medfw.audit.vocabulary import EVENT_TYPES, OUTCOMES

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
    "export_bundle",
    "inclusion_proof",
    "init_log",
    "open_log",
    "root_from_inclusion_proof",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]


def inclusion_proof(leaf_hashes: list[bytes], index: int, size: int | None = None) -> list[bytes]:
    """Return the RFC 9162 inclusion proof of leaf ``index`` in the tree of the first ``size`` leaf hashes."""
    return MerkleTree(leaf_hashes[: len(leaf_hashes) if size is None else size]).inclusion_proof(index, size)


def consistency_proof(leaf_hashes: list[bytes], size1: int, size2: int | None = None) -> list[bytes]:
    """Return the RFC 9162 consistency proof between the trees of the first ``size1`` and ``size2`` leaves."""
    return MerkleTree(leaf_hashes[: len(leaf_hashes) if size2 is None else size2]).consistency_proof(size1, size2)
