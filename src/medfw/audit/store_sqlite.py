"""An audit log in one SQLite file (WAL, ``synchronous=FULL``, ``secure_delete=ON``); see :mod:`medfw.audit.store`."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medfw.audit.store import LogStore
from medfw.errors import AuditError, StorageError

__all__ = ["SqliteStore"]

#: the entries of a range of positions; SQLite columns take any type, so a value an attacker stored as TEXT or
#: INTEGER is read as its bytes (and then fails verification like any other edited entry)
_ROWS = "SELECT CAST(record AS BLOB), CAST(tag AS BLOB) FROM entries WHERE pos >= ? AND pos < ? ORDER BY pos"
_FETCH = 512  # rows per fetch for iter_chunks (the verifier reads the cursor directly, see iter_rows)


class SqliteStore(LogStore):
    """A log in one SQLite file (WAL, ``synchronous=FULL``)."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        p = Path(path)
        self.label = str(p)
        if create:
            # The log holds the current sealing key and the checkpoint private key: owner-only from the start
            # (SQLite gives its -wal and -shm files the same mode).
            try:
                os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                raise AuditError("audit log already exists", path=self.label) from None
            except OSError as e:
                raise StorageError(f"cannot create the audit log: {e.strerror}", path=self.label) from None
        elif not p.is_file():
            raise AuditError("audit log not found", path=self.label)
        try:
            self._db = sqlite3.connect(str(p), isolation_level=None, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
        except sqlite3.DatabaseError as e:
            raise AuditError(f"not a medfw audit log (SQLite: {e})", path=self.label) from None

    def exists(self) -> bool:
        try:
            row = self._db.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        except sqlite3.DatabaseError as e:
            raise AuditError(f"not a medfw audit log (SQLite: {e})", path=self.label) from None
        return bool(row[0])

    def create(self, meta: dict[str, bytes]) -> None:
        self._db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)")
        self._db.execute("CREATE TABLE entries (pos INTEGER PRIMARY KEY, record BLOB NOT NULL, tag BLOB NOT NULL)")
        self._db.execute(
            "CREATE TABLE checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL,"
            " document BLOB NOT NULL)"
        )
        self._db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", list(meta.items()))

    @contextmanager
    def write(self, *, initial: bool = False) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StorageError(f"cannot lock the audit log: {e}", path=self.label) from None
        try:
            yield
        except BaseException as e:
            self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"audit log write failed: {e}", path=self.label) from None
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as e:
            raise StorageError(f"cannot commit to the audit log: {e}", path=self.label) from None

    def get_meta(self, name: str) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        except sqlite3.DatabaseError as e:
            raise AuditError(f"not a medfw audit log (SQLite: {e})", path=self.label, field=name) from None
        return None if row is None else bytes(row[0])

    def put_meta(self, name: str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def delete_meta(self, name: str) -> None:
        self._db.execute("DELETE FROM meta WHERE name = ?", (name,))

    def vacuum(self) -> None:
        """Rewrite the file without free pages, then truncate the WAL (after removing secrets)."""
        try:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as e:
            raise StorageError(f"cannot vacuum the audit log: {e}", path=self.label) from None

    def insert_entries(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        try:
            self._db.executemany("INSERT INTO entries (pos, record, tag) VALUES (?, ?, ?)", rows)
        except sqlite3.IntegrityError:
            raise AuditError(
                f"entry {rows[0][0]} already exists: the writer state does not match the log (counter reset?)",
                path=self.label,
                field="state",
            ) from None

    def insert_checkpoint(self, size: int, document: bytes) -> None:
        self._db.execute("INSERT INTO checkpoints (size, document) VALUES (?, ?)", (size, document))

    def iter_chunks(self, lo: int = 0, hi: int | None = None) -> Iterator[list[tuple[bytes, bytes]]]:
        cur = self._db.execute(
            _ROWS,
            (lo, hi if hi is not None else 2**62),
        )
        while True:
            rows: list[tuple[bytes, bytes]] = cur.fetchmany(_FETCH)
            if not rows:
                return
            yield rows

    def iter_rows(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        cur: Iterator[tuple[bytes, bytes]] = self._db.execute(
            _ROWS,
            (lo, hi if hi is not None else 2**62),
        )
        return cur

    def meta_names(self) -> list[str]:
        return [str(n) for (n,) in self._db.execute("SELECT name FROM meta")]

    def all_meta(self) -> dict[str, bytes]:
        try:
            return {str(n): bytes(v) for n, v in self._db.execute("SELECT name, value FROM meta")}
        except sqlite3.DatabaseError as e:
            raise AuditError(f"not a medfw audit log (SQLite: {e})", path=self.label) from None

    def checkpoints(self) -> list[tuple[int, bytes]]:
        return [(int(s), bytes(d)) for s, d in self._db.execute("SELECT size, document FROM checkpoints ORDER BY id")]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def count_outside(self, lo: int = 0, hi: int | None = None) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM entries WHERE pos < ? OR pos >= ?", (lo, hi if hi is not None else 2**62)
        ).fetchone()
        return int(row[0])

    def max_pos(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(pos), -1) FROM entries").fetchone()[0])

    def after_epoch_change(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as e:
            raise StorageError(f"cannot checkpoint the WAL: {e}", path=self.label) from None

    def close(self) -> None:
        self._db.close()
