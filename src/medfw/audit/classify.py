"""What went wrong when a log does not verify: the classification of the first entry that breaks the chain.

The fast scan (:mod:`medfw.audit.scan`) only says *where* the chain broke. This slow path, run once for a log
that failed, parses the rows around that place and names what happened (:data:`medfw.audit.report.CLASSIFICATIONS`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from medfw.audit.keys import EpochKeys, tag_matches
from medfw.audit.record import RECORD_PREFIX, chain_suffix, entry_hash, parse_record
from medfw.audit.report import (
    COUNTER_RESET,
    DELETED,
    DUPLICATE,
    EDITED,
    INSERTED,
    REORDERED,
    TRUNCATED,
    WRONG_EPOCH_KEY,
)
from medfw.audit.scan import Scan
from medfw.errors import AuditError

__all__ = [
    "classify_failure",
    "torn",
]


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


def torn(rec: bytes, tag: bytes) -> bool:
    """True when a record looks like an incomplete write (cut short), not like edited content."""
    return len(tag) != 32 or not rec.startswith(RECORD_PREFIX) or not rec.endswith(b"}")


def classify_failure(
    rows: list[tuple[bytes, bytes]], result: Scan, keys: EpochKeys, state: bytes | None, cp_size: int | None
) -> tuple[int | None, str, str]:
    """Classify the entry ``result.bad`` of ``rows`` (all stored rows): (first bad seq, classification, message).

    ``state`` is the writer state stored in the log (it bounds the epochs worth trying for a wrongly keyed entry).
    """
    assert result.bad is not None
    try:
        state_epoch = int(json.loads(state or b"{}")["epoch"])
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
    return _classify(ctx, result.bad)
