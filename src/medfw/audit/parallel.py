"""Scan a large SQLite log in several processes: chunks handed out from a queue, results in shared memory.

The log's positions are cut into chunks aligned to ``2**bits`` entries (:func:`chunk_bits`). The verifier forks its
workers as soon as it knows the key (:meth:`ParallelScan.start`); each takes the next chunk from a queue (a pipe
filled with the chunk numbers in order before the fork, read four bytes at a time), scans it and takes the next,
until the queue is empty. The verifier itself joins in once its own preparations are done (loading the checkpoint
key, checking held checkpoints: :meth:`ParallelScan.join`), so no process waits for a share that was guessed too
large, whatever else the machine is doing.

Each chunk starts from the chain state its first record claims and is checked entry by entry exactly as
:func:`medfw.audit.scan.scan` does; its Merkle levels ``0..bits`` go into an anonymous shared mapping, where the
levels of consecutive chunks line up into the whole tree's. A worker takes chunks in increasing order, so for a
log of short sessions (one epoch per entry) it walks the key ratchet forward from where its last chunk ended, never
from the start. The parent then checks that each chunk starts exactly where the one before ended (seq, previous
hash, and an epoch equal or one above); anything irregular (a failed entry, a gap, a torn or damaged row, a chunk
no worker finished) makes :meth:`join` return None, and the verifier rescans sequentially, which also classifies
what it finds. A clean parallel result is therefore the same as the sequential one.
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

from medfw.audit.keys import KDF_RATCHET, EpochKeys
from medfw.audit.merkle import FlatLevel, MerkleTree
from medfw.audit.scan import Scan, scan, tail_fields
from medfw.audit.store_sqlite import SqliteStore

__all__ = ["MIN_BITS", "PARALLEL_MIN", "ParallelScan", "chunk_bits", "chunks"]

#: logs with fewer entries are scanned in one process (forking costs more than it saves)
PARALLEL_MIN = 20_000
#: chunks hold at least 2**MIN_BITS entries (about 8 ms of work: fine enough that workers finish together) ...
MIN_BITS = 11
#: ... and there are at most this many (the queue must fit in a pipe's buffer: four bytes per chunk)
MAX_CHUNKS = 8192
#: chunk header in shared memory: clean, first seq, first epoch, last epoch, count, first prev (hex), last hash
_HEADER = struct.Struct("<?qqqq64s32s")
_INDEX = struct.Struct("<I")
#: the mapping starts with one byte a worker sets when a chunk fails, so that the others stop early
_STOP = 1


def chunk_bits(top: int) -> int:
    """Alignment of the chunks for a log of ``top`` positions (``MIN_BITS``, larger for very large logs)."""
    return max(MIN_BITS, (max(top, 1) - 1).bit_length() - MAX_CHUNKS.bit_length() + 1)


def chunks(top: int) -> list[tuple[int, int]]:
    """Cut positions ``[0, top)`` into consecutive chunks aligned to ``2**chunk_bits(top)``."""
    unit = 1 << chunk_bits(top)
    return [(lo, min(lo + unit, top)) for lo in range(0, top, unit)]


@dataclass
class _Position:
    """Where a worker's key ratchet stands: ``K[epoch]`` (only for ``sha256-ratchet`` logs)."""

    epoch: int = 0
    key: bytes | None = None


class ParallelScan:
    """A scan split across processes (see the module docstring). Use :meth:`start`, then :meth:`join` once."""

    def __init__(self, store: SqliteStore, keys: EpochKeys, top: int) -> None:
        self._store, self._keys, self._top = store, keys, top
        self._bits = chunk_bits(top)
        self._chunks = chunks(top)
        self._levels: list[int] = []  # offset of each level's nodes in the mapping
        offset = _STOP + len(self._chunks) * _HEADER.size
        for level in range(self._bits + 1):
            self._levels.append(offset)
            offset += (top >> level) * 32
        self._mem = mmap.mmap(-1, max(offset, 1))
        self._queue, feed = os.pipe()
        queue = b"".join(_INDEX.pack(i) for i in range(len(self._chunks)))
        try:
            os.set_blocking(feed, False)  # a pipe smaller than the queue (a user over the pipe quota): never block
            #: False when the whole queue did not fit in the pipe: then there is no parallel scan (see start)
            self.queued = os.write(feed, queue) == len(queue)
        except BlockingIOError:
            self.queued = False
        finally:
            os.close(feed)  # an empty queue then reads as end of file
        self._children: list[int] = []

    @classmethod
    def start(
        cls, store: SqliteStore, keys: EpochKeys, workers: int, *, min_size: int = PARALLEL_MIN
    ) -> ParallelScan | None:
        """Fork ``workers - 1`` children that start on the queue; None when the log is too small to be worth it."""
        top = store.max_pos() + 1
        if workers < 2 or top < max(min_size, 1):
            return None
        run = cls(store, keys, top)
        if not run.queued:
            os.close(run._queue)
            return None
        for _ in range(workers - 1):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:  # pragma: no cover - runs in the child (its coverage is not collected)
                code = 1
                try:
                    run._work(SqliteStore(store.label))
                    code = 0
                finally:
                    os._exit(code)
            run._children.append(pid)
        return run

    def _work(self, store: SqliteStore) -> None:
        """Scan chunks from the queue until it is empty or a chunk fails (here or in another worker)."""
        pos = _Position()
        while not self._mem[0] and len(b := os.read(self._queue, _INDEX.size)) == _INDEX.size:
            (i,) = _INDEX.unpack(b)
            if not self._scan_chunk(store, i, pos):
                self._mem[0] = 1  # the others stop too: the verifier rescans sequentially anyway
                return

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
        key = self._walk(pos, epoch)
        st = scan(_prepend(first, rows), self._keys, Scan(epoch=epoch, prev=prev, seq=seq, key=key))
        if st.bad is not None or st.damaged is not None or not st.hashes:
            return False
        if st.key is not None:
            pos.epoch, pos.key = st.epoch, st.key
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

    def _walk(self, pos: _Position, epoch: int) -> bytes | None:
        """``K[epoch]`` of a ``sha256-ratchet`` log, walked forward from this worker's last chunk when it can be."""
        if self._keys.kdf != KDF_RATCHET:
            return None
        if pos.key is None or epoch < pos.epoch:
            return self._keys.key(epoch)
        return self._keys.walk(pos.epoch, pos.key, epoch)

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
        with contextlib.suppress(OSError):
            os.close(self._queue)
        return ok

    def join(self) -> Scan | None:
        """Scan chunks here until the queue is empty, wait for the children, and return the whole scan.

        None: something was irregular (see the module docstring); the caller rescans sequentially.
        """
        try:
            self._work(self._store)
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
