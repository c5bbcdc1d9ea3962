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

Logs are addressed by medfw's one database-URL convention (:mod:`medfw.dburl`): a plain path or ``sqlite:///PATH``
is a SQLite file (:mod:`medfw.audit.store_sqlite`); ``postgresql://user@host:port/db?schema=NAME`` (also
``postgres://`` and ``postgresql+psycopg://``) is a log in its own PostgreSQL schema
(:mod:`medfw.audit.store_pg`; default schema ``medfw_audit``; every other parameter goes to libpq).
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw.dburl import DbUrl, is_postgres, parse_db_url, redact
from medfw.errors import AuditError, StorageError, UsageError

if TYPE_CHECKING:
    from medfw.audit.store_pg import PostgresStore
    from medfw.audit.store_sqlite import SqliteStore

__all__ = ["LogStore", "PostgresStore", "SqliteStore", "is_url", "locate", "open_store", "sibling", "storage_errors"]

#: the schema of a PostgreSQL log whose URL names none
DEFAULT_SCHEMA = "medfw_audit"


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
    """True for PostgreSQL log locations (see :func:`medfw.dburl.is_postgres`)."""
    return is_postgres(path)


def locate(path: str | Path) -> DbUrl:
    """Parse a log location under medfw's database-URL convention.

    Raises:
        AuditError: an unsupported scheme or a malformed schema name.
    """
    try:
        return parse_db_url(path, field="log")
    except UsageError as e:
        where = "schema" if e.message.startswith("schema name") else "log"
        raise AuditError(e.message, path=redact(str(path)), field=where) from None


def sibling(path: str | Path, suffix: str) -> Path | None:
    """The file ``LOG<suffix>`` next to a SQLite log (its default key files); None for a PostgreSQL log.

    Raises:
        AuditError: ``path`` is not a valid log location.
    """
    loc = locate(path)
    return None if loc.path is None else Path(str(loc.path) + suffix)


def __getattr__(name: str) -> Any:
    """The two backends, importable from here as before (each is loaded on first use)."""
    if name == "SqliteStore":
        from medfw.audit.store_sqlite import SqliteStore  # noqa: PLC0415

        return SqliteStore
    if name == "PostgresStore":
        from medfw.audit.store_pg import PostgresStore  # noqa: PLC0415

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def open_store(path: str | Path, *, create: bool = False) -> LogStore:
    """Open (or, with ``create``, prepare to create) the store at ``path`` (a file path or a PostgreSQL URL).

    Raises:
        AuditError: the location is not a medfw audit log, or (with ``create``) a log already exists there.
        StorageError: the database cannot be reached.
    """
    loc = locate(path)
    store: LogStore
    if loc.dialect == "postgresql":
        from medfw.audit.store_pg import PostgresStore  # noqa: PLC0415 - only for PostgreSQL logs

        store = PostgresStore(loc, create=create)
    else:
        from medfw.audit.store_sqlite import SqliteStore  # noqa: PLC0415

        assert loc.path is not None
        store = SqliteStore(loc.path, create=create)
    if not create and not store.exists():
        store.close()
        raise AuditError("not a medfw audit log (no meta table)", path=store.label)
    return store
