"""Reading and writing many rows at once, as fast as the database takes them (SQLAlchemy Core connections).

* :func:`insert_tuples` — rows of plain values by ``COPY … FROM STDIN`` on PostgreSQL, one positional
  executemany elsewhere;
* :func:`select_in_sql` — a query restricted to ``column IN (…)`` per chunk of values, compiled once, for
  :meth:`~sqlalchemy.engine.Connection.exec_driver_sql` (compiling an expanding ``IN`` per chunk costs more than
  the queries of a scan);
* :func:`driver_rows` / :func:`driver_rows_in` — plain SQL run on the driver's own cursor inside the connection's
  transaction, rows as the driver's tuples: a scan's hot reads skip SQLAlchemy's statement compilation and result
  rows (about a third of their time in a one-shot scan process); driver errors still become
  :class:`~medfw.errors.StorageError`. They take a SQLAlchemy connection or a :class:`Plain` DB-API connection
  (a scan of a SQLite index opens one without loading SQLAlchemy: :mod:`medfw.vuln.scan_index`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from medfw.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Select, Table
    from sqlalchemy.engine import Dialect

__all__ = [
    "CHUNK",
    "Plain",
    "chunks",
    "driver_rows",
    "driver_rows_in",
    "has_table",
    "insert_tuples",
    "placeholder",
    "quote",
    "select_in_sql",
]

#: values per ``IN`` list
CHUNK = 500


class Plain(NamedTuple):
    """A DB-API connection as the driver helpers use it: the connection, its parameter marker, error class and
    dialect name (``sqlite``, ``postgresql``)."""

    raw: Any
    mark: str
    error: type[Exception]
    dialect: str


def _driver(conn: Connection | Plain) -> tuple[Any, type[Exception]]:
    if isinstance(conn, Plain):
        return conn.raw, conn.error
    return conn.connection.driver_connection, conn.dialect.loaded_dbapi.Error


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``n``."""
    for i in range(0, len(items), n):
        yield items[i : i + n]


@functools.lru_cache(maxsize=32)
def _insert_sql(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> str:
    from sqlalchemy import insert  # noqa: PLC0415 - writers only

    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    if not compiled.positional or tuple(compiled.positiontup or ()) != columns:
        raise ValueError(f"{table.name}: columns not in table order for a positional insert")
    return str(compiled)


def insert_tuples(conn: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples of plain values in ``columns`` order, the table's column order) as fast as the
    database takes them: PostgreSQL by ``COPY … FROM STDIN``, others by one executemany of a positional INSERT."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        quote = conn.dialect.identifier_preparer.quote
        raw: Any = conn.connection.driver_connection
        with (
            raw.cursor() as cur,
            cur.copy(f"COPY {quote(table.name)} ({', '.join(map(quote, columns))}) FROM STDIN") as cp,
        ):
            for r in rows:
                cp.write_row(r)
        return
    conn.exec_driver_sql(_insert_sql(conn.dialect, table, columns), rows)


def placeholder(conn: Connection | Plain) -> str:
    """The driver's positional parameter marker (``?`` for SQLite, ``%s`` for psycopg)."""
    if isinstance(conn, Plain):
        return conn.mark
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def quote(conn: Connection | Plain, name: str) -> str:
    """``name`` as an identifier in the connection's SQL (quoted when the dialect needs it; always, for
    :class:`Plain`: both SQLite and PostgreSQL take double quotes)."""
    if isinstance(conn, Plain):
        return f'"{name}"'
    return str(conn.dialect.identifier_preparer.quote(name))


def select_in_sql(
    conn: Connection, query: Select[Any], column: ColumnElement[Any], values: Sequence[Any], n: int = CHUNK
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """(SQL, parameters) per chunk of ``values``: ``query`` (its own values, medfw's constants, rendered inline)
    restricted to rows whose ``column`` is in the chunk, compiled once, for :meth:`Connection.exec_driver_sql`."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    name = str(column.compile(dialect=conn.dialect))
    where = " AND " if query.whereclause is not None else " WHERE "
    mark = placeholder(conn)
    for chunk in chunks(values, n):
        yield f"{compiled}{where}{name} IN ({', '.join([mark] * len(chunk))})", tuple(chunk)


def driver_rows(conn: Connection | Plain, queries: Iterable[tuple[str, Sequence[Any]]]) -> list[tuple[Any, ...]]:
    """The rows of each (SQL with the driver's parameter markers, parameters) of ``queries``, run on the driver's
    cursor inside ``conn``'s transaction, as the driver's tuples (no type processing: as ``exec_driver_sql``).

    Raises:
        StorageError: the driver failed.
    """
    raw, error = _driver(conn)
    cur: Any = raw.cursor()
    out: list[tuple[Any, ...]] = []
    try:
        for sql, params in queries:
            cur.execute(sql, tuple(params))
            out.extend(cur.fetchall())
    except error as e:
        raise StorageError(f"vulnerability database error: {e.__class__.__name__}: {e}") from e
    finally:
        cur.close()
    return out


def has_table(conn: Connection | Plain, name: str) -> bool:
    """Whether the table ``name`` exists (a table not created yet reads as empty, and a read never creates it)."""
    dialect = conn.dialect if isinstance(conn, Plain) else conn.dialect.name
    if dialect == "sqlite":
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = f"SELECT 1 WHERE to_regclass({placeholder(conn)}) IS NOT NULL"
    return bool(driver_rows(conn, [(sql, (name,))]))


def driver_rows_in(conn: Connection | Plain, head: str, values: Iterable[Any], n: int = CHUNK) -> list[tuple[Any, ...]]:
    """:func:`driver_rows` of ``head`` (a query ending in ``… WHERE column`` or ``… AND column``) ``IN`` each
    chunk of ``values`` (sorted, duplicates removed)."""
    mark = placeholder(conn)
    wanted = sorted(set(values))
    return driver_rows(conn, ((f"{head} IN ({', '.join([mark] * len(c))})", c) for c in chunks(wanted, n)))
