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

import binascii
import hashlib
import hmac
import itertools
import json
import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC as _HMAC

from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.keys import (
    EpochKeys,
    VerificationKey,
    key_check_value,
    load_checkpoint_public_key,
    tag_matches,
)
from medfw.audit.merkle import MerkleTree
from medfw.audit.record import GENESIS_PREV, RECORD_PREFIX, chain_suffix, entry_hash, parse_record
from medfw.audit.store import LogStore, SqliteStore, open_store, storage_errors
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
_eq = hmac.compare_digest
_SHA256 = SHA256()
_hex = binascii.hexlify
_PARALLEL_MIN = 20_000


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


@dataclass
class _Scan:
    """State of the fast scan: hashes so far, the last epoch, previous hash (hex), next seq, first failure."""

    hashes: list[bytes] = field(default_factory=list)
    epoch: int = -1
    prev: bytes = GENESIS_PREV.encode()
    seq: int = 0
    bad: int | None = None
    damaged: str | None = None


def _keyed_mac(keys: EpochKeys, epoch: int) -> Callable[[], _HMAC]:
    """Return a factory of HMAC-SHA256 objects already keyed with ``M[epoch]``.

    Keying an HMAC hashes the key block (inner and outer pads); copying a keyed prototype skips that and the
    argument checks of the constructor, which is most of the cost of tagging a 32-byte entry hash.
    """
    return _HMAC(keys.mac(epoch), _SHA256).copy


def _scan(
    chunks: Iterator[list[tuple[bytes, bytes]]],
    keys: EpochKeys,
    st: _Scan,
    progress: Callable[[int, int], None] | None = None,
    total: int = 0,
) -> _Scan:
    """The fast path (see the module docstring); stops at the first entry that does not verify.

    Per entry: one leaf hash (which is also the chain hash and the Merkle leaf), one byte comparison of the
    chain tail, one prefix comparison and one HMAC from a prototype keyed once per epoch, compared in constant
    time. Nothing is parsed or formatted beyond the expected tail.
    """
    add = st.hashes.append
    seq, prev, start = st.seq, st.prev, st.seq
    # Nothing verified yet (epoch -1): the first entry must be seq 0 in epoch 0. No record may claim epoch -1,
    # so the fast path starts at epoch 0 rather than expecting a tail with "epoch":-1.
    epoch = st.epoch if st.epoch >= 0 else 0
    new_mac = _keyed_mac(keys, epoch)
    head = b',"epoch":%d,"prev":"' % epoch  # the tail up to the prev hash changes only with the epoch
    prefix = RECORD_PREFIX
    new_leaf = _sha256(b"\x00").copy
    eq, hexlify = _eq, _hex
    bad: int | None = None
    try:
        for chunk in chunks:
            for rec, tag in chunk:
                h = new_leaf()
                h.update(rec)
                eh = h.digest()
                if rec.endswith(b'%b%b","seq":%d}' % (head, prev, seq)):
                    if not rec.startswith(prefix):
                        bad = seq
                        break
                    t = new_mac()
                    t.update(eh)
                    if not eq(t.finalize(), tag):
                        bad = seq
                        break
                else:
                    # The only other valid tail: the next epoch (or epoch 0 for the very first entry).
                    nxt = epoch + 1 if seq else 0
                    if not (
                        rec.endswith(b',"epoch":%d,"prev":"%b","seq":%d}' % (nxt, prev, seq)) and rec.startswith(prefix)
                    ):
                        bad = seq
                        break
                    nxt_mac = _keyed_mac(keys, nxt)
                    t = nxt_mac()
                    t.update(eh)
                    if not eq(t.finalize(), tag):
                        bad = seq
                        break
                    epoch, new_mac = nxt, nxt_mac
                    head = b',"epoch":%d,"prev":"' % epoch
                add(eh)
                prev = hexlify(eh)
                seq += 1
            if bad is not None:
                break
            if progress is not None:
                progress(seq, total)
    except sqlite3.DatabaseError as e:
        st.damaged = str(e)
    st.bad = bad
    if seq != start:
        st.epoch = epoch
    st.prev, st.seq = prev, seq
    return st


def _scan_range(job: tuple[str, bytes, str, int, int]) -> tuple[int, int, bytes, bytes, int, bool]:
    """Worker: scan positions ``[lo, hi)`` starting from the chain state the first record claims.

    Returns ``(first seq, first epoch, first prev, concatenated hashes, last epoch, clean)``; the parent checks
    that consecutive ranges join up, and falls back to the sequential scan when anything is off.
    """
    location, initial, log_id, lo, hi = job
    store = open_store(location)
    try:
        chunks = store.iter_chunks(lo, hi)
        first = next(chunks, [])
        if not first:
            return 0, 0, b"", b"", 0, False
        try:
            head = parse_record(first[0][0])
        except AuditError:
            return 0, 0, b"", b"", 0, False
        keys = EpochKeys(initial, log_id)
        st = _Scan(epoch=head.epoch, prev=head.prev.encode(), seq=head.seq)
        st = _scan(itertools.chain([first], chunks), keys, st)
        clean = st.bad is None and st.damaged is None
        return head.seq, head.epoch, head.prev.encode(), b"".join(st.hashes), st.epoch, clean
    finally:
        store.close()


def _parallel_scan(store: LogStore, initial: bytes, log_id: str, workers: int) -> _Scan | None:
    """Scan position ranges in ``workers`` processes; None when they do not join up cleanly."""
    top = store.max_pos() + 1
    step = -(-top // workers)
    jobs = [(store.label, initial, log_id, lo, min(lo + step, top)) for lo in range(0, top, step)]
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(len(jobs)) as pool:
            parts = pool.map(_scan_range, jobs)
    except (OSError, ValueError):
        return None
    st = _Scan()
    for first_seq, first_epoch, first_prev, joined, last_epoch, clean in parts:
        if not clean or first_seq != st.seq or first_prev != st.prev:
            return None
        if not (st.epoch <= first_epoch <= st.epoch + 1) or (first_seq == 0 and first_epoch != 0):
            return None
        hs = [joined[i : i + 32] for i in range(0, len(joined), 32)]
        st.hashes.extend(hs)
        st.seq += len(hs)
        st.epoch = last_epoch
        st.prev = _hex(hs[-1])
    return st


def verify_log(
    path: str | Path,
    key: bytes | VerificationKey,
    *,
    checkpoint: SignedCheckpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> VerifyReport:
    """Verify the log at ``path`` with the initial key.

    Args:
        path: the log (file path or PostgreSQL URL).
        key: a :class:`VerificationKey`, the bytes of a key file, or the raw 32-byte initial key (then
            checkpoints are checked against the public key stored in the log, which is weaker).
        checkpoint: an earlier checkpoint held by the verifier; detects truncation, rollback and forks.
        progress: called with ``(entries done, entries total)`` now and then.
        workers: scan a large SQLite log in this many processes (the result is the same; any irregularity is
            re-examined by the sequential scan, which also classifies it).

    Raises:
        AuditError: ``path`` is not a log, or the key or checkpoint belongs to another log.
    """
    with storage_errors(path):
        store = open_store(path)
        try:
            return _verify(store, key, checkpoint, progress, workers)
        finally:
            store.close()


def _verify(
    store: LogStore,
    key: bytes | VerificationKey,
    checkpoint: SignedCheckpoint | None,
    progress: Callable[[int, int], None] | None,
    workers: int,
) -> VerifyReport:
    location = store.label
    raw_id = store.get_meta("log_id")
    if store.get_meta("format") is None or raw_id is None:
        raise AuditError("not a medfw audit log (meta missing)", path=location)
    log_id = raw_id.decode("utf-8", "replace")
    initial, pinned_pem = _resolve_key(key, log_id, location)
    # count(*) visits every row (a twentieth of the cost of the whole verification). It is needed up front only
    # for progress reports and to decide on a parallel scan; otherwise a scan that consumed every row gives it.
    total: int | None = store.count() if progress is not None or workers > 1 else None

    def report(**kw: Any) -> VerifyReport:
        nonlocal total
        if total is None:
            total = store.count()
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
    scan: _Scan | None = None
    if workers > 1 and total is not None and total >= _PARALLEL_MIN and isinstance(store, SqliteStore):
        scan = _parallel_scan(store, initial, log_id, workers)
    if scan is None:
        scan = _scan(store.iter_chunks(), keys, _Scan(), progress, total or 0)
    elif progress is not None:
        progress(scan.seq, total or 0)
    hashes, epoch, prev, bad, damaged = scan.hashes, scan.epoch, scan.prev, scan.bad, scan.damaged
    n = len(hashes)
    if total is None and bad is None and damaged is None:
        # Every row iter_chunks() yielded verified: the scan counted them; add any rows outside its range.
        total = n + store.count_outside()
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
    tree = MerkleTree(hashes)
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
