"""Database access for the fleet server: engine creation, Alembic migrations at start-up, sessions.

SQLite is the default (a file next to the repository); PostgreSQL is used by URL
(``postgresql+psycopg://user@host/db``; a plain ``postgresql://`` URL is mapped to the psycopg 3 driver).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from medfw.dburl import parse_db_url
from medfw.errors import StorageError, UsageError

__all__ = ["make_engine", "make_sessionmaker", "migrate", "normalise_url", "safe_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL of a database location under medfw's one convention (:mod:`medfw.dburl`).

    Raises:
        UsageError: not a path, ``sqlite:///PATH`` or ``postgresql://…`` URL.
    """
    return parse_db_url(url).sqlalchemy


def safe_url(url: str) -> str:
    """The database URL with any password masked (for logs and start-up lines)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except (ValueError, UsageError):
        return "<unparsable database URL>"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` (SQLite gets WAL mode, a busy timeout and foreign keys)."""
    loc = parse_db_url(url)
    url = loc.sqlalchemy
    if loc.schema:
        return create_engine(
            url,
            pool_size=8,
            max_overflow=8,
            pool_pre_ping=True,
            connect_args={"options": f"-csearch_path={loc.schema}"},
        )
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_size=8, max_overflow=8)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision shipped with medfw.

    Raises:
        StorageError: the database cannot be reached or migrated.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as e:
        raise StorageError(f"database migration failed: {e.__class__.__name__}", path=str(engine.url)) from e


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
