"""The base of the fleet service: its store, poll cache, audit sink, and units of work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.server.cache import PollCache
from medfw.server.store import Store
from medfw.server.trust_config import TrustConfig
from medfw.server.work import Work

__all__ = ["ServiceBase"]


class _SerializedSink:
    """Lets request threads and the event loop share one audit log: one event is appended at a time."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` to the wrapped sink."""
        with self._lock:
            self._sink.record(event)


class ServiceBase:
    """What every part of the fleet service shares.

    Args:
        sessions: a session factory bound to a migrated database.
        sink: where audit events go.
        poll_interval: seconds a device should wait between polls (returned in every poll answer).
        generation_check: how often (seconds) a process looks for changes made by other processes.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sink: AuditSink | None = None,
        *,
        poll_interval: int = 60,
        generation_check: float = 0.5,
        trust: TrustConfig | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = Store(sessions)
        self.sink: AuditSink = _SerializedSink(sink or NullSink())
        self.poll_interval = poll_interval
        self.cache = PollCache(self.store.generation, check_every=generation_check)
        self.trust = trust or TrustConfig()

    # ---- units of work -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def work(self) -> Iterator[Work]:
        """Run one transaction; after it commits, bump the generation (if polls may change) and audit."""
        with self.store.transaction() as s:
            w = Work(s)
            yield w
        if w.changed:
            self._changed()
        for event in w.events:
            self.sink.record(event)

    def _changed(self) -> None:
        """Bump the fleet generation (after a committed change that can alter poll answers)."""
        self.cache.bumped(self.store.bump_generation())

    def audit(self, event: AuditEvent) -> None:
        """Append an event that belongs to no transaction (a refused request)."""
        self.sink.record(event)
