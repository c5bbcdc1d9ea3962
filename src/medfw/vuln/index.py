"""The local vulnerability index: SQLite by default, PostgreSQL by URL (SQLAlchemy 2 Core, Alembic migrations).

The tables are described in :mod:`medfw.vuln.schema`. Scans look records up through the indexed
``vuln_match`` table (:mod:`medfw.vuln.match_store`), never by a full table scan. ``open_index`` brings the
schema to the newest revision (a database created before versioned migrations is adopted as revision 0001).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    Select,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import SQLAlchemyError

from medfw.dburl import parse_db_url
from medfw.errors import StorageError
from medfw.vuln.dbio import chunks, insert_tuples, select_in_sql
from medfw.vuln.index_releases import ReleaseOps
from medfw.vuln.match_rows import MATCH_COLUMNS
from medfw.vuln.scan_index import DEFAULT_DB, sqlite_pragmas
from medfw.vuln.scan_reads import ScanReads, StoredRecord, unpack
from medfw.vuln.scan_sql import HEAD, VERSION_TABLE
from medfw.vuln.schema import import_log, kev, vuln_match, vuln_record

if TYPE_CHECKING:
    from medfw.vuln.import_prep import PreparedRecord

__all__ = [
    "DEFAULT_DB",
    "RECORD_COLUMNS",
    "StoredRecord",
    "VulnIndex",
    "migrate",
    "open_index",
    "pack_record",
    "resolve_db_url",
]

_KEY_INDEX = next(ix for ix in vuln_match.indexes if ix.name == "ix_vuln_match_lookup")
#: the ``vuln_record`` columns in the order of :meth:`medfw.vuln.import_prep.PreparedRecord.record_row`
RECORD_COLUMNS = (
    "rid",
    "source",
    "record_id",
    "vuln_id",
    "modified",
    "content_hash",
    "has_config",
    "data",
    "match",
    "triage",
)


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """Return the canonical JSON bytes of ``data`` (sorted keys, no whitespace, UTF-8)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def pack_record(data: Mapping[str, Any] | bytes) -> bytes:
    """The stored form of a record: its canonical JSON, zlib-compressed (fast level)."""
    return zlib.compress(data if isinstance(data, bytes) else canonical_json(data), 1)


def content_hash(data: Mapping[str, Any] | bytes) -> str:
    """Return the SHA-256 of the canonical JSON of ``data`` (or of already canonical bytes)."""
    return hashlib.sha256(data if isinstance(data, bytes) else canonical_json(data)).hexdigest()


def resolve_db_url(db: str | None) -> str:
    """Turn ``--db`` / ``$MEDFW_VULN_DB`` / the default file into an SQLAlchemy URL (see :mod:`medfw.dburl`)."""
    return parse_db_url(db or os.environ.get("MEDFW_VULN_DB") or DEFAULT_DB).sqlalchemy


class VulnIndex(ScanReads, ReleaseOps):
    """The index over one database. Use :func:`open_index` to get one (a scan's reads:
    :class:`~medfw.vuln.scan_reads.ScanReads`; releases, scans and decisions:
    :class:`~medfw.vuln.index_releases.ReleaseOps`)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Yield a connection inside one transaction (committed on success, rolled back on error).

        Raises:
            StorageError: the database failed.
        """
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StorageError(f"vulnerability database error: {e.__class__.__name__}: {e}", path=self.url) from e

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def _select_in(self, query: Select[Any], column: Column[str], values: Iterable[str]) -> Iterator[Row[Any]]:
        """The rows of ``query`` whose ``column`` is one of ``values`` (queried in chunks, in one transaction).

        The statement is compiled once and each chunk's ``IN`` list handed to the driver as plain parameters: a
        scan asks for tens of thousands of ids, and compiling an expanding ``IN`` per chunk cost more than the
        queries."""
        with self.transaction() as conn:
            for sql, params in select_in_sql(conn, query, column, sorted(set(values))):
                yield from conn.exec_driver_sql(sql, params).all()

    # ---- feed records -------------------------------------------------------------------------------------

    def existing(self, conn: Connection, rids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Return rid → (content hash, modified) for the stored ones among ``rids``."""
        out: dict[str, tuple[str, str]] = {}
        for chunk in chunks(rids):
            rows = conn.execute(
                select(vuln_record.c.rid, vuln_record.c.content_hash, vuln_record.c.modified).where(
                    vuln_record.c.rid.in_(chunk)
                )
            )
            out.update({r.rid: (r.content_hash, r.modified) for r in rows})
        return out

    def write_records(self, conn: Connection, recs: Sequence[PreparedRecord], *, replace: bool) -> None:
        """Insert (or, with ``replace``, replace) prepared records and their ``vuln_match`` rows, each table in one
        executemany."""
        if not recs:
            return
        if replace:
            for chunk in chunks([r.rid for r in recs]):
                conn.execute(vuln_record.delete().where(vuln_record.c.rid.in_(chunk)))
                conn.execute(vuln_match.delete().where(vuln_match.c.rid.in_(chunk)))
        insert_tuples(conn, vuln_record, RECORD_COLUMNS, [r.record_row() for r in recs])
        insert_tuples(conn, vuln_match, MATCH_COLUMNS, [m for r in recs for m in r.rows])

    @contextmanager
    def bulk_load(self, conn: Connection) -> Iterator[bool]:
        """Inside ``conn``'s transaction: when the index holds no record yet, drop the lookup index of
        ``vuln_match`` for the writes that follow and build it again, sorted in one pass, at the end (inserting a
        million random keys one by one into a B-tree costs more than building it); yield whether it did. The
        index is part of the same transaction, so a failed import leaves the schema as it was."""
        empty = conn.execute(select(vuln_record.c.rid).limit(1)).first() is None
        if empty:
            raw: Any = conn.connection.driver_connection
            if conn.dialect.name == "sqlite" and not raw.in_transaction:
                conn.exec_driver_sql("BEGIN")  # pysqlite opens no transaction for DDL: the drop must be in one
            _KEY_INDEX.drop(conn)
        yield empty
        if empty:
            _KEY_INDEX.create(conn)

    def records_by_rid(self, rids: Iterable[str]) -> dict[str, StoredRecord]:
        """Load records by rid."""
        out: dict[str, StoredRecord] = {}
        q = select(
            vuln_record.c.rid, vuln_record.c.source, vuln_record.c.record_id, vuln_record.c.vuln_id, vuln_record.c.data
        )
        for r in self._select_in(q, vuln_record.c.rid, rids):
            out[r.rid] = StoredRecord(r.source, r.record_id, r.vuln_id, unpack(r.data))
        return out

    def rids_for(self, vuln_ids: Iterable[str]) -> dict[str, list[str]]:
        """Return vuln id → the rids of every record reported under it (no data loaded)."""
        out: dict[str, list[str]] = {}
        q = select(vuln_record.c.vuln_id, vuln_record.c.rid)
        for r in self._select_in(q, vuln_record.c.vuln_id, vuln_ids):
            out.setdefault(r.vuln_id, []).append(r.rid)
        return out

    def records_for(self, vuln_ids: Iterable[str]) -> dict[str, list[StoredRecord]]:
        """Load every record reported under each of ``vuln_ids`` (or whose record id is one of them)."""
        out: dict[str, list[StoredRecord]] = {}
        q = select(vuln_record.c.source, vuln_record.c.record_id, vuln_record.c.vuln_id, vuln_record.c.data)
        for r in self._select_in(q, vuln_record.c.vuln_id, vuln_ids):
            out.setdefault(r.vuln_id, []).append(StoredRecord(r.source, r.record_id, r.vuln_id, unpack(r.data)))
        return out

    def known_vuln(self, vuln_id: str) -> bool:
        """Return whether any record or KEV entry names ``vuln_id``."""
        with self.transaction() as conn:
            q = select(vuln_record.c.rid).where(
                (vuln_record.c.vuln_id == vuln_id) | (vuln_record.c.record_id == vuln_id)
            )
            if conn.execute(q.limit(1)).first() is not None:
                return True
            return conn.execute(select(kev.c.cve_id).where(kev.c.cve_id == vuln_id)).first() is not None

    def record_count(self) -> int:
        """Return the number of stored feed records."""
        with self.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(vuln_record)).scalar_one())

    # ---- import log ---------------------------------------------------------------------------------------

    def log_import(self, conn: Connection, kind: str, path: str, counts: Mapping[str, int]) -> None:
        """Record one imported file and its counts."""
        conn.execute(
            insert(import_log).values(
                at=dt.datetime.now(dt.UTC).isoformat(), kind=kind, path=path, counts=json.dumps(dict(counts))
            )
        )


def _current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32)))
    value = conn.execute(select(version.c.version_num)).scalar()
    return None if value is None else str(value)


def migrate(engine: Engine, schema: str | None = None) -> None:
    """Bring the index to the newest Alembic revision shipped with medfw (a pre-Alembic index is adopted).

    Raises:
        StorageError: the database cannot be migrated.
    """
    with engine.begin() as conn:
        if schema:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        if _current_revision(conn) == HEAD:
            return
        from alembic import command  # noqa: PLC0415 - only when the schema must change
        from alembic.config import Config  # noqa: PLC0415

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        if _current_revision(conn) is None and inspect(conn).has_table("vuln_record"):
            command.stamp(cfg, "0001")  # created by create_all before versioned migrations
        command.upgrade(cfg, "head")


def open_index(url: str | None = None) -> VulnIndex:
    """Open (creating or migrating it if needed) the index at ``url``.

    ``url`` follows :mod:`medfw.dburl` (a path, ``sqlite:///PATH``, ``postgresql://…[?schema=NAME]``); None uses
    ``$MEDFW_VULN_DB`` or ``./medfw-vuln.db``.

    Raises:
        UsageError: an unsupported URL.
        StorageError: the database cannot be opened, created or migrated (a new SQLite file is removed again).
    """
    loc = parse_db_url(url or os.environ.get("MEDFW_VULN_DB") or DEFAULT_DB)
    new_file = None
    if loc.dialect == "sqlite":
        path = Path(loc.sqlalchemy.removeprefix("sqlite:///"))
        new_file = None if path.exists() else path
    try:
        if loc.dialect == "sqlite":
            engine = create_engine(loc.sqlalchemy)
            event.listen(engine, "connect", sqlite_pragmas)
        else:
            args = {"options": f"-csearch_path={loc.schema}"} if loc.schema else {}
            engine = create_engine(loc.sqlalchemy, connect_args=args, pool_pre_ping=True)
        migrate(engine, loc.schema)
    except SQLAlchemyError as e:
        if new_file is not None:
            new_file.unlink(missing_ok=True)
        raise StorageError(
            f"cannot open the vulnerability database: {e.__class__.__name__}: {e}".splitlines()[0], path=loc.display
        ) from e
    return VulnIndex(engine, loc.display)
