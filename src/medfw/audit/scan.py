"""The verifier's fast path: one pass over stored rows, checking each entry without parsing it.

Per entry: the entry hash ``SHA-256(0x00 || record)`` (also the chain hash of the next entry and the Merkle leaf),
the record's fixed chain tail ``,"epoch":E,"prev":"<hex>","seq":N}`` (``E`` equal to or one above the previous
entry's epoch, ``prev`` the previous entry's hash, ``N`` one above), the record prefix, and
``HMAC(M[E], entry_hash)`` with the key the verifier derived itself for that epoch, compared in constant time. The
first entry of a log must be epoch 0. The scan stops at the first entry that fails; :mod:`medfw.audit.verify`
then classifies it (see :mod:`medfw.audit.record` for why comparing the tail is equivalent to parsing).

Both shapes of log are fast. A log written in batches has long epochs: the HMAC of an epoch is keyed once and
copied per entry. A log written by many short sessions has an epoch per session: its key is one step of the
SHA-256 ratchet, walked inline, and its single tag one keyed HMAC object (with OpenSSL 3 this is about 40 %
cheaper than the one-shot ``hmac.digest``, which looks the digest up again on every call), so nothing is keyed
twice. The whole tail is formatted once per entry (the epoch part is made once per epoch) and compared with one
``endswith``; only a record that does not end in the current epoch is tried against the next one.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from medfw.audit.keys import KDF_RATCHET, EpochKeys
from medfw.audit.merkle import MerkleTree
from medfw.audit.record import GENESIS_PREV, RECORD_PREFIX

__all__ = ["Scan", "scan", "tail_fields", "with_progress"]

try:  # the C function behind hmac.new, without its Python wrapper
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # pragma: no cover - Python built without OpenSSL
    _hmac_new = hmac.new  # type: ignore[assignment]

_TAIL = re.compile(rb',"epoch":(0|[1-9][0-9]{0,17}),"prev":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,17})\}\Z')


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
    #: ``K[epoch]`` of a ``sha256-ratchet`` log after the scan (lets the next range go on without re-deriving it)
    key: bytes | None = None

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
    ratchet = keys.kdf == KDF_RATCHET
    if ratchet and st.key is not None:  # a chunk of a parallel scan: its worker walked the ratchet to it
        k, m = st.key, keys.mac_of(epoch, st.key)
    else:
        k, m = keys.key(epoch), keys.mac(epoch)
    start = st.seq
    st.bad = None
    seq, epoch, k = _check(rows, keys, st, epoch, k, m)
    if seq != start:
        st.epoch = epoch
    st.key = k if ratchet else None
    st.seq = seq
    return st


def _check(  # noqa: PLR0917 - the inner loop of scan, its state passed in locals
    rows: Iterable[tuple[bytes, bytes]], keys: EpochKeys, st: Scan, epoch: int, k: bytes, m: bytes
) -> tuple[int, int, bytes]:
    """The loop of :func:`scan`: appends verified entry hashes, sets ``st.bad``/``st.damaged``/``st.prev``;
    returns the next seq, the last epoch and its key."""
    add, seq, prev = st.hashes.append, st.seq, st.prev
    ratchet, (pe, pm) = keys.kdf == KDF_RATCHET, keys.ratchet_prefixes
    proto: Any = None  # the epoch's keyed HMAC, made at its second entry and copied for each further one
    fresh = False  # the last entry opened an epoch: in a log of short sessions, so will the next one
    head, nhead = b',"epoch":%d,"prev":"' % epoch, b',"epoch":%d,"prev":"' % (epoch + 1)
    prefix, new_leaf, sha = RECORD_PREFIX, hashlib.sha256(b"\x00").copy, hashlib.sha256
    eq, hexlify, keyed = hmac.compare_digest, binascii.hexlify, _hmac_new
    try:
        for rec, tag in rows:
            h = new_leaf()
            h.update(rec)
            eh = h.digest()
            if fresh:
                nxt = seq and rec.endswith(b'%b%b","seq":%d}' % (nhead, prev, seq))
                cur = not nxt and rec.endswith(b'%b%b","seq":%d}' % (head, prev, seq))
            else:
                cur = rec.endswith(b'%b%b","seq":%d}' % (head, prev, seq))
                nxt = not cur and seq and rec.endswith(b'%b%b","seq":%d}' % (nhead, prev, seq))
            if not rec.startswith(prefix):
                ok = False
            elif cur:
                if proto is None:
                    proto = keyed(m, digestmod="sha256").copy
                t = proto()
                t.update(eh)
                ok, fresh = eq(t.digest(), tag), False
            elif nxt:  # the first entry of the next epoch
                if ratchet:
                    eb = (epoch + 1).to_bytes(8, "big")
                    nk = sha(pe + eb + k).digest()
                    nm = sha(pm + eb + nk).digest()
                else:
                    nk, nm = k, keys.mac(epoch + 1)
                ok = fresh = eq(keyed(nm, eh, "sha256").digest(), tag)
                if ok:
                    epoch, k, m, proto = epoch + 1, nk, nm, None
                    head, nhead = nhead, b',"epoch":%d,"prev":"' % (epoch + 1)
            else:
                ok = False
            if not ok:
                st.bad = seq
                break
            add(eh)
            prev = hexlify(eh)
            seq += 1
    except sqlite3.DatabaseError as e:
        st.damaged = str(e)
    st.prev = prev
    return seq, epoch, k
