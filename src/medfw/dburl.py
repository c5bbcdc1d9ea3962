"""The one database-URL convention of medfw (audit log, vulnerability index, fleet server).

* a plain path (``medfw-vuln.db``, ``/var/lib/medfw/audit.db``) or ``sqlite:///PATH`` is an SQLite file;
* ``postgresql://user@host:5432/db`` (also ``postgres://`` and ``postgresql+psycopg://``) is PostgreSQL through
  psycopg 3; ``?schema=NAME`` puts the tables in schema ``NAME`` (a plain lowercase identifier; created if
  missing), so several medfw stores can share one database;
* each store's default comes from its environment variable: ``MEDFW_AUDIT_LOG``, ``MEDFW_VULN_DB``,
  ``MEDFW_OTA_DB``; a password in a URL is never shown (:func:`redact`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from medfw.errors import UsageError

__all__ = ["DbUrl", "is_postgres", "parse_db_url", "redact"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PG_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class DbUrl(NamedTuple):
    """A parsed database location (a named tuple: every audit command loads it, :mod:`dataclasses` is slower to load).

    Attributes:
        sqlalchemy: the SQLAlchemy URL (``sqlite:///…`` or ``postgresql+psycopg://…`` without ``schema``).
        dialect: ``sqlite`` or ``postgresql``.
        schema: the PostgreSQL schema (None: the default search path).
        display: the location with any password replaced by ``***``.
        path: the SQLite file (None for PostgreSQL).
        libpq: the ``postgresql://`` connection URI for psycopg / libpq, without ``schema`` (None for SQLite).
    """

    sqlalchemy: str
    dialect: str
    schema: str | None
    display: str
    path: Path | None = None
    libpq: str | None = None


def is_postgres(value: str | Path) -> bool:
    """Whether ``value`` names a PostgreSQL database."""
    return str(value).startswith(_PG_PREFIXES)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def parse_db_url(value: str | Path, *, field: str = "--db") -> DbUrl:
    """Parse a database location (see the module docstring).

    Raises:
        UsageError: an unsupported scheme or a malformed schema name.
    """
    text = str(value)
    if is_postgres(text):
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schemas = [v for k, v in query if k == "schema"]
        schema = schemas[-1] if schemas else None
        if schema is not None and not _SCHEMA.match(schema):
            raise UsageError(f"schema name {schema!r} is not a plain lowercase SQL identifier", field=field)
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        url = urlunsplit(parts._replace(scheme="postgresql+psycopg", query=rest))
        libpq = urlunsplit(parts._replace(scheme="postgresql", query=rest))
        return DbUrl(url, "postgresql", schema, redact(text), libpq=libpq)
    if text.startswith("sqlite:///"):
        return DbUrl(text, "sqlite", None, text, path=Path(text.removeprefix("sqlite:///")))
    if "://" in text:
        raise UsageError("database URL must be a path, sqlite:///PATH or postgresql://…[?schema=NAME]", field=field)
    return DbUrl(f"sqlite:///{Path(text)}", "sqlite", None, text, path=Path(text))
