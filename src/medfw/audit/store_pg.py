"""An audit log in its own PostgreSQL schema (psycopg 3); see :mod:`medfw.audit.store`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from medfw.audit.store import DEFAULT_SCHEMA, LogStore
from medfw.dburl import DbUrl
from medfw.errors import AuditError, StorageError

__all__ = ["PostgresStore"]

_FETCH = 512


class PostgresStore(LogStore):
    """A log in its own PostgreSQL schema."""

    def __init__(self, loc: DbUrl, *, create: bool = False) -> None:
        import psycopg  # noqa: PLC0415 - only needed for PostgreSQL logs

        self._psycopg = psycopg
        self.label = loc.display
        self._schema = loc.schema or DEFAULT_SCHEMA
        conninfo = loc.libpq or ""
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
