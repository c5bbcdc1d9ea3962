"""Export bundles: selected entries + a fresh signed checkpoint + RFC 9162 inclusion proofs, verifiable offline.

A bundle is one JSON document::

    {"format": "medfw-audit-bundle", "version": 1, "log_id": ...,
     "checkpoint": {signed checkpoint document},
     "entries": [{"seq": N, "record": "<canonical record text>", "tag": "<hex>", "proof": ["<hex>", ...]}]}

:func:`verify_bundle` checks the checkpoint signature (with a pinned public key, or the embedded one, which
only proves internal consistency), that each record is canonical and has the seq it is filed under, that each
inclusion proof leads from ``SHA-256(0x00 || record)`` to the checkpoint root and, with the
verification key, each entry's HMAC tag under its own epoch key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medfw._io import atomic_write
from medfw.audit.checkpoint import Checkpoint, SignedCheckpoint
from medfw.audit.ckeys import CheckpointPublicKey, load_checkpoint_public_key
from medfw.audit.keys import EpochKeys, VerificationKey, tag_matches
from medfw.audit.log import open_log
from medfw.audit.merkle import MerkleTree, verify_inclusion
from medfw.audit.record import entry_hash, parse_record
from medfw.audit.store import open_store, storage_errors
from medfw.errors import AuditError, SignatureError, VerificationError

__all__ = ["BUNDLE_FORMAT", "BundleReport", "build_bundle", "export_bundle", "verify_bundle"]

BUNDLE_FORMAT = "medfw-audit-bundle"


def build_bundle(
    rows: Sequence[tuple[bytes, bytes]], signed: SignedCheckpoint, seqs: Sequence[int] | None = None
) -> dict[str, Any]:
    """Build a bundle document from the log's rows and a checkpoint covering them (pure).

    Raises:
        AuditError: a requested seq is not covered by the checkpoint.
    """
    cp = signed.checkpoint
    if cp.size > len(rows):
        raise AuditError(f"checkpoint covers {cp.size} entries but only {len(rows)} are stored", field="size")
    tree = MerkleTree([entry_hash(rec) for rec, _ in rows[: cp.size]])
    wanted = list(range(cp.size)) if seqs is None else sorted(set(seqs))
    entries = []
    for s in wanted:
        if not 0 <= s < cp.size:
            raise AuditError(f"seq {s} is not in the log (size {cp.size})", field="seq")
        rec, tag = rows[s]
        entries.append(
            {
                "seq": s,
                "record": rec.decode("utf-8"),
                "tag": tag.hex(),
                "proof": [p.hex() for p in tree.inclusion_proof(s, cp.size)],
            }
        )
    return {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "log_id": cp.log_id,
        "checkpoint": signed.to_dict(),
        "entries": entries,
    }


def export_bundle(
    path: str | Path, out: str | Path | None = None, *, seqs: Sequence[int] | None = None
) -> dict[str, Any]:
    """Make an ``export`` checkpoint on the log at ``path`` and return (and write to ``out``) a bundle.

    Raises:
        AuditError: not a log, or a requested seq is not in it.
    """
    with open_log(path) as log:
        signed = log.checkpoint("export")
    with storage_errors(path):
        store = open_store(path)
        try:
            rows = list(store.iter_entries())
        finally:
            store.close()
    doc = build_bundle(rows, signed, seqs)
    if out is not None:
        atomic_write(out, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return doc


@dataclass(frozen=True)
class BundleReport:
    """The outcome of :func:`verify_bundle`."""

    ok: bool
    log_id: str
    checkpoint_size: int
    entries: int
    key_pinned: bool
    hmac_checked: bool
    errors: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = asdict(self)
        d["errors"] = list(self.errors)
        return d


def verify_bundle(
    data: bytes | dict[str, Any],
    *,
    key: VerificationKey | None = None,
    public_key_pem: bytes | None = None,
    path: str | None = None,
) -> BundleReport:
    """Verify a bundle offline. Non-raising for verification failures (see :class:`BundleReport`).

    Args:
        data: the bundle file's bytes or parsed document.
        key: the verification key: pins the checkpoint key and enables HMAC checks.
        public_key_pem: a pinned checkpoint public key when no verification key is given.
        path: the bundle's path, for error messages.

    Raises:
        AuditError: the bundle is malformed, or belongs to another log than ``key``.
    """
    if isinstance(data, bytes):
        try:
            doc: Any = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise AuditError("bundle is not JSON", path=path) from None
    else:
        doc = data
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT or doc.get("version") != 1:
        raise AuditError("not a medfw audit bundle", path=path, field="format")
    signed = SignedCheckpoint.from_dict(doc.get("checkpoint"), path=path)
    cp = signed.checkpoint
    if doc.get("log_id") != cp.log_id:
        raise AuditError("bundle log_id differs from its checkpoint's", path=path, field="log_id")
    if key is not None and key.log_id != cp.log_id:
        raise AuditError(f"bundle is from log {cp.log_id!r}, the key is for {key.log_id!r}", path=path, field="log_id")
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise AuditError("bundle has no entries list", path=path, field="entries")
    pinned: CheckpointPublicKey | None = None
    if key is not None:
        pinned = key.public_key()
    elif public_key_pem is not None:
        pinned = load_checkpoint_public_key(public_key_pem)
    errors: list[str] = []
    try:
        signed.verify(pinned)
    except (SignatureError, AuditError) as e:
        errors.append(f"checkpoint: {e.message}")
    keys = EpochKeys(key.initial_key, key.log_id, key.kdf) if key is not None else None
    for i, item in enumerate(entries):
        errors += _check_entry(i, item, cp, keys, path)
    return BundleReport(
        ok=not errors,
        log_id=cp.log_id,
        checkpoint_size=cp.size,
        entries=len(entries),
        key_pinned=pinned is not None,
        hmac_checked=keys is not None,
        errors=tuple(errors),
    )


def _check_entry(i: int, item: Any, cp: Checkpoint, keys: EpochKeys | None, path: str | None) -> list[str]:
    """Check one bundle entry against the checkpoint (and its HMAC tag, with the keys); return what failed.

    Raises:
        AuditError: the entry is malformed.
    """
    if not isinstance(item, dict):
        raise AuditError(f"entry {i} is not an object", path=path, field=f"entries[{i}]")
    try:
        seq = int(item["seq"])
        rec = str(item["record"]).encode("utf-8")
        tag = bytes.fromhex(str(item["tag"]))
        proof = [bytes.fromhex(str(p)) for p in item["proof"]]
    except (KeyError, ValueError, TypeError) as e:
        raise AuditError(f"entry {i} is malformed: {e}", path=path, field=f"entries[{i}]") from None
    try:
        parsed = parse_record(rec)
    except AuditError as e:
        return [f"seq {seq}: {e.message}"]
    if parsed.seq != seq:
        return [f"entry filed as seq {seq} is seq {parsed.seq}"]
    errors: list[str] = []
    eh = entry_hash(rec)
    try:
        verify_inclusion(seq, cp.size, eh, proof, cp.root)
    except VerificationError as e:
        errors.append(f"seq {seq}: inclusion proof: {e.message}")
    if keys is not None and not tag_matches(keys.mac(parsed.epoch), eh, tag):
        errors.append(f"seq {seq}: HMAC tag does not match under the key of epoch {parsed.epoch}")
    return errors
