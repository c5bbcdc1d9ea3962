"""The verifier's fast path: one pass over the stored rows, in one process or split across several.

Per entry, without parsing: the entry hash ``SHA-256(0x00 || record)`` (also the chain hash of the next entry and
the Merkle leaf), the record's fixed chain tail (``epoch`` equal to or one above the previous entry's, ``prev``
equal to the previous entry's hash, ``seq`` one above), the record prefix, and ``HMAC(M[epoch], entry_hash)``
with the key the verifier derived itself for that epoch, compared in constant time. The first entry must be
epoch 0. The scan stops at the first entry that fails; :mod:`medfw.audit.verify` then classifies it.

Two shapes of log are both fast. A log written in batches has long epochs: the HMAC for an epoch is keyed once
(a pyca/cryptography prototype) and copied per entry. A log written by many short sessions has an epoch per
session: its key is one step of the SHA-256 ratchet and its single tag a one-shot ``hmac.digest``, so nothing is
keyed twice.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import multiprocessing
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC as _HMAC

from medfw.audit.keys import KDF_RATCHET, EpochKeys
from medfw.audit.merkle import MerkleTree
from medfw.audit.record import GENESIS_PREV, RECORD_PREFIX, parse_record
from medfw.audit.store import LogStore, SqliteStore, open_store
from medfw.errors import AuditError

__all__ = ["PARALLEL_MIN", "Scan", "parallel_scan", "scan"]

_SHA256 = SHA256()

try:  # the C function behind hmac.digest, without its Python wrapper (a third of a one-shot tag's cost)
    from _hashlib import hmac_digest as _hmac_digest
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _hmac_digest = hmac.digest  # type: ignore[assignment]
PARALLEL_MIN = 20_000


@dataclass
class Scan:
    """State of the fast scan: hashes so far, the last epoch, previous hash (hex), next seq, first failure."""

    hashes: list[bytes] = field(default_factory=list)
    epoch: int = -1
    prev: bytes = GENESIS_PREV.encode()
    seq: int = 0
    bad: int | None = None
    damaged: str | None = None
    #: the finished Merkle tree, when a parallel scan built it (then ``hashes`` stays empty)
    tree: MerkleTree | None = None

    @property
    def size(self) -> int:
        """Entries verified."""
        return self.tree.size if self.tree is not None else len(self.hashes)

    def merkle(self) -> MerkleTree:
        """The Merkle tree over the verified entries."""
        return self.tree if self.tree is not None else MerkleTree(self.hashes)


def scan(
    chunks: Iterator[list[tuple[bytes, bytes]]],
    keys: EpochKeys,
    st: Scan,
    progress: Callable[[int, int], None] | None = None,
    total: int = 0,
) -> Scan:
    """Check rows until the first one that fails (see the module docstring); return the updated state."""
    add = st.hashes.append
    seq, prev, start = st.seq, st.prev, st.seq
    # Nothing verified yet (epoch -1): the first entry must be seq 0 in epoch 0. No record may claim epoch -1,
    # so the fast path starts at epoch 0 rather than expecting a tail with "epoch":-1.
    epoch = st.epoch if st.epoch >= 0 else 0
    mac_of = keys.mac
    m = mac_of(epoch)
    # Logs of many short sessions change epoch at nearly every entry: walk the SHA-256 ratchet inline (one block
    # per key) instead of through the cached derivation, and tag with a one-shot HMAC.
    ratchet = keys.kdf == KDF_RATCHET
    pe, pm = keys.ratchet_prefixes
    k, kepoch = keys.key(epoch), epoch
    sha = hashlib.sha256
    proto: Callable[[], _HMAC] | None = None  # keyed once an epoch has a second entry
    head = b',"epoch":%d,"prev":"' % epoch  # the tail up to the prev hash changes only with the epoch
    prefix = RECORD_PREFIX
    new_leaf = hashlib.sha256(b"\x00").copy
    eq, hexlify, digest = hmac.compare_digest, binascii.hexlify, _hmac_digest
    bad: int | None = None
    try:
        for chunk in chunks:
            for rec, tag in chunk:
                h = new_leaf()
                h.update(rec)
                eh = h.digest()
                if rec.endswith(b'%b%b","seq":%d}' % (head, prev, seq)):
                    if proto is None:
                        proto = _HMAC(m, _SHA256).copy
                    t = proto()
                    t.update(eh)
                    if not (rec.startswith(prefix) and eq(t.finalize(), tag)):
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
                    if not ratchet:
                        m = mac_of(nxt)
                    else:
                        if nxt == kepoch + 1:
                            k = sha(pe + nxt.to_bytes(8, "big") + k).digest()
                        elif nxt != kepoch:
                            k = keys.key(nxt)
                        kepoch = nxt
                        m = sha(pm + nxt.to_bytes(8, "big") + k).digest()
                    if not eq(digest(m, eh, "sha256"), tag):
                        bad = seq
                        break
                    epoch, proto = nxt, None
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


#: parallel ranges start at multiples of 2**_ALIGN_BITS, so each part hashes its own Merkle levels up to that height
_ALIGN_BITS = 12

_Part = tuple[int, int, bytes, list[list[bytes]], int, bool]


def _scan_range(job: tuple[str, bytes, str, str, int, int]) -> _Part:
    """Scan positions ``[lo, hi)`` starting from the chain state the first record claims; hash its Merkle levels.

    Returns ``(first seq, first epoch, first prev, Merkle levels 0.._ALIGN_BITS of the range, last epoch, clean)``;
    the caller checks that consecutive ranges join up, and falls back to the sequential scan when anything is off.
    """
    location, initial, log_id, kdf, lo, hi = job
    store = open_store(location)
    try:
        chunks = store.iter_chunks(lo, hi)
        first = next(chunks, [])
        if not first:
            return 0, 0, b"", [], 0, False
        try:
            head = parse_record(first[0][0])
        except AuditError:
            return 0, 0, b"", [], 0, False
        if head.epoch < 0:
            return 0, 0, b"", [], 0, False
        keys = EpochKeys(initial, log_id, kdf)
        st = Scan(epoch=head.epoch, prev=head.prev.encode(), seq=head.seq)
        st = scan(_chain(first, chunks), keys, st)
        clean = st.bad is None and st.damaged is None
        levels = MerkleTree(st.hashes).levels[: _ALIGN_BITS + 1] if clean else []
        return head.seq, head.epoch, head.prev.encode(), levels, st.epoch, clean
    finally:
        store.close()


def _chain(
    first: list[tuple[bytes, bytes]], rest: Iterator[list[tuple[bytes, bytes]]]
) -> Iterator[list[tuple[bytes, bytes]]]:
    yield first
    yield from rest


def parallel_scan(store: LogStore, keys: EpochKeys, workers: int) -> Scan | None:
    """Scan a SQLite log in ``workers`` parts (this process takes the first); None when they do not join up.

    Each part also hashes the lower Merkle levels of its range, so the caller receives the finished tree
    (:attr:`Scan.tree`) instead of a list of leaves to hash alone.
    """
    if not isinstance(store, SqliteStore):
        return None
    initial = keys.key(0)
    top = store.max_pos() + 1
    unit = 1 << _ALIGN_BITS
    step = -(-top // workers)
    step = -(-step // unit) * unit
    jobs = [(store.label, initial, keys.log_id, keys.kdf, lo, min(lo + step, top)) for lo in range(0, top, step)]
    try:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(max(len(jobs) - 1, 1)) as pool:
            pending = pool.map_async(_scan_range, jobs[1:])
            parts = [_scan_range(jobs[0]), *pending.get()]
    except (OSError, ValueError):
        return None
    st = Scan()
    levels: list[list[bytes]] = [[] for _ in range(_ALIGN_BITS + 1)]
    for first_seq, first_epoch, first_prev, part, last_epoch, clean in parts:
        if not clean or first_seq != st.seq or first_prev != st.prev:
            return None
        if not (st.epoch <= first_epoch <= st.epoch + 1) or (first_seq == 0 and first_epoch != 0):
            return None
        for lv, nodes in zip(levels, part, strict=False):
            lv.extend(nodes)
        st.seq += len(part[0])
        st.epoch = last_epoch
        st.prev = binascii.hexlify(part[0][-1])
    st.tree = MerkleTree.from_levels(levels)
    return st
