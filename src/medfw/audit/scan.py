"""The verifier's fast path: one pass over stored rows, checking each entry without parsing it.

Per entry: the entry hash ``SHA-256(0x00 || record)`` (also the chain hash of the next entry and the Merkle leaf),
the record's fixed chain tail ``,"epoch":E,"prev":"<hex>","seq":N}`` (``E`` equal to or one above the previous
entry's epoch, ``prev`` the previous entry's hash, ``N`` one above), the record prefix, and
``HMAC(M[E], entry_hash)`` with the key the verifier derived itself for that epoch, compared in constant time. The
first entry of a log must be epoch 0. The scan stops at the first entry that fails; :mod:`medfw.audit.verify`
then classifies it (see :mod:`medfw.audit.record` for why comparing the tail is equivalent to parsing).

Rows are checked a block at a time (:data:`BLOCK` rows), all or nothing: the entry hashes, hex forms and chain
tails of the whole block first (they need no key, and each is one list comprehension or one tight loop), then the
keys of the epochs the block opens (:meth:`medfw.audit.keys.EpochKeys.walk_keys`), then every tag, and the block's
tags are compared with the computed ones as one string in constant time. Both shapes of log are fast: in a log of
short sessions each entry opens an epoch and gets one keyed HMAC (with OpenSSL 3 ``_hashlib.hmac_new`` is cheaper
than the one-shot ``hmac.digest``, which looks the digest up again on every call); in a log written in batches an
epoch's HMAC is keyed once and copied per entry. A block with anything irregular in it is checked again entry by
entry (:func:`_check`), which stops at the first entry that fails, so the result is the same as checking each
entry in turn.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import hmac
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from itertools import islice, repeat
from typing import Any

from medfw.audit.keys import KDF_RATCHET, EpochKeys
from medfw.audit.merkle import LEAF_PREFIX, MerkleTree
from medfw.audit.record import CHAIN_TAIL, GENESIS_PREV, RECORD_PREFIX, chain_suffix, entry_hash

__all__ = ["Scan", "scan", "tail_fields", "with_progress"]

try:  # the C function behind hmac.new, without its Python wrapper
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _hmac_new = hmac.new  # type: ignore[assignment]

#: rows checked together by :func:`_block` (a chunk of a parallel scan is a whole number of blocks)
BLOCK = 2048
_TAIL = re.compile(rb',"epoch":(0|[1-9][0-9]{0,17}),"prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,17})\}\Z')


class Scan:
    """State of the fast scan: hashes so far, the last epoch, previous hash (hex), next seq, first failure.

    A plain class: the verifier's modules stay clear of :mod:`dataclasses` (it loads :mod:`inspect`, about 10 ms
    before the scan can start in a ``medfw audit verify`` process).
    """

    __slots__ = ("bad", "damaged", "epoch", "hashes", "key", "prev", "seq", "tree")

    def __init__(
        self,
        *,
        epoch: int = -1,
        prev: bytes = GENESIS_PREV.encode(),
        seq: int = 0,
        key: bytes | None = None,
    ) -> None:
        self.hashes: list[bytes] = []
        self.epoch = epoch
        self.prev = prev
        self.seq = seq
        #: the first entry that failed, or the storage error that stopped the scan
        self.bad: int | None = None
        self.damaged: str | None = None
        #: the finished Merkle tree, when a parallel scan built it (then ``hashes`` stays empty)
        self.tree: MerkleTree | None = None
        #: ``K[epoch]`` of a ``sha256-ratchet`` log after the scan (lets the next range go on without re-deriving it)
        self.key = key

    @property
    def size(self) -> int:
        """Entries verified."""
        return self.tree.size if self.tree is not None else len(self.hashes)

    def merkle(self) -> MerkleTree:
        """The Merkle tree over the verified entries."""
        return self.tree if self.tree is not None else MerkleTree(self.hashes)


def tail_fields(record: bytes) -> tuple[int, bytes, int] | None:
    """``(epoch, prev hex, seq)`` of the chain tail a record ends with, or None when it has none.

    Only a starting point for a scan of a range: the scan then checks the record itself (tail, prefix, HMAC), and
    the caller checks that the range joins the one before it.
    """
    m = _TAIL.search(record)
    return None if m is None else (int(m.group(1)), m.group(2), int(m.group(3)))


def with_progress(
    rows: Iterable[tuple[bytes, bytes]], progress: Callable[[int, int], None], total: int, start: int = 0
) -> Iterator[tuple[bytes, bytes]]:
    """Pass ``rows`` through, calling ``progress(done, total)`` every 4,096 rows."""
    done = start
    for row in rows:
        yield row
        done += 1
        if not done & 4095:
            progress(done, total)


def scan(rows: Iterable[tuple[bytes, bytes]], keys: EpochKeys, st: Scan) -> Scan:
    """Check rows until the first one that fails (see the module docstring); return the updated state."""
    # Nothing verified yet (epoch -1): the first entry must be seq 0 in epoch 0. No record may claim epoch -1.
    epoch = max(st.epoch, 0)
    if keys.kdf == KDF_RATCHET and st.key is not None:  # a chunk of a parallel scan: its worker walked the ratchet
        k, m = st.key, keys.mac_of(epoch, st.key)
    else:
        k, m = keys.key(epoch), keys.mac(epoch)
    start, st.bad, it = st.seq, None, iter(rows)
    while st.bad is None and st.damaged is None:
        block: list[tuple[bytes, bytes]] = []
        damaged = None
        try:
            block.extend(islice(it, BLOCK))  # on a storage error, the rows read before it stay in the block
        except sqlite3.DatabaseError as e:
            damaged = str(e)
        if not block and damaged is None:
            break
        done = _block(block, keys, st, epoch, k, m) if block else None
        if done is None:  # irregular (or a partial block before damage): entry by entry, which also stops at it
            epoch, k = _check(block, keys, st, epoch, k, m)
            m = keys.mac_of(epoch, k) if keys.kdf == KDF_RATCHET else keys.mac(epoch)
        else:
            epoch, k, m = done
        if st.bad is None:
            st.damaged = damaged
    if st.seq != start:
        st.epoch = epoch
    st.key = k if keys.kdf == KDF_RATCHET else None
    return st


def _block(  # noqa: PLR0917 - the state of scan, passed in locals
    block: list[tuple[bytes, bytes]], keys: EpochKeys, st: Scan, epoch: int, k: bytes, m: bytes
) -> tuple[int, bytes, bytes] | None:
    """Verify a whole block at once; return the last epoch, its ``K`` and ``M``, or None (nothing changed).

    All or nothing: the entry hashes, the chain tails and the epoch of every entry first (no key needed), then the
    keys of the epochs the block opens, then every tag, compared in constant time as one string. Any irregularity
    (a tail that is not the next one, a record without the prefix, a tag of another length, a tag that differs)
    returns None, and :func:`_check` goes through the block entry by entry to find the first bad one.
    """
    recs = [r for r, _ in block]
    tags = [t for _, t in block]
    if not all(map(bytes.startswith, recs, repeat(RECORD_PREFIX))) or set(map(len, tags)) != {32}:
        return None
    sha = hashlib.sha256
    hashes = [sha(LEAF_PREFIX + r).digest() for r in recs]  # the entry hash (record.entry_hash)
    hexes = list(map(binascii.hexlify, hashes))
    epochs = _epochs(recs, [st.prev, *hexes[:-1]], st.seq, epoch)
    if epochs is None:
        return None
    last = epochs[-1]
    new_keys = keys.walk_keys(epoch, k, last)
    macs = [m, *keys.macs_of(epoch + 1, new_keys)]  # macs[e - epoch] = M[e]
    if (last - epochs[0] + 1) * 4 > len(epochs):  # short epochs (a log of sessions): one keyed HMAC per entry
        mine = [_hmac_new(macs[e - epoch], h, "sha256").digest() for e, h in zip(epochs, hashes, strict=True)]
    else:  # long epochs: each epoch's HMAC keyed once and copied per entry
        mine, i = [], 0
        for e in range(epochs[0], last + 1):
            j = bisect.bisect_right(epochs, e, i)
            proto = _hmac_new(macs[e - epoch], digestmod="sha256").copy
            mine += [_tag(proto, h) for h in hashes[i:j]]
            i = j
    if not hmac.compare_digest(b"".join(mine), b"".join(tags)):
        return None
    st.hashes += hashes
    st.prev, st.seq = hexes[-1], st.seq + len(block)
    return last, (new_keys[-1] if new_keys else k), macs[-1]


def _tag(proto: Callable[[], Any], eh: bytes) -> bytes:
    t = proto()
    t.update(eh)
    digest: bytes = t.digest()
    return digest


def _epochs(recs: list[bytes], prevs: list[bytes], seq: int, epoch: int) -> list[int] | None:
    """The epoch of each record, when each ends in the chain tail that follows its predecessor; else None.

    An entry's epoch is its predecessor's or one above (never above at seq 0). The step the last entry took is
    tried first: in a log of sessions every entry opens an epoch, in a log written in batches none does.
    """
    out: list[int] = []
    add, tail, step = out.append, CHAIN_TAIL, 0
    for s, (r, p) in enumerate(zip(recs, prevs, strict=True), seq):
        if r.endswith(tail % (epoch + step, p, s)):  # step is 1 only after an entry of seq > 0
            epoch += step
        elif r.endswith(tail % (epoch + 1 - step, p, s)) and (s or step):
            epoch, step = epoch + 1 - step, 1 - step
        else:
            return None
        add(epoch)
    return out


def _check(  # noqa: PLR0917 - the exact loop of scan, its state passed in locals
    rows: list[tuple[bytes, bytes]], keys: EpochKeys, st: Scan, epoch: int, k: bytes, m: bytes
) -> tuple[int, bytes]:
    """Check ``rows`` entry by entry: appends verified entry hashes, advances ``st.seq`` and ``st.prev`` and sets
    ``st.bad`` at the first entry that fails; returns the last epoch and its ``K``."""
    seq, prev = st.seq, st.prev
    for rec, tag in rows:
        eh = entry_hash(rec)
        cur = rec.endswith(chain_suffix(epoch, prev, seq))
        nxt = not cur and seq and rec.endswith(chain_suffix(epoch + 1, prev, seq))
        if not rec.startswith(RECORD_PREFIX) or not (cur or nxt):
            st.bad = seq
            break
        if nxt:  # the first entry of the next epoch
            nk = keys.walk(epoch, k, epoch + 1)
            nm = keys.mac_of(epoch + 1, nk)
        else:
            nk, nm = k, m
        if not hmac.compare_digest(_hmac_new(nm, eh, "sha256").digest(), tag):
            st.bad = seq
            break
        epoch, k, m = epoch + int(bool(nxt)), nk, nm
        st.hashes.append(eh)
        prev = binascii.hexlify(eh)
        seq += 1
    st.seq, st.prev = seq, prev
    return epoch, k
