"""Append-only storage of sealed entries: SQLite (embedded default) or PostgreSQL (``postgresql://`` URLs).

Layout (both backends): ``meta(name, value)`` holds the log's identity, configuration, where its checkpoint
signing key lives (never the key itself) and its public key, and the writer state (current epoch key, next seq,
previous hash, compact Merkle range);
``entries(pos, record, tag)`` holds the canonical records and their HMAC tags in append order;
``checkpoints(id, size, document)`` holds every signed checkpoint the writer made.

Durability: every append is one transaction that inserts the entries *and* updates the writer state, so a
crash leaves either the old or the new state, never half of it. SQLite runs in WAL mode with
``synchronous=FULL`` (the WAL is fsynced at each commit) and ``secure_delete=ON`` (overwritten pages holding
an old epoch key are zeroed); after an epoch change the WAL is checkpointed and truncated so the old key
does not linger in it. PostgreSQL commits are durable with the server's default ``synchronous_commit=on``.

A PostgreSQL log lives in its own schema: ``postgresql://user@host:port/db?schema=NAME`` (``schema`` is taken
by medfw, every other parameter goes to libpq; default schema ``medfw_audit``).
"""

from __future__ import annotations

import os
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from medfw.errors import AuditError, StorageError

__all__ = ["LogStore", "PostgresStore", "SqliteStore", "is_url", "open_store", "storage_errors"]

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FETCH = 512  # rows per fetch: small enough that a batch stays in the CPU cache while it is checked


@contextmanager
def storage_errors(location: str | Path) -> Iterator[None]:
    """Translate database driver errors escaping from a store into :class:`StorageError` (never a traceback)."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        raise StorageError(f"audit log storage failed (SQLite: {e})", path=str(location)) from None
    except Exception as e:
        if type(e).__module__.startswith("psycopg"):
            raise StorageError(f"audit log storage failed (PostgreSQL: {e})".strip(), path=str(location)) from None
        raise


def is_url(path: str | Path) -> bool:
    """True for ``postgresql://`` / ``postgres://`` log locations."""
    s = str(path)
    return s.startswith(("postgresql://", "postgres://"))


class LogStore(ABC):
    """The storage interface the log and the verifier use. Writes happen only inside :meth:`write`."""

    label: str

    @abstractmethod
    def exists(self) -> bool:
        """True when the log's tables exist."""

    @abstractmethod
    def create(self, meta: dict[str, bytes]) -> None:
        """Create the tables and store ``meta`` (in one transaction with the first writes, see :meth:`write`)."""

    @contextmanager
    @abstractmethod
    def write(self, *, initial: bool = False) -> Iterator[None]:
        """A write transaction holding the log's write lock; commits on success, rolls back on error.

        ``initial`` is for the transaction that creates the tables (there is nothing to lock yet).
        """
        yield  # pragma: no cover

    @abstractmethod
    def get_meta(self, name: str) -> bytes | None:
        """Return a meta value."""

    @abstractmethod
    def put_meta(self, name: str, value: bytes) -> None:
        """Set a meta value (inside :meth:`write`)."""

    @abstractmethod
    def delete_meta(self, name: str) -> None:
        """Remove a meta value (inside :meth:`write`)."""

    @abstractmethod
    def insert_entries(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        """Insert ``(pos, record, tag)`` rows (inside :meth:`write`)."""

    @abstractmethod
    def insert_checkpoint(self, size: int, document: bytes) -> None:
        """Store a signed checkpoint document (inside :meth:`write`)."""

    @abstractmethod
    def iter_chunks(self, lo: int = 0, hi: int | None = None) -> Iterator[list[tuple[bytes, bytes]]]:
        """Yield lists of ``(record, tag)`` with ``lo <= pos < hi``, in append order (a few hundred at a time)."""

    @abstractmethod
    def max_pos(self) -> int:
        """The highest storage position in use (-1 when empty)."""

    def iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(record, tag)`` in append order."""
        for chunk in self.iter_chunks():
            yield from chunk

    def iter_rows(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(record, tag)`` with ``lo <= pos < hi`` in append order (the verifier's fast path)."""
        for chunk in self.iter_chunks(lo, hi):
            yield from chunk

    def all_meta(self) -> dict[str, bytes]:
        """Every meta value, in one read."""
        return {name: value for name in self.meta_names() if (value := self.get_meta(name)) is not None}

    @abstractmethod
    def meta_names(self) -> list[str]:
        """The names of the stored meta values."""

    @abstractmethod
    def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every stored ``(size, document)``, oldest first."""

    @abstractmethod
    def count(self) -> int:
        """Number of stored entries."""

    @abstractmethod
    def count_outside(self, lo: int = 0, hi: int | None = None) -> int:
        """Number of stored entries that :meth:`iter_chunks` with the same bounds does not yield.

        Cheap (two index range probes), unlike :meth:`count`, which visits every row: a scan that consumed
        every row of ``iter_chunks(lo, hi)`` knows the total without counting again.
        """

    def after_epoch_change(self) -> None:  # noqa: B027 - optional hook
        """Called after a commit that replaced the epoch key (backends purge old copies here)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""


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
            "SELECT record, tag FROM entries WHERE pos >= ? AND pos < ? ORDER BY pos",
            (lo, hi if hi is not None else 2**62),
        )
        while True:
            rows: list[tuple[bytes, bytes]] = cur.fetchmany(_FETCH)
            if not rows:
                return
            yield rows

    def iter_rows(self, lo: int = 0, hi: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        cur: Iterator[tuple[bytes, bytes]] = self._db.execute(
            "SELECT record, tag FROM entries WHERE pos >= ? AND pos < ? ORDER BY pos",
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


def _split_pg_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "medfw_audit"
    rest: list[tuple[str, str]] = []
    for k, v in query:
        if k == "schema":
            schema = v
        else:
            rest.append((k, v))
    if not _SCHEMA_RE.match(schema):
        raise AuditError(f"schema name {schema!r} is not a plain lowercase SQL identifier", path=url, field="schema")
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class PostgresStore(LogStore):
    """A log in its own PostgreSQL schema."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        import psycopg  # noqa: PLC0415 - only needed for PostgreSQL logs

        self._psycopg = psycopg
        self.label = _redact(url)
        conninfo, self._schema = _split_pg_url(url)
        try:
            self._db: Any = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as e:
            raise StorageError(f"cannot connect to PostgreSQL: {e}".strip(), path=self.label) from None
        self._create = create
        if create and self.exists():
            raise AuditError("audit log already exists", path=self.label)
        if not create and not self.exists():
            raise AuditError("audit log not found", path=self.label)
        self._db.execute(f'SET search_path TO "{self._schema}"')

    def exists(self) -> bool:
        row = self._db.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = 'meta'",
            (self._schema,),
        ).fetchone()
        return bool(row[0])

    def create(self, meta: dict[str, bytes]) -> None:
        s = self._schema
        self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
        self._db.execute(f'SET search_path TO "{s}"')
        self._db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value BYTEA NOT NULL)")
        self._db.execute("CREATE TABLE entries (pos BIGINT PRIMARY KEY, record BYTEA NOT NULL, tag BYTEA NOT NULL)")
        self._db.execute(
            "CREATE TABLE checkpoints (id BIGSERIAL PRIMARY KEY, size BIGINT NOT NULL, document BYTEA NOT NULL)"
        )
        with self._db.cursor() as cur:
            cur.executemany("INSERT INTO meta (name, value) VALUES (%s, %s)", list(meta.items()))

    @contextmanager
    def write(self, *, initial: bool = False) -> Iterator[None]:
        try:
            with self._db.transaction():
                if not initial:
                    self._db.execute("LOCK TABLE meta IN EXCLUSIVE MODE")
                yield
        except self._psycopg.Error as e:
            raise StorageError(f"PostgreSQL write failed: {e}".strip(), path=self.label) from None

    def get_meta(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_meta(self, name: str, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            (name, value),
        )

    def delete_meta(self, name: str) -> None:
        self._db.execute("DELETE FROM meta WHERE name = %s", (name,))

    def insert_entries(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        try:
            with self._db.cursor() as cur:
                cur.executemany("INSERT INTO entries (pos, record, tag) VALUES (%s, %s, %s)", rows)
        except self._psycopg.errors.UniqueViolation:
            raise AuditError(
                f"entry {rows[0][0]} already exists: the writer state does not match the log (counter reset?)",
                path=self.label,
                field="state",
            ) from None

    def insert_checkpoint(self, size: int, document: bytes) -> None:
        self._db.execute("INSERT INTO checkpoints (size, document) VALUES (%s, %s)", (size, document))

    def iter_chunks(self, lo: int = 0, hi: int | None = None) -> Iterator[list[tuple[bytes, bytes]]]:
        with self._db.cursor() as cur:
            cur.execute(
                "SELECT record, tag FROM entries WHERE pos >= %s AND pos < %s ORDER BY pos",
                (lo, hi if hi is not None else 2**62),
            )
            while True:
                rows = cur.fetchmany(_FETCH)
                if not rows:
                    return
                yield [(bytes(rec), bytes(tag)) for rec, tag in rows]

    def meta_names(self) -> list[str]:
        return [str(n) for (n,) in self._db.execute("SELECT name FROM meta").fetchall()]

    def checkpoints(self) -> list[tuple[int, bytes]]:
        rows = self._db.execute("SELECT size, document FROM checkpoints ORDER BY id").fetchall()
        return [(int(s), bytes(d)) for s, d in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def count_outside(self, lo: int = 0, hi: int | None = None) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM entries WHERE pos < %s OR pos >= %s", (lo, hi if hi is not None else 2**62)
        ).fetchone()
        return int(row[0])

    def max_pos(self) -> int:
        return int(self._db.execute("SELECT coalesce(max(pos), -1) FROM entries").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def open_store(path: str | Path, *, create: bool = False) -> LogStore:
    """Open (or, with ``create``, prepare to create) the store at ``path`` (a file path or a PostgreSQL URL).

    Raises:
        AuditError: the location is not a medfw audit log, or (with ``create``) a log already exists there.
        StorageError: the database cannot be reached.
    """
    store: LogStore = PostgresStore(str(path), create=create) if is_url(path) else SqliteStore(path, create=create)
    if not create and not store.exists():
        store.close()
        raise AuditError("not a medfw audit log (no meta table)", path=store.label)
    return store
