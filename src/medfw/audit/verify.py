"""Verify a whole log from the initial key: chain, epoch binding, HMAC tags, Merkle root, checkpoints.

:func:`verify_log` never raises for a log that fails verification: it returns a :class:`VerifyReport` that is
either ok or names the first bad seq and a classification (:data:`CLASSIFICATIONS`). It raises
:class:`medfw.errors.AuditError` only for unusable input: not a log, a key or checkpoint of another log.

The fast path checks, per entry and without parsing: ``SHA-256(record)``, the record's fixed chain tail
(``epoch`` equal to or one above the previous entry's, ``prev`` equal to the previous entry's hash, ``seq``
one above), and ``HMAC(M[epoch], entry_hash)`` with the key the verifier derived itself for that epoch (see
:mod:`medfw.audit.record` for why the tail comparison is equivalent to parsing). The first entry must be
epoch 0. Only when an entry fails is the slow path used, to classify what happened.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.keys import (
    EpochKeys,
    VerificationKey,
    key_check_value,
    load_checkpoint_public_key,
)
from medfw.audit.merkle import MerkleTree
from medfw.audit.record import GENESIS_PREV, RECORD_PREFIX, chain_suffix, parse_record
from medfw.audit.store import LogStore, open_store
from medfw.errors import AuditError, SignatureError

__all__ = [
    "BAD_CHECKPOINT_SIGNATURE",
    "CLASSIFICATIONS",
    "COUNTER_RESET",
    "DELETED",
    "DUPLICATE",
    "EDITED",
    "FORKED",
    "INSERTED",
    "REORDERED",
    "STORAGE_DAMAGED",
    "TRUNCATED",
    "WRONG_EPOCH_KEY",
    "WRONG_KEY",
    "VerifyReport",
    "verify_log",
]

EDITED = "edited"
DELETED = "deleted"
REORDERED = "reordered"
INSERTED = "inserted"
TRUNCATED = "truncated"
FORKED = "forked"
WRONG_EPOCH_KEY = "wrong_epoch_key"
WRONG_KEY = "wrong_key"
BAD_CHECKPOINT_SIGNATURE = "bad_checkpoint_signature"
DUPLICATE = "duplicate"
COUNTER_RESET = "counter_reset"
STORAGE_DAMAGED = "storage_damaged"
CLASSIFICATIONS = frozenset(
    {
        EDITED,
        DELETED,
        REORDERED,
        INSERTED,
        TRUNCATED,
        FORKED,
        WRONG_EPOCH_KEY,
        WRONG_KEY,
        BAD_CHECKPOINT_SIGNATURE,
        DUPLICATE,
        COUNTER_RESET,
        STORAGE_DAMAGED,
    }
)

_sha256 = hashlib.sha256
_hmac = hmac.digest
_eq = hmac.compare_digest
_hex = binascii.hexlify


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_log`.

    Attributes:
        ok: the log is intact (and consistent with the checkpoint, if one was given).
        log_id: the log's id.
        location: the log's path or (redacted) URL.
        entries: entries stored.
        verified: leading entries that verified (seqs ``0 .. verified-1``).
        first_bad_seq: the first seq that is wrong or missing (None when ok, or when no single seq is at fault).
        classification: one of :data:`CLASSIFICATIONS` (None when ok).
        message: one sentence for people.
        root: hex Merkle root over the verified entries.
        last_epoch: key epoch of the last verified entry.
        checkpoint_size: size of the checkpoint checked against, if one was given.
        stored_checkpoints: how many of the log's own checkpoints were checked.
        torn_tail: the last write was incomplete and never committed (reported, not counted, not tampering).
        warnings: other observations.
    """

    ok: bool
    log_id: str
    location: str
    entries: int
    verified: int
    first_bad_seq: int | None = None
    classification: str | None = None
    message: str = ""
    root: str | None = None
    last_epoch: int | None = None
    checkpoint_size: int | None = None
    stored_checkpoints: int = 0
    torn_tail: bool = False
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _resolve_key(key: bytes | VerificationKey, log_id: str, location: str) -> tuple[bytes, bytes | None]:
    if isinstance(key, VerificationKey):
        vk = key
    elif len(key) == 32:
        return key, None
    else:
        vk = VerificationKey.from_bytes(key)
    if vk.log_id != log_id:
        raise AuditError(
            f"verification key belongs to log {vk.log_id!r}, not to this log ({log_id!r})",
            path=location,
            field="log_id",
        )
    return vk.initial_key, vk.checkpoint_public_key_pem


def _tail_ok(rec: bytes, tag: bytes, keys: EpochKeys, *, epoch_prev: int, prev_hex: bytes, seq: int) -> int | None:
    """Return the epoch when ``rec`` validly continues the chain, else None (slow-path helper)."""
    if not rec.startswith(RECORD_PREFIX):
        return None
    for e in (epoch_prev, epoch_prev + 1):
        if e >= 0 and rec.endswith(chain_suffix(e, prev_hex, seq)):
            if len(tag) == 32 and _eq(_hmac(keys.mac(e), _sha256(rec).digest(), "sha256"), tag):
                return e
            return None
    return None


@dataclass
class _Ctx:
    rows: Sequence[tuple[bytes, bytes]]
    hashes: list[bytes]
    keys: EpochKeys
    epoch_prev: int
    prev_hex: bytes
    max_epoch: int
    checkpoint_size: int | None


def _classify(ctx: _Ctx, i: int) -> tuple[int | None, str, str]:
    """Explain why row ``i`` broke the chain: (first bad seq, classification, message)."""
    rec, tag = ctx.rows[i]
    eh = _sha256(rec).digest()
    try:
        parsed = parse_record(rec)
    except AuditError:
        parsed = None
    claimed = parsed.epoch if parsed is not None else max(ctx.epoch_prev, 0)
    tag_ok = len(tag) == 32 and _eq(_hmac(ctx.keys.mac(claimed), eh, "sha256"), tag)

    if eh in set(ctx.hashes):
        j = ctx.hashes.index(eh)
        return i, DUPLICATE, f"entry at position {i} is a second copy of seq {j}"
    if tag_ok and parsed is not None and parsed.seq > i:
        for later_rec, _ in ctx.rows[i + 1 :]:
            if later_rec.endswith(b'"seq":%d}' % i):
                return i, REORDERED, f"seq {i} appears later in the log, after seq {parsed.seq}"
        return i, DELETED, f"seq {i} is missing (next entry is seq {parsed.seq})"
    if i + 1 < len(ctx.rows):
        nxt_rec, nxt_tag = ctx.rows[i + 1]
        if _tail_ok(nxt_rec, nxt_tag, ctx.keys, epoch_prev=ctx.epoch_prev, prev_hex=ctx.prev_hex, seq=i) is not None:
            return i, INSERTED, f"an entry that does not belong was inserted before seq {i}"
    if not tag_ok:
        for e in range(ctx.max_epoch + 1):
            if e != claimed and len(tag) == 32 and _eq(_hmac(ctx.keys.mac(e), eh, "sha256"), tag):
                return i, WRONG_EPOCH_KEY, f"seq {i} claims epoch {claimed} but was sealed with the key of epoch {e}"
        return i, EDITED, f"seq {i} was modified: its HMAC tag does not match its contents"
    if parsed is None:
        return i, EDITED, f"seq {i} is validly sealed but not a canonical record"
    if parsed.seq < i:
        if parsed.prev.encode() == ctx.prev_hex:
            return i, COUNTER_RESET, f"the sequence counter was reset: entry after seq {i - 1} has seq {parsed.seq}"
        return i, REORDERED, f"seq {parsed.seq} appears again at position {i}, out of order"
    if i > 0 and not ctx.epoch_prev <= parsed.epoch <= ctx.epoch_prev + 1:
        if ctx.checkpoint_size is not None and ctx.checkpoint_size > i:
            return (
                i,
                TRUNCATED,
                (
                    f"the log was truncated to {i} entries and re-appended with the key of epoch {parsed.epoch}; "
                    f"the checkpoint covers {ctx.checkpoint_size} entries"
                ),
            )
        return i, WRONG_EPOCH_KEY, f"seq {i} claims epoch {parsed.epoch} right after epoch {ctx.epoch_prev}"
    if ctx.checkpoint_size is not None and ctx.checkpoint_size > i:
        return i, TRUNCATED, f"the log was truncated to {i} entries and re-appended (checkpoint disagrees)"
    return i, EDITED, f"seq {i} does not chain to seq {i - 1}"


def _torn(rec: bytes, tag: bytes) -> bool:
    """True when a record looks like an incomplete write (cut short), not like edited content."""
    return len(tag) != 32 or not rec.startswith(RECORD_PREFIX) or not rec.endswith(b"}")


def _state_next_seq(store: LogStore) -> int | None:
    raw = store.get_meta("state")
    try:
        return int(json.loads(raw or b"{}")["next_seq"])
    except (ValueError, KeyError, TypeError):
        return None


def verify_log(
    path: str | Path,
    key: bytes | VerificationKey,
    *,
    checkpoint: SignedCheckpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Verify the log at ``path`` with the initial key.

    Args:
        path: the log (file path or PostgreSQL URL).
        key: a :class:`VerificationKey`, the bytes of a key file, or the raw 32-byte initial key (then
            checkpoints are checked against the public key stored in the log, which is weaker).
        checkpoint: an earlier checkpoint held by the verifier; detects truncation, rollback and forks.
        progress: called with ``(entries done, entries total)`` now and then.

    Raises:
        AuditError: ``path`` is not a log, or the key or checkpoint belongs to another log.
    """
    store = open_store(path)
    try:
        return _verify(store, key, checkpoint, progress)
    finally:
        store.close()


def _verify(
    store: LogStore,
    key: bytes | VerificationKey,
    checkpoint: SignedCheckpoint | None,
    progress: Callable[[int, int], None] | None,
) -> VerifyReport:
    location = store.label
    raw_id = store.get_meta("log_id")
    if store.get_meta("format") is None or raw_id is None:
        raise AuditError("not a medfw audit log (meta missing)", path=location)
    log_id = raw_id.decode("utf-8", "replace")
    initial, pinned_pem = _resolve_key(key, log_id, location)
    total = store.count()

    def report(**kw: Any) -> VerifyReport:
        return VerifyReport(log_id=log_id, location=location, entries=total, **kw)

    kcv = store.get_meta("kcv")
    if kcv is None or not _eq(kcv, key_check_value(initial, log_id)):
        return report(
            ok=False, verified=0, classification=WRONG_KEY, message="the key is not this log's verification key"
        )
    stored_pem = store.get_meta("checkpoint_public_key") or b""
    trusted = load_checkpoint_public_key(pinned_pem if pinned_pem is not None else stored_pem, path=location)
    warnings: list[str] = []
    if pinned_pem is None:
        warnings.append("checkpoint key taken from the log itself (not pinned by a key file)")
    cp_size: int | None = None
    if checkpoint is not None:
        cp = checkpoint.checkpoint
        if cp.log_id != log_id:
            raise AuditError(
                f"checkpoint belongs to log {cp.log_id!r}, not to this log ({log_id!r})", path=location, field="log_id"
            )
        try:
            checkpoint.verify(trusted)
        except (SignatureError, AuditError) as e:
            return report(
                ok=False,
                verified=0,
                classification=BAD_CHECKPOINT_SIGNATURE,
                message=f"the checkpoint is not signed by this log's checkpoint key: {e.message}",
                checkpoint_size=cp.size,
            )
        cp_size = cp.size

    keys = EpochKeys(initial, log_id)
    hashes: list[bytes] = []
    add = hashes.append
    epoch, mac, prev, seq = -1, b"", GENESIS_PREV.encode(), 0
    bad: int | None = None
    damaged: str | None = None
    prefix = RECORD_PREFIX
    try:
        for chunk in store.iter_chunks():
            for rec, tag in chunk:
                eh = _sha256(rec).digest()
                if not rec.endswith(b',"epoch":%d,"prev":"%b","seq":%d}' % (epoch, prev, seq)):
                    if seq and rec.endswith(b',"epoch":%d,"prev":"%b","seq":%d}' % (epoch + 1, prev, seq)):
                        epoch += 1
                        mac = keys.mac(epoch)
                    elif not seq and rec.endswith(b',"epoch":0,"prev":"%b","seq":0}' % prev):
                        epoch = 0
                        mac = keys.mac(0)
                    else:
                        bad = seq
                        break
                if not (rec.startswith(prefix) and _eq(_hmac(mac, eh, "sha256"), tag)):
                    bad = seq
                    break
                add(eh)
                prev = _hex(eh)
                seq += 1
            if bad is not None:
                break
            if progress is not None:
                progress(seq, total)
    except sqlite3.DatabaseError as e:
        damaged = str(e)
    if progress is not None:
        progress(seq, total)
    n = len(hashes)
    last_epoch = epoch if n else None

    if damaged is not None:
        return report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=STORAGE_DAMAGED,
            message=f"storage is damaged after seq {n - 1} ({damaged}); this is file damage, not proof of tampering",
            last_epoch=last_epoch,
        )

    state_next = _state_next_seq(store)
    torn = False
    if bad is not None:
        rows = list(store.iter_entries())
        rec, tag = rows[bad]
        if bad == len(rows) - 1 and _torn(rec, tag) and state_next == bad:
            torn = True
            warnings.append(f"the last write (position {bad}) is incomplete and was never committed; ignored")
        else:
            try:
                state_epoch = int(json.loads(store.get_meta("state") or b"{}")["epoch"])
            except (ValueError, KeyError, TypeError):
                state_epoch = epoch + 1
            ctx = _Ctx(
                rows=rows,
                hashes=hashes,
                keys=keys,
                epoch_prev=epoch,
                prev_hex=prev,
                max_epoch=min(max(state_epoch, epoch) + 2, epoch + 1_000_000),
                checkpoint_size=cp_size,
            )
            first, cls, msg = _classify(ctx, bad)
            return report(
                ok=False,
                verified=n,
                first_bad_seq=first,
                classification=cls,
                message=msg,
                last_epoch=last_epoch,
                checkpoint_size=cp_size,
                warnings=tuple(warnings),
            )

    # The chain is intact: check the Merkle root against every checkpoint we hold.
    sizes: dict[int, list[tuple[str, bytes]]] = {}
    stored = store.checkpoints()
    for size, doc in stored:
        try:
            scp = SignedCheckpoint.from_bytes(doc, path=location)
            scp.verify(trusted)
        except (AuditError, SignatureError) as e:
            warnings.append(f"a stored checkpoint of size {size} does not verify: {e.message}")
            continue
        if scp.checkpoint.size > n:
            return report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                message=f"the log's own checkpoint covers {scp.checkpoint.size} entries but only {n} remain",
                last_epoch=last_epoch,
                stored_checkpoints=len(stored),
                torn_tail=torn,
                warnings=tuple(warnings),
            )
        sizes.setdefault(scp.checkpoint.size, []).append(("stored", scp.checkpoint.root))
    if checkpoint is not None:
        cp = checkpoint.checkpoint
        if cp.size > n:
            return report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                message=f"the checkpoint covers {cp.size} entries but the log has only {n}: the tail was removed",
                last_epoch=last_epoch,
                checkpoint_size=cp.size,
                stored_checkpoints=len(stored),
                torn_tail=torn,
                warnings=tuple(warnings),
            )
        sizes.setdefault(cp.size, []).append(("given", cp.root))
    tree = MerkleTree([_sha256(b"\x00" + h).digest() for h in hashes])
    root = tree.root()
    for size in sorted(sizes):
        r = tree.root(size)
        for origin, want in sizes[size]:
            if not _eq(r, want):
                return report(
                    ok=False,
                    verified=n,
                    first_bad_seq=size - 1,
                    classification=FORKED if origin == "given" else EDITED,
                    message=(
                        f"the log's first {size} entries differ from what the {origin} checkpoint committed to "
                        "(rolled back and rewritten at or before this seq)"
                    ),
                    root=root.hex(),
                    last_epoch=last_epoch,
                    checkpoint_size=cp_size,
                    stored_checkpoints=len(stored),
                    torn_tail=torn,
                    warnings=tuple(warnings),
                )
    if state_next is not None and state_next > n:
        return report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=TRUNCATED,
            message=f"the writer committed {state_next} entries but only {n} remain: the tail was removed",
            root=root.hex(),
            last_epoch=last_epoch,
            checkpoint_size=cp_size,
            stored_checkpoints=len(stored),
            torn_tail=torn,
            warnings=tuple(warnings),
        )
    if state_next is not None and state_next < n:
        warnings.append(f"the writer state counts {state_next} entries but {n} verified")
    msg = f"{n} entries intact" + (f", consistent with the checkpoint of size {cp_size}" if cp_size is not None else "")
    return report(
        ok=True,
        verified=n,
        message=msg,
        root=root.hex(),
        last_epoch=last_epoch,
        checkpoint_size=cp_size,
        stored_checkpoints=len(stored),
        torn_tail=torn,
        warnings=tuple(warnings),
    )
