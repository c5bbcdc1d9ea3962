"""Collecting a unit's own audit trail: the batch the agent uploads, and the server's check that it continues the
chain it already holds.

An upload is ``{"entries": [{"seq", "record", "tag"}…], "checkpoint": <claims JWS>}``. The checkpoint is signed by
the unit's identity key (kind ``audit``) and says ``first``, ``count``, ``head`` (the entry hash of the batch's last
entry) and ``log_size`` (how many entries the unit's log holds now). The server accepts a batch only when

* every entry is a canonical :mod:`medfw.audit` record with the seq it is filed under (``malformed``);
* it starts at or before the next seq the server expects (``gap`` otherwise); entries the server already holds
  must be byte-identical (a resend is skipped, so uploads are resumable), a different record at a stored seq is a
  ``fork``;
* each new record's ``prev`` is the hash of the one before (``chain_broken``), epochs never go back
  (``epoch_rewind``), and its HMAC tag verifies under *its own* epoch key, derived from the unit's provisioning key
  (``bad_seal``: a re-sealed or forged entry);
* the unit's log is not shorter than what the server already holds (``rewind``: the log was truncated or rolled
  back in the field), and the signed checkpoint matches the batch (``checkpoint_mismatch``).

Nothing of a refused batch is stored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medfw.audit.keys import EpochKeys, tag_matches
from medfw.audit.record import GENESIS_PREV, entry_hash, parse_record
from medfw.errors import AuditError
from medfw.identity.errors import TrailRejectedError

__all__ = ["MAX_BATCH", "MAX_RECORD", "NewEntry", "TrailHead", "TrailUpdate", "verify_upload"]

MAX_BATCH = 256
MAX_RECORD = 16 * 1024


@dataclass(frozen=True)
class TrailHead:
    """What the server holds of a unit's trail: entries ``0..size-1``, the last one's hash and epoch."""

    size: int = 0
    head: str = GENESIS_PREV
    epoch: int = 0


@dataclass(frozen=True)
class NewEntry:
    """A verified entry to store."""

    seq: int
    record: bytes
    tag: bytes
    entry_hash: str
    type: str
    outcome: str
    reason: str | None
    ts: str
    epoch: int = 0


@dataclass(frozen=True)
class TrailUpdate:
    """The outcome of a verified upload: entries to append, the new head, how many were resends."""

    entries: tuple[NewEntry, ...]
    head: TrailHead
    duplicates: int
    log_size: int


def _rows(raw: Sequence[Any]) -> list[tuple[int, bytes, bytes]]:
    if not isinstance(raw, list | tuple) or len(raw) > MAX_BATCH:
        raise TrailRejectedError(f"an upload holds a list of at most {MAX_BATCH} entries", reason="malformed")
    rows = []
    for item in raw:
        try:
            seq, record, tag = item["seq"], item["record"], item["tag"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or not isinstance(record, str):
                raise TypeError
            rec = record.encode("utf-8")
            tag_b = bytes.fromhex(tag)
        except (KeyError, TypeError, ValueError, UnicodeEncodeError):
            raise TrailRejectedError("each entry needs seq, record text and hex tag", reason="malformed") from None
        if len(rec) > MAX_RECORD or len(tag_b) != 32:
            raise TrailRejectedError("entry record too large or tag not 32 bytes", reason="malformed", seq=seq)
        rows.append((seq, rec, tag_b))
    for (a, _, _), (b, _, _) in itertools.pairwise(rows):
        if b != a + 1:
            raise TrailRejectedError(f"entries are not consecutive ({a} then {b})", reason="gap", seq=b)
    return rows


def verify_upload(
    head: TrailHead,
    entries: Sequence[Any],
    checkpoint: dict[str, Any],
    *,
    keys: EpochKeys,
    stored_hash: Callable[[int], str | None],
) -> TrailUpdate:
    """Verify an upload against the stored ``head`` (see the module docstring); return what to store.

    ``checkpoint`` is the already signature-checked claims of the upload; ``stored_hash(seq)`` returns the hash of
    a stored entry.

    Raises:
        TrailRejectedError: ``malformed``, ``gap``, ``fork``, ``chain_broken``, ``epoch_rewind``, ``bad_seal``,
            ``rewind`` or ``checkpoint_mismatch``.
    """
    rows = _rows(entries)
    log_size = checkpoint.get("log_size")
    if not isinstance(log_size, int) or isinstance(log_size, bool) or log_size < 0:
        raise TrailRejectedError("checkpoint log_size must be a non-negative integer", reason="malformed")
    if log_size < head.size:
        raise TrailRejectedError(
            f"the unit's log holds {log_size} entries, the server already verified {head.size}: truncated or rolled "
            "back",
            reason="rewind",
            seq=log_size,
        )
    if rows and rows[0][0] > head.size:
        raise TrailRejectedError(
            f"upload starts at seq {rows[0][0]}, the server expects {head.size}", reason="gap", seq=head.size
        )
    prev, epoch, size = head.head, head.epoch, head.size
    new: list[NewEntry] = []
    duplicates = 0
    for seq, rec, tag in rows:
        h = entry_hash(rec).hex()
        if seq < head.size:
            if stored_hash(seq) != h:
                raise TrailRejectedError(f"entry {seq} differs from the one already verified", reason="fork", seq=seq)
            duplicates += 1
            continue
        entry = _new_entry(seq, rec, tag, h, prev=prev, epoch=epoch, keys=keys)
        new.append(entry)
        prev, epoch, size = h, int(entry.epoch), seq + 1
    _check_checkpoint(checkpoint, rows, size, prev, log_size)
    return TrailUpdate(tuple(new), TrailHead(size, prev, epoch), duplicates, log_size)


def _new_entry(seq: int, rec: bytes, tag: bytes, h: str, *, prev: str, epoch: int, keys: EpochKeys) -> NewEntry:
    """Check one entry the server does not hold yet: canonical, filed under its seq, chained, sealed."""
    try:
        r = parse_record(rec)
    except AuditError as e:
        raise TrailRejectedError(f"entry {seq}: {e.message}", reason="malformed", seq=seq) from None
    if r.seq != seq:
        raise TrailRejectedError(f"entry filed as {seq} says seq {r.seq}", reason="malformed", seq=seq)
    if r.prev != prev:
        raise TrailRejectedError(f"entry {seq} does not chain to the previous entry", reason="chain_broken", seq=seq)
    if r.epoch < epoch:
        raise TrailRejectedError(f"entry {seq} claims epoch {r.epoch} after {epoch}", reason="epoch_rewind", seq=seq)
    if not tag_matches(keys.mac(r.epoch), bytes.fromhex(h), tag):
        raise TrailRejectedError(
            f"entry {seq} is not sealed with its epoch {r.epoch} key (re-sealed or forged)", reason="bad_seal", seq=seq
        )
    reason = r.body.get("reason")
    return NewEntry(
        seq=seq,
        record=rec,
        tag=tag,
        entry_hash=h,
        type=r.type,
        outcome=str(r.body.get("outcome", "")),
        reason=reason if isinstance(reason, str) else None,
        ts=r.ts,
        epoch=r.epoch,
    )


def _check_checkpoint(
    checkpoint: dict[str, Any], rows: list[tuple[int, bytes, bytes]], size: int, prev: str, log_size: int
) -> None:
    first = rows[0][0] if rows else size
    if checkpoint.get("first") != first or checkpoint.get("count") != len(rows):
        raise TrailRejectedError("the signed checkpoint does not describe this batch", reason="checkpoint_mismatch")
    if rows and checkpoint.get("head") != entry_hash(rows[-1][1]).hex():
        raise TrailRejectedError("the signed checkpoint names another head entry", reason="checkpoint_mismatch")
    if log_size < size:
        raise TrailRejectedError("the signed checkpoint's log_size is below the batch", reason="checkpoint_mismatch")


def build_upload(
    rows: Sequence[tuple[bytes, bytes]], first: int, log_size: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The unit's side: the entries of a batch read from its log and the checkpoint claims to sign."""
    entries = [{"seq": first + i, "record": rec.decode("utf-8"), "tag": tag.hex()} for i, (rec, tag) in enumerate(rows)]
    head = entry_hash(rows[-1][0]).hex() if rows else None
    return entries, {"first": first, "count": len(rows), "head": head, "log_size": log_size}


def check_exported_trail(doc: Any, *, device_ca: Any = None) -> dict[str, Any]:
    """Re-check an exported unit trail with public material only (for evidence bundles).

    ``doc`` is ``{"device", "certificate" (PEM), "entries": [{seq, record, tag}…], "checkpoint" (JWS)}``. Checked:
    every record is canonical and filed under its seq, the entries form one hash chain from the log's first entry,
    the checkpoint is the unit's signature (its certificate's key; with ``device_ca``, a certificate of that CA) over
    the last entry's hash. The HMAC seals were verified by the fleet server at upload (they need the secret).

    Returns ``{"device", "entries", "ok", "reason"}``.
    """
    from medfw.identity.ca import load_certificate  # noqa: PLC0415
    from medfw.identity.certs import verify_device_certificate  # noqa: PLC0415
    from medfw.identity.claims import verify_claims  # noqa: PLC0415
    from medfw.identity.errors import CertificateRejectedError, ClaimsRejectedError, IdentityError  # noqa: PLC0415

    device = str(doc.get("device", "")) if isinstance(doc, dict) else ""
    out: dict[str, Any] = {"device": device, "entries": 0, "ok": False, "reason": None}
    try:
        cert = load_certificate(str(doc["certificate"]).encode("ascii"))
        if device_ca is not None:
            verify_device_certificate(cert, device_ca, now=cert.not_valid_before_utc)
        prev = GENESIS_PREV
        for i, e in enumerate(doc["entries"]):
            rec = str(e["record"]).encode("utf-8")
            r = parse_record(rec)
            if r.seq != i or e.get("seq") != i or r.prev != prev:
                raise TrailRejectedError(f"entry {i} does not continue the chain", reason="chain_broken", seq=i)
            prev = entry_hash(rec).hex()
        out["entries"] = len(doc["entries"])
        claims = verify_claims(str(doc["checkpoint"]), cert.public_key(), device_id=device, kind="audit")  # type: ignore[arg-type]
        if doc["entries"] and claims.get("head") != prev:
            raise TrailRejectedError(
                "the unit's signed checkpoint names another last entry", reason="checkpoint_mismatch"
            )
    except (KeyError, TypeError, ValueError, AttributeError):
        out["reason"] = "malformed export"
        return out
    except (AuditError, IdentityError, CertificateRejectedError, ClaimsRejectedError, TrailRejectedError) as e:
        out["reason"] = f"{getattr(e, 'reason', 'invalid')}: {e.message}"
        return out
    out["ok"] = True
    return out
