"""Scan a large SQLite log in several processes: forked early, joined at the end, results in shared memory.

The log's positions are cut into parts aligned to ``2**ALIGN_BITS`` entries. The verifier forks one child per part
but the first as soon as it knows the key (:meth:`ParallelScan.start`), goes on with its own preparations (loading
the checkpoint key, checking held checkpoints) and then scans the first part itself (:meth:`ParallelScan.join`).
Each part starts from the chain state its first record claims, checks every entry as :func:`medfw.audit.scan.scan`
does and hashes the Merkle levels ``0..ALIGN_BITS`` of its range into an anonymous shared mapping, where the levels
of consecutive parts line up into the whole tree's. The parent then checks that each part starts exactly where
the one before ended (seq, previous hash, and an epoch equal or one above); anything irregular (a failed entry, a
gap, a torn or damaged row) makes :meth:`join` return None, and the verifier rescans sequentially, which also
classifies what it finds. A clean parallel result is therefore the same as the sequential one.
"""

from __future__ import annotations

import binascii
import contextlib
import mmap
import os
import signal
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from medfw.audit.keys import EpochKeys
from medfw.audit.merkle import FlatLevel, MerkleTree
from medfw.audit.scan import Scan, scan, tail_fields
from medfw.audit.store_sqlite import SqliteStore

__all__ = ["ALIGN_BITS", "PARALLEL_MIN", "ParallelScan"]

#: logs with fewer entries are scanned in one process (forking costs more than it saves)
PARALLEL_MIN = 20_000
#: parts start at multiples of 2**ALIGN_BITS, so each part hashes its own Merkle levels up to that height
ALIGN_BITS = 12
#: entries' worth of other work the parent does while the children scan (loading the signature code, checking
#: checkpoints), so its own part is that much smaller ...
PARENT_HANDICAP = 10_000
#: ... less the head start a child needs to walk the key ratchet to its part's first epoch (epochs per entry's worth)
RATCHET_STEPS_PER_ENTRY = 6
#: part header in shared memory: clean, first seq, first epoch, last epoch, count, first prev (hex), last hash
_HEADER = struct.Struct("<?qqqq64s32s")


@dataclass(frozen=True)
class _Part:
    lo: int
    hi: int
    header: int  # offset of this part's header in the shared mapping


class ParallelScan:
    """A scan split across processes (see the module docstring). Use :meth:`start`, then :meth:`join` once."""

    def __init__(self, store: SqliteStore, keys: EpochKeys, top: int, workers: int, handicap: int = 0) -> None:
        self._store, self._keys, self._top = store, keys, top
        self._parts = [_Part(lo, hi, i * _HEADER.size) for i, (lo, hi) in enumerate(_split(top, workers, handicap))]
        self._levels: list[int] = []  # offset of each level's nodes in the mapping
        offset = len(self._parts) * _HEADER.size
        for level in range(ALIGN_BITS + 1):
            self._levels.append(offset)
            offset += (top >> level) * 32
        self._mem = mmap.mmap(-1, max(offset, 1))
        self._children: list[int] = []

    @classmethod
    def start(
        cls, store: SqliteStore, keys: EpochKeys, workers: int, *, min_size: int = PARALLEL_MIN
    ) -> ParallelScan | None:
        """Fork the children (every part but the first) and return the running scan; None when not worth it."""
        top = store.max_pos() + 1
        if workers < 2 or top < max(min_size, 1):
            return None
        middle = next(store.iter_rows(top // 2, top), None)
        fields = tail_fields(middle[0]) if middle is not None else None
        walk = fields[0] if fields is not None else 0
        run = cls(store, keys, top, workers, max(PARENT_HANDICAP - walk // RATCHET_STEPS_PER_ENTRY, 0))
        for part in run._parts[1:]:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:  # pragma: no cover - runs in the child (its coverage is not collected)
                code = 1
                try:
                    child = SqliteStore(store.label)
                    run._scan_part(child, part)
                    code = 0
                finally:
                    os._exit(code)
            run._children.append(pid)
        return run

    def _scan_part(self, store: SqliteStore, part: _Part) -> None:
        """Scan one part and publish its header and Merkle levels (a part not clean publishes nothing)."""
        rows = store.iter_rows(part.lo, part.hi)
        first = next(rows, None)
        fields = tail_fields(first[0]) if first is not None else None
        if first is None or fields is None:
            return
        epoch, prev, seq = fields
        st = scan(_prepend(first, rows), self._keys, Scan(epoch=epoch, prev=prev, seq=seq))
        if st.bad is not None or st.damaged is not None or not st.hashes:
            return
        levels = MerkleTree(st.hashes).levels
        for level, base in enumerate(self._levels):
            if level < len(levels) and levels[level]:
                at = base + (part.lo >> level) * 32
                blob = b"".join(levels[level])
                self._mem[at : at + len(blob)] = blob
        header = _HEADER.pack(True, seq, epoch, st.epoch, len(st.hashes), prev, st.hashes[-1])
        self._mem[part.header : part.header + _HEADER.size] = header

    def cancel(self) -> None:
        """Stop and reap the children (the verifier returned before it needed the scan)."""
        for pid in self._children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> bool:
        """Wait for every child; True when all exited cleanly."""
        ok = True
        for pid in self._children:
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                ok = False
            else:
                ok = ok and os.waitstatus_to_exitcode(status) == 0
        self._children = []
        return ok

    def join(self) -> Scan | None:
        """Scan the first part here, wait for the children, and return the whole scan (None: rescan sequentially)."""
        try:
            self._scan_part(self._store, self._parts[0])
        finally:
            forked = len(self._children) == len(self._parts) - 1
            ok = self._reap() and forked
        return self._assemble() if ok else None

    def _assemble(self) -> Scan | None:
        st = Scan()
        for part in self._parts:
            clean, seq, epoch, last_epoch, count, prev, last = _HEADER.unpack_from(self._mem, part.header)
            if not clean or seq != st.seq or prev != st.prev:
                return None
            if not (st.epoch <= epoch <= st.epoch + 1) or (seq == 0 and epoch != 0):
                return None
            if part.hi != self._top and count != part.hi - part.lo:
                return None
            st.seq += count
            st.epoch = last_epoch
            st.prev = binascii.hexlify(last)
        view = memoryview(self._mem)
        st.tree = MerkleTree.from_levels(
            [FlatLevel(view, base, st.seq >> level) for level, base in enumerate(self._levels)]
        )
        return st


def _split(top: int, workers: int, handicap: int) -> list[tuple[int, int]]:
    """Cut positions ``[0, top)`` into at most ``workers`` aligned parts; the first is ``handicap`` smaller."""
    unit = 1 << ALIGN_BITS
    first = max(unit, (max(top - handicap, 0) // workers) // unit * unit)
    step = -(-max(top - first, 0) // max(workers - 1, 1))
    step = max(unit, -(-step // unit) * unit)
    return [(0, min(first, top))] + [(lo, min(lo + step, top)) for lo in range(first, top, step)]


def _prepend(first: tuple[bytes, bytes], rest: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    yield first
    yield from rest
