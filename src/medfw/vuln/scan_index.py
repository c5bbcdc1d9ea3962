"""The index as a scan opens it: a SQLite index at the newest revision is read on a plain ``sqlite3`` connection,
without loading SQLAlchemy (about a fifth of a one-shot scan process went to importing it); any other index
(PostgreSQL, a new file, an index that must be migrated first) is opened by :func:`medfw.vuln.index.open_index`.

A scan only reads the index (:class:`~medfw.vuln.scan_reads.ScanReads`, the statements of
:mod:`medfw.vuln.scan_sql`): a table that does not exist yet reads as empty and is not created.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from medfw.dburl import parse_db_url
from medfw.vuln.dbio import Plain
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import HEAD, VERSION_TABLE

__all__ = ["DEFAULT_DB", "PlainIndex", "open_scan_index", "sqlite_pragmas"]

DEFAULT_DB = "medfw-vuln.db"


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """The index's SQLite settings, on every connection: a larger page cache; no memory-mapped reads (mapped pages
    count in the scan process's resident memory, and the set-based scan reads do not gain from them)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=0")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


class PlainIndex(ScanReads):
    """A SQLite index read on one ``sqlite3`` connection (see the module docstring)."""

    def __init__(self, raw: sqlite3.Connection, url: str) -> None:
        self.url = url
        self._conn = Plain(raw, "?", sqlite3.Error, "sqlite")

    @contextmanager
    def transaction(self) -> Iterator[Plain]:
        """Yield the connection (reads only: as on SQLAlchemy's pysqlite, a read opens no transaction)."""
        yield self._conn
        self._conn.raw.commit()

    def close(self) -> None:
        """Close the connection."""
        self._conn.raw.close()


def _at_head(raw: sqlite3.Connection) -> bool:
    try:
        row = raw.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()  # noqa: S608 - a constant
    except sqlite3.Error:
        return False
    return row is not None and row[0] == HEAD


def open_scan_index(url: str | None = None) -> ScanReads:
    """The index at ``url`` (as :func:`medfw.vuln.index.open_index` takes it) for a scan: a plain SQLite reader
    when the file exists and needs no migration, else :func:`~medfw.vuln.index.open_index`'s index.

    Raises:
        UsageError: an unsupported URL.
        StorageError: the database cannot be opened, created or migrated.
    """
    loc = parse_db_url(url or os.environ.get("MEDFW_VULN_DB") or DEFAULT_DB)
    if loc.dialect == "sqlite":
        path = Path(loc.sqlalchemy.removeprefix("sqlite:///"))
        raw = None
        with suppress(sqlite3.Error):
            if path.is_file():
                raw = sqlite3.connect(path)
                sqlite_pragmas(raw)
                if _at_head(raw):
                    return PlainIndex(raw, loc.display)
        if raw is not None:
            raw.close()
    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy: PostgreSQL, a new or older index

    return open_index(url)
