"""All-or-nothing changes to a TUF repository directory.

A :class:`Transaction` collects every file an operation writes (metadata versions, entry points, target images,
online key files), then :meth:`Transaction.commit` writes them in order — versioned files and targets first, the
entry points (``root.json``, ``targets.json``, ``snapshot.json``, ``timestamp.json``) last — under a journal:

1. ``.medfw-txn/journal.json`` lists each path and a backup of its previous bytes (or that it did not exist),
   written and fsynced before the first change;
2. each file is replaced atomically (temporary file, fsync, rename);
3. deleting the journal is the commit point.

A failure in step 2 restores every file at once; a crash (the process killed) leaves the journal, and the next
:func:`recover` — run whenever the repository is opened for writing — restores the previous bytes. Either way the
repository is byte-identical to what it was before the operation.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medfw._io import atomic_write
from medfw.errors import StorageError

__all__ = ["ENTRY_POINTS", "JOURNAL_DIR", "Transaction", "recover"]

JOURNAL_DIR = ".medfw-txn"
#: written last, in this order: a client reads timestamp first, so it changes last
ENTRY_POINTS = ("metadata/root.json", "metadata/targets.json", "metadata/snapshot.json", "metadata/timestamp.json")

#: test hook: called with each relative path just before it is written (fault injection)
before_write: Callable[[str], None] | None = None


@dataclass(frozen=True)
class _Pending:
    rel: str
    data: bytes | None  # None: remove the file
    mode: int


def _order(rel: str) -> tuple[int, int, str]:
    """Sort key: everything else first, then the entry points in :data:`ENTRY_POINTS` order."""
    if rel in ENTRY_POINTS:
        return (1, ENTRY_POINTS.index(rel), rel)
    return (0, 0, rel)


class Transaction:
    """The files one repository operation writes, committed all together or not at all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: dict[str, _Pending] = {}

    def put(self, rel: str, data: bytes, *, mode: int = 0o644) -> None:
        """Stage ``data`` for ``rel`` (a path relative to the repository; a later put replaces an earlier one)."""
        self._pending[rel] = _Pending(rel, data, mode)

    def remove(self, rel: str) -> None:
        """Stage the removal of ``rel`` (nothing happens if it does not exist)."""
        self._pending[rel] = _Pending(rel, None, 0)

    def staged(self, rel: str) -> bytes | None:
        """The bytes staged for ``rel``, if any (None also for a staged removal)."""
        p = self._pending.get(rel)
        return None if p is None else p.data

    @property
    def paths(self) -> list[str]:
        """The staged paths in write order."""
        return sorted(self._pending, key=_order)

    def commit(self) -> list[str]:
        """Write every staged file (see the module docstring); return the paths written.

        Raises:
            StorageError: a write failed; every file was restored to its previous bytes.
        """
        if not self._pending:
            return []
        journal = self.root / JOURNAL_DIR
        if journal.exists():
            recover(self.root)
        order = self.paths
        entries = []
        journal.mkdir(mode=0o700)
        for i, rel in enumerate(order):
            target = self.root / rel
            existed = target.is_file()
            if existed:
                shutil.copy2(target, journal / str(i))
            entries.append({"path": rel, "existed": existed, "backup": str(i)})
        created_dirs = [str(d.relative_to(self.root)) for d in self._missing_dirs(order)]
        atomic_write(
            journal / "journal.json",
            json.dumps({"files": entries, "dirs": created_dirs}).encode(),
            mode=0o600,
        )
        try:
            for rel in order:
                if before_write is not None:
                    before_write(rel)
                p = self._pending[rel]
                if p.data is None:
                    (self.root / rel).unlink(missing_ok=True)
                    continue
                (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.root / rel, p.data, mode=p.mode, overwrite=True)
        except Exception as e:
            recover(self.root)
            raise StorageError(f"repository update failed and was rolled back: {e}", path=str(self.root)) from e
        shutil.rmtree(journal)
        return order

    def _missing_dirs(self, order: list[str]) -> list[Path]:
        missing: set[Path] = set()
        for rel in order:
            d = (self.root / rel).parent
            while d != self.root and not d.exists():
                missing.add(d)
                d = d.parent
        return sorted(missing, key=lambda d: len(d.parts), reverse=True)


def recover(root: Path) -> bool:
    """Undo an interrupted transaction in ``root`` (restore every journaled file); True when one was undone.

    Raises:
        StorageError: the journal is unreadable (the repository needs an operator).
    """
    journal = root / JOURNAL_DIR
    if not journal.exists():
        return False
    index = journal / "journal.json"
    if not index.is_file():  # killed before the journal was complete: nothing was changed yet
        shutil.rmtree(journal)
        return True
    try:
        doc = json.loads(index.read_bytes())
        files = [(str(e["path"]), bool(e["existed"]), str(e["backup"])) for e in doc["files"]]
        dirs = [str(d) for d in doc.get("dirs", [])]
    except (ValueError, KeyError, TypeError) as e:
        raise StorageError(f"unreadable repository journal: {e}", path=str(index)) from None
    for rel, existed, backup in files:
        target = root / rel
        if existed:
            data = (journal / backup).read_bytes()
            mode = (journal / backup).stat().st_mode & 0o777
            if not target.is_file() or target.read_bytes() != data:
                atomic_write(target, data, mode=mode, overwrite=True)
        elif target.exists():
            target.unlink()
    for d in dirs:
        path = root / d
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    shutil.rmtree(journal)
    _fsync_dir(root)
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
