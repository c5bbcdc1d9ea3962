"""SQL of the fleet server's shared state: the generation counters of the poll caches and the audit outbox."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medfw.server.models import AuditOutbox, FleetState

__all__ = ["ASSIGNMENTS", "ENDED", "FLEET", "CounterReader", "StateStore"]

#: ``fleet_state`` rows: the fleet generation (any poll answer or credential may have changed) and the assignment
#: generation (assignments moved: only busy devices' answers may have changed) and the ended generation (assignments
#: only ended: the busy set can only shrink); see :mod:`medfw.server.cache`
FLEET = 1
ASSIGNMENTS = 2
ENDED = 3


class StateStore:
    """Generation counters and the audit outbox.

    Args:
        sessions: a session factory bound to a migrated database.
    """

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @property
    def engine(self) -> Engine:
        """The engine the sessions are bound to."""
        engine: Engine = self.sessions.kw["bind"]
        return engine

    # ---- round trips ---------------------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def pipeline(s: Session) -> Iterator[Any | None]:
        """On PostgreSQL, send the block's statements without waiting for each one's result (psycopg's pipeline
        mode): a statement whose result is read, and the end of the block, wait for everything sent so far. Yields
        the driver connection (``None`` on SQLite, where nothing changes). Only Core statements belong in the block
        (ORM flushes check row counts, which are known only once the results arrived). A failure reported at the
        end of the block is raised as SQLAlchemy's :class:`DBAPIError` like any other."""
        if s.get_bind().dialect.name != "postgresql":
            yield None
            return
        import psycopg  # noqa: PLC0415 - the PostgreSQL driver

        raw = s.connection().connection.driver_connection
        assert raw is not None
        try:
            with raw.pipeline():
                yield raw
        except psycopg.Error as e:
            raise DBAPIError.instance(None, None, e, psycopg.Error) from e

    @staticmethod
    def bump_sent(raw: Any, row: int) -> Callable[[], int]:
        """Send the increment of a counter on a connection in pipeline mode (inserting the row the first time);
        return how to read the new value once the results arrived."""
        cursor = raw.cursor()
        cursor.execute(_BUMP_UPSERT, (row,))

        def value() -> int:
            found = cursor.fetchone()
            cursor.close()
            return int(found[0])

        return value

    # ---- generations ---------------------------------------------------------------------------------------

    def bump_generation(self, row: int = FLEET, s: Session | None = None) -> int:
        """Increment a counter of ``fleet_state`` (:data:`FLEET`, :data:`ASSIGNMENTS`, :data:`ENDED`) and return the
        new value:
        inside the caller's transaction ``s`` (its row lock is held until that commits), else in its own."""
        if s is None:
            with self.sessions.begin() as own:
                return self.bump_generation(row, own)
        found = s.execute(_BUMP, {"row": row}).scalar()
        if found is not None:
            return int(found)
        try:  # a counter of a database created before it: the first bump inserts it
            with s.begin_nested():
                s.execute(insert(FleetState).values(id=row, generation=1))
            return 1
        except IntegrityError:  # another process inserted it first
            return int(s.execute(_BUMP, {"row": row}).scalar() or 1)

    def generation(self) -> int:
        """The current fleet generation."""
        return self.generations()[0]

    def generations(self) -> tuple[int, int, int]:
        """The fleet, the assignment and the ended generation (one query)."""
        with self.engine.connect() as conn:
            found = dict(conn.execute(_GENERATIONS).all())
        return int(found.get(FLEET, 0)), int(found.get(ASSIGNMENTS, 0)), int(found.get(ENDED, 0))

    def ping(self) -> None:
        """One round trip to the database (raises when it cannot be reached)."""
        with self.engine.connect() as conn:
            conn.scalar(select(FleetState.id).limit(1))

    # ---- audit outbox ----------------------------------------------------------------------------------------

    @staticmethod
    def add_outbox(s: Session, events: Sequence[str], *, created: datetime) -> None:
        """Queue serialised audit events in the caller's transaction."""
        s.execute(_OUTBOX_ADD, [{"event": e, "created": created} for e in events])

    def drain_outbox(self, limit: int, append: Callable[[list[tuple[int, str]]], None]) -> int:
        """Hand the oldest committed outbox rows (at most ``limit``) to ``append`` and delete them once it returned,
        in one transaction on one connection; return how many. When ``append`` raises, nothing is deleted."""
        with self.engine.begin() as conn:
            rows = [(int(r[0]), str(r[1])) for r in conn.execute(_OUTBOX_BATCH, {"n": limit})]
            if rows:
                append(rows)
                conn.execute(delete(AuditOutbox).where(AuditOutbox.id.in_([i for i, _ in rows])))
            return len(rows)

    def outbox_size(self) -> int:
        """Events committed but not yet in the audit log."""
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(AuditOutbox)) or 0)


_OUTBOX_BATCH = select(AuditOutbox.id, AuditOutbox.event).order_by(AuditOutbox.id).limit(bindparam("n"))

_BUMP = (
    update(FleetState)
    .where(FleetState.id == bindparam("row"))
    .values(generation=FleetState.generation + 1)
    .returning(FleetState.generation)
)

_OUTBOX_ADD = insert(AuditOutbox).inline()  # (no primary key fetched back: it may be sent in a pipeline)

_BUMP_UPSERT = (
    "INSERT INTO fleet_state (id, generation) VALUES (%s, 1)"
    " ON CONFLICT (id) DO UPDATE SET generation = fleet_state.generation + 1 RETURNING generation"
)

_GENERATIONS = select(FleetState.id, FleetState.generation).where(FleetState.id.in_([FLEET, ASSIGNMENTS, ENDED]))


class CounterReader:
    """Reads the generation counters on a connection of its own, taken from the pool once and kept (a background
    thread calls it twice per ``check_every``; it never waits for a pooled connection, and its statements are
    not the application's). Each read ends its transaction, so it never holds a snapshot open.

    Args:
        engine: the engine whose pool lends the connection.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._raw: Any = None
        self._sql = str(_GENERATIONS.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))

    def __call__(self) -> tuple[int, int, int]:
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        try:
            cursor = self._raw.cursor()
            try:
                cursor.execute(self._sql)
                found = {int(row[0]): int(row[1]) for row in cursor.fetchall()}
            finally:
                cursor.close()
            self._raw.rollback()
        except Exception:
            self.close(invalidate=True)
            raise
        return found.get(FLEET, 0), found.get(ASSIGNMENTS, 0), found.get(ENDED, 0)

    def close(self, *, invalidate: bool = False) -> None:
        """Give the connection back to the pool (``invalidate``: it is broken; the next read opens another)."""
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.invalidate() if invalidate else raw.close()
