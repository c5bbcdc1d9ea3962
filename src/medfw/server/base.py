"""The base of the fleet service: its store, poll cache, audit sink, and units of work."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.server.auditing import Denials, RefusalLimiter, event_from_json, event_to_json
from medfw.server.cache import PollCache
from medfw.server.errors import Conflict
from medfw.server.ratelimit import SharedLimiter
from medfw.server.store import ASSIGNMENTS, FLEET, Store
from medfw.server.store_state import ENDED
from medfw.server.trust_config import TrustConfig
from medfw.server.work import Work, now

__all__ = ["ServiceBase"]

log = logging.getLogger("medfw.server")

#: outbox events appended per durable group
_DRAIN_BATCH = 500
#: seconds between two looks at the outbox by the appending thread (events other processes committed)
_DRAIN_EVERY = 0.5


class _SerializedSink:
    """Lets request threads and the event loop share one audit log: one event (or batch) is appended at a time."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._lock = threading.RLock()

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` to the wrapped sink."""
        with self._lock:
            self._sink.record(event)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Append the events recorded in the block as one durable group where the sink supports it (one sync)."""
        grouped = getattr(self._sink, "batch", None)
        with self._lock, grouped() if grouped is not None else contextlib.nullcontext():
            yield


class ServiceBase:
    """What every part of the fleet service shares.

    Args:
        sessions: a session factory bound to a migrated database.
        sink: where audit events go.
        poll_interval: seconds a device should wait between polls (returned in every poll answer).
        generation_check: how often (seconds) a process looks for changes made by other processes.
        drainer: whether this process appends the audit outbox to ``sink`` (one process of a multi-worker server;
            the others leave their events in the outbox).
        refusal_limit: refused authentications per source address or device within ``refusal_window`` seconds
            after which it gets 429 (0: no limit).
        shared_limit: count refusals in the database, summed over every server process (default: on
            PostgreSQL; SQLite keeps the in-process count), see :mod:`medfw.server.ratelimit`.
        artifact_base_url: a static host or CDN serving the repository's ``metadata/`` and ``targets/``
            directories; polls then send devices there (TUF makes that host untrusted).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sink: AuditSink | None = None,
        *,
        poll_interval: int = 60,
        generation_check: float = 0.5,
        trust: TrustConfig | None = None,
        drainer: bool = True,
        refusal_limit: int = 20,
        refusal_window: float = 60.0,
        shared_limit: bool | None = None,
        artifact_base_url: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.artifact_base_url = artifact_base_url.rstrip("/") if artifact_base_url else None
        self.store = Store(sessions)
        self.sink = _SerializedSink(sink or NullSink())
        self.drainer = drainer
        # without an audit log there is nothing to keep events for (unless another process drains them)
        self.use_outbox = not drainer or not (sink is None or isinstance(sink, NullSink))
        self.poll_interval = max(1, poll_interval)
        self.cache = PollCache(
            self.store.generations,
            check_every=generation_check,
            load_credentials=self.store.credentials,
            load_certified=self.store.certified_devices,
        )
        self.trust = trust or TrustConfig()
        self.denials = Denials()
        self.limiter: RefusalLimiter
        if shared_limit is None:
            shared_limit = self.store.engine.dialect.name == "postgresql"
        if shared_limit:  # several processes may serve this database: the limit holds in their sum
            self.limiter = SharedLimiter(self.store.engine, limit=refusal_limit, window=refusal_window)
        else:  # SQLite: one process; the in-process count is the whole count
            self.limiter = RefusalLimiter(limit=refusal_limit, window=refusal_window)
        self._drain_lock = threading.Lock()
        self._drain_again = False
        self._appender: _Appender | None = None

    # ---- units of work -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def work(self) -> Iterator[Work]:
        """Run one transaction whose audit events commit with it (outbox) and that bumps a generation counter when
        polls may change (:mod:`medfw.server.cache`); then append the events to the audit log (or, while
        :meth:`append_in_background` runs, let its thread append them)."""
        bumped: tuple[int, Callable[[], int]] | None = None
        with self.store.transaction() as s:
            w = Work(s)
            yield w
            s.flush()  # (ORM changes first: their row counts are checked)
            # on PostgreSQL the outbox rows, the counter and the commit go in one round trip
            with self.store.pipeline(s) as raw:
                if w.events and self.use_outbox:
                    created = now()
                    self.store.add_outbox(s, [event_to_json(e, created=created) for e in w.events], created=created)
                if w.changed or w.moved or w.ended:  # last: the counter's row lock is held only until the commit
                    row = FLEET if w.changed else ASSIGNMENTS if w.moved else ENDED
                    if raw is None:
                        value = self.store.bump_generation(row, s)
                        bumped = row, lambda: value
                    else:
                        bumped = row, self.store.bump_sent(raw, row)
                if raw is not None:
                    raw.commit()
        if bumped is not None:
            adopt = {FLEET: self.cache.bumped, ASSIGNMENTS: self.cache.moved, ENDED: self.cache.ended_here}
            adopt[bumped[0]](bumped[1]())
        for hook in w.committed:
            hook()
        if not self.use_outbox:
            for event in w.events:
                self.sink.record(event)
        elif w.events:
            self._appended()

    def _appended(self) -> None:
        """Committed outbox events wait: wake the appending thread, or append them now."""
        appender = self._appender
        if appender is not None:
            appender.wake()
        else:
            self.append_outbox()

    def append_in_background(self) -> None:
        """Append the outbox to the audit log from a thread of its own from now on (the server): a request then
        waits only for its own transaction's commit, which already holds its events in the outbox."""
        if self._appender is None:
            self._appender = _Appender(self)

    def stop_appending(self) -> None:
        """Stop the thread of :meth:`append_in_background`; what is committed is appended now."""
        appender, self._appender = self._appender, None
        if appender is not None:
            appender.stop()

    def drain_outbox(self) -> int:
        """Append committed outbox events to the audit log in order (one durable group per batch), deleting them
        once appended; return how many (0 when another process is the drainer, or when another thread of this
        one is draining: it drains again before it stops)."""
        done = 0
        while self.drainer:
            if not self._drain_lock.acquire(blocking=False):
                self._drain_again = True  # the thread holding the lock drains again before it stops
                return done
            try:
                while True:
                    self._drain_again = False
                    n = self.store.drain_outbox(_DRAIN_BATCH, self._append)
                    done += n
                    if n < _DRAIN_BATCH and not self._drain_again:
                        break
            finally:
                self._drain_lock.release()
            if not self._drain_again:  # (set between the last batch and the release)
                return done
        return done

    def _append(self, rows: list[tuple[int, str]]) -> None:
        with self.sink.batch():
            for outbox_id, text in rows:
                self.sink.record(event_from_json(text, outbox_id))

    def append_outbox(self) -> None:
        """:meth:`drain_outbox`, a failure logged (the events stay in the outbox for the next attempt)."""
        try:
            self.drain_outbox()
        except Exception:
            log.warning("appending the audit outbox failed; retried at the next pass", exc_info=True)

    def set_sink(self, sink: AuditSink) -> None:
        """Become the drainer, appending to ``sink`` (another process that held the role has stopped)."""
        self.sink = _SerializedSink(sink)
        self.drainer = True

    @contextlib.contextmanager
    def unique(self, message: str, field: str) -> Iterator[None]:
        """Turn a unique-constraint violation (two requests racing for one name) into :class:`Conflict`."""
        try:
            yield
        except IntegrityError:
            raise Conflict(message, field=field) from None

    def flush_denied(self) -> None:
        """Write the aggregated refusals counted since the last call (one event per kind, source and reason)."""
        events = self.denials.take()
        if events:
            with self.work() as w:
                w.events.extend(events)


class _Appender:
    """The thread that appends the audit outbox: woken after each commit that queued events, and every
    :data:`_DRAIN_EVERY` seconds for what other processes committed (only the drainer process appends)."""

    def __init__(self, service: ServiceBase) -> None:
        self._service = service
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medfw-ota-audit", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Append soon."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(_DRAIN_EVERY)
            self._wake.clear()
            if self._service.drainer:
                self._service.append_outbox()

    def stop(self) -> None:
        """Stop the thread, then append what is committed."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        self._service.append_outbox()
