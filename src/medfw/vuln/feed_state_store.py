"""The writes of feed freshness (:mod:`medfw.vuln.freshness`): each source's ``feed_state`` row after an import or
a sync, and a sync's cursor."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from medfw.vuln.freshness import KIND_SOURCES, FeedState, state_of
from medfw.vuln.schema import epss, feed_state, kev, vuln_record

__all__ = ["get_state", "newest_modified", "record_state", "save_cursor", "source_counts"]


def source_counts(conn: Connection, kind: str) -> int:
    """Number of stored records of a feed kind."""
    if kind == "kev":
        return int(conn.execute(select(func.count()).select_from(kev)).scalar_one())
    if kind == "epss":
        return int(conn.execute(select(func.count()).select_from(epss)).scalar_one())
    q = select(func.count()).select_from(vuln_record).where(vuln_record.c.source.in_(KIND_SOURCES[kind]))
    return int(conn.execute(q).scalar_one())


def newest_modified(conn: Connection, kind: str) -> str:
    """The newest ``modified`` time among a record kind's records ('' when none)."""
    q = select(func.max(vuln_record.c.modified)).where(vuln_record.c.source.in_(KIND_SOURCES.get(kind, (kind,))))
    return str(conn.execute(q).scalar_one() or "")


def get_state(conn: Connection, source: str) -> FeedState | None:
    """The stored state of one source (None before its first import or sync)."""
    r = conn.execute(select(feed_state).where(feed_state.c.source == source)).first()
    return None if r is None else state_of(dict(r._mapping))


def record_state(
    conn: Connection,
    source: str,
    *,
    method: str,
    location: str,
    version: str | None = None,
    data_date: str | None = None,
    cursor: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Record a successful import or sync of ``source`` (count taken from the tables; None keeps a value)."""
    old = get_state(conn, source)
    values = {
        "updated_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "method": method,
        "location": location,
        "records": source_counts(conn, source),
        "version": version if version is not None else (old.version if old else ""),
        "data_date": data_date if data_date is not None else (old.data_date if old else ""),
        "cursor": json.dumps(dict(cursor) if cursor is not None else dict(old.cursor) if old else {}, sort_keys=True),
    }
    if not values["data_date"] and source in KIND_SOURCES:
        values["data_date"] = newest_modified(conn, source)
    if old is None:
        conn.execute(insert(feed_state).values(source=source, **values))
    else:
        conn.execute(update(feed_state).where(feed_state.c.source == source).values(**values))


def save_cursor(conn: Connection, source: str, cursor: Mapping[str, Any]) -> None:
    """Store a sync cursor (a committed page) without marking the source as successfully updated."""
    old = get_state(conn, source)
    if old is None:
        conn.execute(
            insert(feed_state).values(
                source=source,
                updated_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC).isoformat(timespec="seconds"),
                method="sync",
                location="",
                records=0,
                version="",
                data_date="",
                cursor=json.dumps(dict(cursor), sort_keys=True),
            )
        )
    else:
        conn.execute(
            update(feed_state)
            .where(feed_state.c.source == source)
            .values(cursor=json.dumps(dict(cursor), sort_keys=True))
        )
