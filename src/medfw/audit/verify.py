"""Verify a whole log from the initial key: chain, epoch binding, HMAC tags, Merkle root, checkpoints.

:func:`verify_log` never raises for a log that fails verification: it returns a :class:`VerifyReport` that is
either ok or names the first bad seq and a classification (:data:`CLASSIFICATIONS`). It raises
:class:`medfw.errors.AuditError` only for unusable input: not a log, a key or checkpoint of another log.

The fast path checks, per entry and without parsing: the entry hash ``SHA-256(0x00 || record)``, the
record's fixed chain tail (``epoch`` equal to or one above the previous entry's, ``prev`` equal to the previous
entry's hash, ``seq`` one above), and ``HMAC(M[epoch], entry_hash)`` with the key the verifier derived itself
for that epoch (see :mod:`medfw.audit.record` for why the tail comparison is equivalent to parsing). The first
entry must be epoch 0. Only when an entry fails is the slow path used, to classify what happened.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.keys import (
    KDF_HKDF,
    KDFS,
    CheckpointPublicKey,
    EpochKeys,
    VerificationKey,
    key_check_value,
    load_checkpoint_public_key,
    tag_matches,
)
from medfw.audit.merkle import MerkleTree
from medfw.audit.record import RECORD_PREFIX, chain_suffix, entry_hash, parse_record
from medfw.audit.scan import PARALLEL_MIN, Scan, parallel_scan, scan
from medfw.audit.store import LogStore, open_store, storage_errors
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

_eq = hmac.compare_digest
_PARALLEL_MIN = PARALLEL_MIN


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
        checkpoint_size: size of the largest checkpoint held by the verifier (given or witnessed), if any.
        stored_checkpoints: how many of the log's own checkpoints were checked.
        bad_checkpoint: the size of the first checkpoint (held or stored) that failed, when one did.
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
    bad_checkpoint: int | None = None
    warnings: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def _resolve_key(key: bytes | VerificationKey, log_id: str, location: str) -> tuple[bytes, bytes | None, str | None]:
    if isinstance(key, VerificationKey):
        vk = key
    elif len(key) == 32:
        return key, None, None
    else:
        vk = VerificationKey.from_bytes(key)
    if vk.log_id != log_id:
        raise AuditError(
            f"verification key belongs to log {vk.log_id!r}, not to this log ({log_id!r})",
            path=location,
            field="log_id",
        )
    return vk.initial_key, vk.checkpoint_public_key_pem, vk.kdf


def _tail_ok(rec: bytes, tag: bytes, keys: EpochKeys, *, epoch_prev: int, prev_hex: bytes, seq: int) -> int | None:
    """Return the epoch when ``rec`` validly continues the chain, else None (slow-path helper)."""
    if not rec.startswith(RECORD_PREFIX):
        return None
    for e in (epoch_prev, epoch_prev + 1):
        if e >= 0 and rec.endswith(chain_suffix(e, prev_hex, seq)):
            if tag_matches(keys.mac(e), entry_hash(rec), tag):
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
    eh = entry_hash(rec)
    try:
        parsed = parse_record(rec)
    except AuditError:
        parsed = None
    claimed = parsed.epoch if parsed is not None else max(ctx.epoch_prev, 0)
    tag_ok = tag_matches(ctx.keys.mac(claimed), eh, tag)

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
            if e != claimed and tag_matches(ctx.keys.mac(e), eh, tag):
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
    checkpoint: SignedCheckpoint | Sequence[SignedCheckpoint] | None = None,
    public_key_pem: bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> VerifyReport:
    """Verify the log at ``path`` with the initial key.

    Args:
        path: the log (file path or PostgreSQL URL).
        key: a :class:`VerificationKey`, the bytes of a key file, or the raw 32-byte initial key (then
            checkpoints are checked against the public key stored in the log, which is weaker).
        checkpoint: checkpoints held by the verifier (kept earlier, or fetched from a witness); they detect
            truncation, rollback and forks.
        public_key_pem: pin this checkpoint public key instead of the verification key's.
        progress: called with ``(entries done, entries total)`` now and then.
        workers: scan a large SQLite log in this many processes (the result is the same; any irregularity is
            re-examined by the sequential scan, which also classifies it).

    Raises:
        AuditError: ``path`` is not a log, or the key or a checkpoint belongs to another log.
    """
    held: list[SignedCheckpoint] = []
    if isinstance(checkpoint, SignedCheckpoint):
        held = [checkpoint]
    elif checkpoint is not None:
        held = list(checkpoint)
    with storage_errors(path):
        store = open_store(path)
        try:
            return _verify(store, key, held, public_key_pem, progress, workers)
        finally:
            store.close()


@dataclass
class _Run:
    """What :func:`_verify` carries between its steps."""

    store: LogStore
    log_id: str
    total: int | None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def report(self, **kw: Any) -> VerifyReport:
        if self.total is None:
            self.total = self.store.count()
        args = {**self.extra, **kw}
        return VerifyReport(
            log_id=self.log_id, location=self.store.label, entries=self.total, warnings=tuple(self.warnings), **args
        )


def _check_held(run: _Run, held: list[SignedCheckpoint], trusted: CheckpointPublicKey) -> VerifyReport | None:
    for i, signed in enumerate(held):
        cp = signed.checkpoint
        if cp.log_id != run.log_id:
            raise AuditError(
                f"checkpoint belongs to log {cp.log_id!r}, not to this log ({run.log_id!r})",
                path=run.store.label,
                field="log_id",
            )
        try:
            signed.verify(trusted)
        except (SignatureError, AuditError) as e:
            which = f"checkpoint {i + 1} (size {cp.size})" if len(held) > 1 else f"the checkpoint (size {cp.size})"
            return run.report(
                ok=False,
                verified=0,
                classification=BAD_CHECKPOINT_SIGNATURE,
                message=f"{which} is not signed by this log's pinned checkpoint key: {e.message}",
                checkpoint_size=cp.size,
                bad_checkpoint=cp.size,
            )
    return None


def _verify(  # noqa: PLR0917 - the private core of verify_log, same arguments
    store: LogStore,
    key: bytes | VerificationKey,
    held: list[SignedCheckpoint],
    public_key_pem: bytes | None,
    progress: Callable[[int, int], None] | None,
    workers: int,
) -> VerifyReport:
    location = store.label
    raw_id = store.get_meta("log_id")
    if store.get_meta("format") is None or raw_id is None:
        raise AuditError("not a medfw audit log (meta missing)", path=location)
    log_id = raw_id.decode("utf-8", "replace")
    initial, pinned_pem, pinned_kdf = _resolve_key(key, log_id, location)
    raw_kdf = store.get_meta("kdf")
    kdf = KDF_HKDF if raw_kdf is None else raw_kdf.decode("utf-8", "replace")
    # count(*) visits every row (a twentieth of the cost of the whole verification). It is needed up front only
    # for progress reports; otherwise a scan that consumed every row gives it.
    run = _Run(store, log_id, store.count() if progress is not None else None)
    kcv = store.get_meta("kcv")
    if kcv is None or not _eq(kcv, key_check_value(initial, log_id)):
        return run.report(
            ok=False, verified=0, classification=WRONG_KEY, message="the key is not this log's verification key"
        )
    if kdf not in KDFS or (pinned_kdf is not None and kdf != pinned_kdf):
        return run.report(
            ok=False,
            verified=0,
            classification=WRONG_KEY,
            message=f"the log claims key derivation {kdf!r}, the verification key is for {pinned_kdf!r}",
        )
    if public_key_pem is not None:
        pinned_pem = public_key_pem
    stored_pem = store.get_meta("checkpoint_public_key") or b""
    trusted = load_checkpoint_public_key(pinned_pem if pinned_pem is not None else stored_pem, path=location)
    if pinned_pem is None:
        run.warnings.append("checkpoint key taken from the log itself (not pinned by a key file)")
    if store.get_meta("checkpoint_private_key") is not None:
        run.warnings.append(
            "the checkpoint signing key is stored inside the log, so whoever can rewrite the log can re-sign its "
            "checkpoints: run 'medfw audit migrate'"
        )
    failed = _check_held(run, held, trusted)
    if failed is not None:
        return failed
    cp_size = max((c.checkpoint.size for c in held), default=None)
    run.extra["checkpoint_size"] = cp_size

    keys = EpochKeys(initial, log_id, kdf)
    result: Scan | None = None
    if workers > 1 and store.max_pos() + 1 >= _PARALLEL_MIN:  # an index probe, not a count
        result = parallel_scan(store, keys, workers)
    if result is None:
        result = scan(store.iter_chunks(), keys, Scan(), progress, run.total or 0)
    elif progress is not None:
        progress(result.seq, run.total or 0)
    n = result.size
    if run.total is None and result.bad is None and result.damaged is None:
        # Every row iter_chunks() yielded verified: the scan counted them; add any rows outside its range.
        run.total = n + store.count_outside()
    run.extra["last_epoch"] = result.epoch if n else None

    if result.damaged is not None:
        return run.report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=STORAGE_DAMAGED,
            message=f"storage is damaged after seq {n - 1} ({result.damaged}); this is file damage, not proof of "
            "tampering",
        )
    state_next = _state_next_seq(store)
    if result.bad is not None:
        rows = list(store.iter_entries())
        rec, tag = rows[result.bad]
        if not (result.bad == len(rows) - 1 and _torn(rec, tag) and state_next == result.bad):
            return _classified(run, rows, result, keys, cp_size)
        run.extra["torn_tail"] = True
        run.warnings.append(f"the last write (position {result.bad}) is incomplete and was never committed; ignored")
    return _check_checkpoints(
        run, result.merkle(), held, trusted=trusted, pinned=pinned_pem is not None, state_next=state_next
    )


def _classified(
    run: _Run, rows: list[tuple[bytes, bytes]], result: Scan, keys: EpochKeys, cp_size: int | None
) -> VerifyReport:
    assert result.bad is not None
    try:
        state_epoch = int(json.loads(run.store.get_meta("state") or b"{}")["epoch"])
    except (ValueError, KeyError, TypeError):
        state_epoch = result.epoch + 1
    ctx = _Ctx(
        rows=rows,
        hashes=result.hashes,
        keys=keys,
        epoch_prev=result.epoch,
        prev_hex=result.prev,
        max_epoch=min(max(state_epoch, result.epoch) + 2, result.epoch + 1_000_000),
        checkpoint_size=cp_size,
    )
    first, cls, msg = _classify(ctx, result.bad)
    return run.report(ok=False, verified=len(result.hashes), first_bad_seq=first, classification=cls, message=msg)


def _stored_roots(
    run: _Run, n: int, trusted: CheckpointPublicKey, pinned: bool
) -> tuple[list[tuple[int, bytes, str]], VerifyReport | None]:
    """The log's own checkpoints as ``(size, root, label)``; a report when one is forged or beyond the log."""
    out: list[tuple[int, bytes, str]] = []
    stored = run.store.checkpoints()
    run.extra["stored_checkpoints"] = len(stored)
    for i, (size, doc) in enumerate(stored):
        label = f"stored checkpoint #{i + 1} (size {size})"
        try:
            scp = SignedCheckpoint.from_bytes(doc, path=run.store.label)
            scp.verify(trusted)
        except (AuditError, SignatureError) as e:
            if not pinned:
                run.warnings.append(f"{label} does not verify: {e.message}")
                continue
            return out, run.report(
                ok=False,
                verified=n,
                classification=BAD_CHECKPOINT_SIGNATURE,
                bad_checkpoint=size,
                message=f"{label} is not signed by the pinned checkpoint key (re-signed or forged): {e.message}",
            )
        if scp.checkpoint.size > n:
            return out, run.report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                bad_checkpoint=scp.checkpoint.size,
                message=f"the log's own checkpoint covers {scp.checkpoint.size} entries but only {n} remain",
            )
        out.append((scp.checkpoint.size, scp.checkpoint.root, label))
    return out, None


def _check_checkpoints(
    run: _Run,
    tree: MerkleTree,
    held: list[SignedCheckpoint],
    *,
    trusted: CheckpointPublicKey,
    pinned: bool,
    state_next: int | None,
) -> VerifyReport:
    """The chain is intact: check the Merkle root against every checkpoint held or stored."""
    n = tree.size
    for signed in sorted(held, key=lambda c: -c.checkpoint.size):
        cp = signed.checkpoint
        if cp.size > n:
            return run.report(
                ok=False,
                verified=n,
                first_bad_seq=n,
                classification=TRUNCATED,
                bad_checkpoint=cp.size,
                message=f"the checkpoint covers {cp.size} entries but the log has only {n}: the tail was removed",
            )
    stored, failed = _stored_roots(run, n, trusted, pinned)
    if failed is not None:
        return failed
    # Held checkpoints first: at equal size, a disagreement with a witness is a fork.
    wanted = [
        (c.checkpoint.size, c.checkpoint.root, "given", f"the held checkpoint of size {c.checkpoint.size}")
        for c in held
    ]
    wanted += [(size, root, "stored", label) for size, root, label in stored]
    root = tree.root()
    run.extra["root"] = root.hex()
    for size, want, origin, label in sorted(wanted, key=lambda w: w[0]):
        if not _eq(tree.root(size), want):
            return run.report(
                ok=False,
                verified=n,
                first_bad_seq=size - 1,
                classification=FORKED if origin == "given" else EDITED,
                bad_checkpoint=size,
                message=(
                    f"the log's first {size} entries differ from what {label} committed to "
                    "(rolled back and rewritten at or before this seq)"
                ),
            )
    if state_next is not None and state_next > n:
        return run.report(
            ok=False,
            verified=n,
            first_bad_seq=n,
            classification=TRUNCATED,
            message=f"the writer committed {state_next} entries but only {n} remain: the tail was removed",
        )
    if state_next is not None and state_next < n:
        run.warnings.append(f"the writer state counts {state_next} entries but {n} verified")
    cp_size = run.extra.get("checkpoint_size")
    msg = f"{n} entries intact" + (f", consistent with the checkpoint of size {cp_size}" if cp_size is not None else "")
    return run.report(ok=True, verified=n, message=msg)
