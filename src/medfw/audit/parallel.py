"""Scan a large SQLite log in several processes: a segment each, chunks taken from the back, keys shared.

The log's positions are cut into chunks aligned to ``2**bits`` entries (:func:`chunk_bits`), and the chunks into
one contiguous segment per worker. The verifier forks its workers as soon as it knows the key
(:meth:`ParallelScan.start`) and is itself the worker of the first segment, which it starts once its own
preparations are done (loading the checkpoint key, checking held checkpoints: :meth:`ParallelScan.join`).

A chunk is checked from the sealing key of the epoch it starts in. In a ``sha256-ratchet`` log that key is the end
of a hash chain walked from the initial key through every earlier epoch: one step per entry in a log of short
sessions. So each worker goes through its own segment in order (the key at the end of a chunk starts the next),
and the worker of each later segment first walks the chain once to where its segment starts, publishing in shared
memory the key of each chunk start it passes. A worker that has finished its segment takes chunks from the back of
the segment with the most left (under one lock, a byte passed through a pipe), starting from the nearest key
published before the chunk. No process waits for a share that was guessed too large, whatever else the machine is
doing, and the chain is walked about once over the first segments in all, not once per worker.

Each chunk starts from the chain state its first record claims and is checked entry by entry exactly as
:func:`medfw.audit.scan.scan` does; its Merkle levels ``0..bits`` go into an anonymous shared mapping, where the
levels of consecutive chunks line up into the whole tree's. The parent then checks that each chunk starts exactly
where the one before ended (seq, previous hash, and an epoch equal or one above); anything irregular (a failed
entry, a gap, a torn or damaged row, a chunk no worker finished) makes :meth:`join` return None, and the verifier
rescans sequentially, which also classifies what it finds. A clean parallel result is therefore the same as the
sequential one.
"""

from __future__ import annotations

import binascii
import contextlib
import mmap
import os
import signal
import struct
from collections.abc import Iterator

from medfw.audit.keys import KDF_RATCHET, EpochKeys
from medfw.audit.merkle import FlatLevel, MerkleTree
from medfw.audit.scan import Scan, scan, tail_fields
from medfw.audit.store_sqlite import SqliteStore

__all__ = ["MIN_BITS", "PARALLEL_MIN", "ParallelScan", "chunk_bits", "chunks"]

#: logs with fewer entries are scanned in one process (forking costs more than it saves)
PARALLEL_MIN = 20_000
#: chunks hold at least 2**MIN_BITS entries (about 8 ms of work: fine enough that workers finish together) ...
MIN_BITS = 11
#: ... and there are at most this many (each has a header and a key slot in shared memory)
MAX_CHUNKS = 8192
#: chunk header in shared memory: clean, first seq, first epoch, last epoch, count, first prev (hex), last hash
_HEADER = struct.Struct("<?qqqq64s32s")
#: a published key: known, epoch, ``K[epoch]`` (an epoch at or before the one the chunk's first entry is in)
_SLOT = struct.Struct("<?q32s")
#: a segment's chunks not yet taken: ``[front, back)``
_ENDS = struct.Struct("<qq")
#: the mapping starts with one byte a worker sets when a chunk fails, so that the others stop early
_STOP = 1


def chunk_bits(top: int) -> int:
    """Alignment of the chunks for a log of ``top`` positions (``MIN_BITS``, larger for very large logs)."""
    return max(MIN_BITS, (max(top, 1) - 1).bit_length() - MAX_CHUNKS.bit_length() + 1)


def chunks(top: int) -> list[tuple[int, int]]:
    """Cut positions ``[0, top)`` into consecutive chunks aligned to ``2**chunk_bits(top)``."""
    unit = 1 << chunk_bits(top)
    return [(lo, min(lo + unit, top)) for lo in range(0, top, unit)]


class _Position:
    """Where a worker's key ratchet stands: ``K[epoch]`` (only for ``sha256-ratchet`` logs)."""

    __slots__ = ("epoch", "key")

    def __init__(self) -> None:
        self.epoch = 0
        self.key: bytes | None = None


class ParallelScan:
    """A scan split across processes (see the module docstring). Use :meth:`start`, then :meth:`join` once."""

    def __init__(self, store: SqliteStore, keys: EpochKeys, top: int, workers: int = 2) -> None:
        self._store, self._keys, self._top, self._workers = store, keys, top, workers
        self._ratchet = keys.kdf == KDF_RATCHET
        self._bits = chunk_bits(top)
        self._chunks = chunks(top)
        n = len(self._chunks)
        self._slots = _STOP + n * _HEADER.size
        self._ends = self._slots + n * _SLOT.size
        offset = self._ends + workers * _ENDS.size
        self._levels: list[int] = []  # offset of each level's nodes in the mapping
        for level in range(self._bits + 1):
            self._levels.append(offset)
            offset += (top >> level) * 32
        self._mem = mmap.mmap(-1, max(offset, 1))
        for w in range(workers):
            _ENDS.pack_into(self._mem, self._ends + w * _ENDS.size, w * n // workers, (w + 1) * n // workers)
        self._lock, self._unlock = os.pipe()
        os.write(self._unlock, b"\0")
        self._children: list[int] = []

    @classmethod
    def start(
        cls, store: SqliteStore, keys: EpochKeys, workers: int, *, min_size: int = PARALLEL_MIN
    ) -> ParallelScan | None:
        """Fork ``workers - 1`` children that start on their segments; None when the log is too small for it."""
        top = store.max_pos() + 1
        if workers < 2 or top < max(min_size, 1):
            return None
        run = cls(store, keys, top, workers)
        for me in range(1, workers):
            try:
                pid = os.fork()
            except OSError:
                break  # that segment has no worker of its own: the others take its chunks
            if pid == 0:  # pragma: no cover - runs in the child (its coverage is not collected)
                code = 1
                try:
                    run._work(SqliteStore(store.label), me)
                    code = 0
                finally:
                    os._exit(code)
            run._children.append(pid)
        return run

    def _work(self, store: SqliteStore, me: int) -> None:
        """Scan this worker's segment in order, then take chunks from the others until none is left."""
        pos = _Position()
        while not self._mem[0] and (i := self._claim(me)) is not None:
            if not self._scan_chunk(store, i, pos):
                self._mem[0] = 1  # the others stop too: the verifier rescans sequentially anyway
                return

    def _first_epoch(self, store: SqliteStore, i: int) -> int | None:
        """The epoch chunk ``i``'s first record claims, if it is one a walk may go to (at most one per entry)."""
        lo, hi = self._chunks[i]
        first = next(store.iter_rows(lo, hi), None)
        fields = tail_fields(first[0]) if first is not None else None
        return fields[0] if fields is not None and fields[0] <= lo else None

    def _claim(self, me: int) -> int | None:
        """The next chunk of this worker's segment, else the last one of the segment with the most left."""
        os.read(self._lock, 1)
        try:
            ends = [_ENDS.unpack_from(self._mem, self._ends + w * _ENDS.size) for w in range(self._workers)]
            w = me if ends[me][0] < ends[me][1] else max(range(self._workers), key=lambda v: ends[v][1] - ends[v][0])
            front, back = ends[w]
            if front >= back:
                return None
            taken, ends[w] = (front, (front + 1, back)) if w == me else (back - 1, (front, back - 1))
            _ENDS.pack_into(self._mem, self._ends + w * _ENDS.size, *ends[w])
            return int(taken)
        finally:
            os.write(self._unlock, b"\0")

    def _publish(self, i: int, epoch: int, key: bytes) -> None:
        """Make ``K[epoch]`` known as a starting point for chunk ``i`` (once: the first to know it writes it)."""
        at = self._slots + i * _SLOT.size
        os.read(self._lock, 1)
        try:
            if not self._mem[at]:
                self._mem[at + 1 : at + _SLOT.size] = _SLOT.pack(True, epoch, key)[1:]
                self._mem[at] = 1  # after the key: a reader that sees the flag sees the key
        finally:
            os.write(self._unlock, b"\0")

    def _key_for(self, store: SqliteStore, i: int, epoch: int, pos: _Position) -> bytes | None:
        """``K[epoch]`` for chunk ``i``: walked from this worker's position when its last chunk ended just before
        this one, else from the nearest key published for it or before it, publishing the start of each chunk
        passed on the way (so that the next chunk taken from the back of a segment needs no walk)."""
        if not self._ratchet:
            return None
        c, e, k = 0, 0, b""
        for c in range(i, 0, -1):
            known, e, k = _SLOT.unpack_from(self._mem, self._slots + c * _SLOT.size)
            if known and e <= epoch:
                break
        else:
            c, e, k = 0, 0, self._keys.key(0)
        if pos.key is not None and e <= pos.epoch <= epoch:
            c, e, k = i - 1, pos.epoch, pos.key  # this worker's last chunk ended here: nothing in between
        for mid in range(c + 1, i):
            claimed = self._first_epoch(store, mid)
            if claimed is None or not e <= claimed <= epoch:
                break  # irregular: the scan of that chunk fails and says so
            k, e = self._keys.walk(e, k, claimed), claimed
            self._publish(mid, e, k)
        return self._keys.walk(e, k, epoch)

    def _scan_chunk(self, store: SqliteStore, i: int, pos: _Position) -> bool:
        """Scan chunk ``i`` and publish its header and Merkle levels; False when it is not clean (nothing published)."""
        lo, hi = self._chunks[i]
        rows = store.iter_rows(lo, hi)
        first = next(rows, None)
        fields = tail_fields(first[0]) if first is not None else None
        if first is None or fields is None:
            return False
        epoch, prev, seq = fields
        if epoch > lo:  # an intact log opens at most one epoch per entry: never walk the ratchet to a claimed 10**17
            return False
        key = self._key_for(store, i, epoch, pos)
        st = scan(_prepend(first, rows), self._keys, Scan(epoch=epoch, prev=prev, seq=seq, key=key))
        if st.bad is not None or st.damaged is not None or not st.hashes:
            return False
        if st.key is not None:
            pos.epoch, pos.key = st.epoch, st.key
            if i + 1 < len(self._chunks):
                self._publish(i + 1, st.epoch, st.key)
        levels = MerkleTree(st.hashes).levels
        for level, base in enumerate(self._levels):
            if level < len(levels) and levels[level]:
                at = base + (lo >> level) * 32
                blob = b"".join(levels[level])
                self._mem[at : at + len(blob)] = blob
        header = _HEADER.pack(True, seq, epoch, st.epoch, len(st.hashes), prev, st.hashes[-1])
        at = _STOP + i * _HEADER.size
        self._mem[at : at + _HEADER.size] = header
        return True

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
        for fd in (self._lock, self._unlock):
            with contextlib.suppress(OSError):
                os.close(fd)
        return ok

    def join(self) -> Scan | None:
        """Scan here until no chunk is left, wait for the children, and return the whole scan.

        None: something was irregular (see the module docstring); the caller rescans sequentially.
        """
        try:
            self._work(self._store, 0)
        finally:
            ok = self._reap()
        return self._assemble() if ok else None

    def _assemble(self) -> Scan | None:
        st = Scan()
        for i, (lo, hi) in enumerate(self._chunks):
            clean, seq, epoch, last_epoch, count, prev, last = _HEADER.unpack_from(self._mem, _STOP + i * _HEADER.size)
            if not clean or seq != st.seq or prev != st.prev:
                return None
            if not (st.epoch <= epoch <= st.epoch + 1) or (seq == 0 and epoch != 0):
                return None
            if hi != self._top and count != hi - lo:
                return None
            st.seq += count
            st.epoch = last_epoch
            st.prev = binascii.hexlify(last)
        view = memoryview(self._mem)
        st.tree = MerkleTree.from_levels(
            [FlatLevel(view, base, st.seq >> level) for level, base in enumerate(self._levels)]
        )
        return st


def _prepend(first: tuple[bytes, bytes], rest: Iterator[tuple[bytes, bytes]]) -> Iterator[tuple[bytes, bytes]]:
    yield first
    yield from rest
