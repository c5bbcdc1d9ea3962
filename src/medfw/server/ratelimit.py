"""The refused-authentication rate limit shared by every server process of one database.

:class:`~medfw.server.auditing.RefusalLimiter` counts refusals in one process, so N workers would allow N times
the limit. :class:`SharedLimiter` keeps that in-process count as its fast path and adds per-interval counters in
the ``auth_refusals`` table (one row per key and interval of ``window`` seconds):

* a refusal is counted in memory at once and queued; a background thread writes the queue with **one upsert**
  (``INSERT … ON CONFLICT (key, bucket) DO UPDATE SET count = count + excluded.count``) and reads back the keys
  whose count over the current and the previous interval reaches the limit (sliding-window estimate
  ``current + previous × (1 − elapsed fraction)``);
* :meth:`SharedLimiter.blocked` reads only memory (this process's own refusals and the keys the last read found
  blocked), so neither a poll nor the event loop ever waits for the database, and an unreachable database leaves
  the in-process limit in force.

A key blocked by refusals spread over several workers is therefore blocked in all of them once each has synced
(at most ``sync_every`` seconds after the refusal, 0.5 s by default). Old intervals are deleted as they expire.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from typing import Any

from sqlalchemy import BigInteger, Integer, String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from medfw.server.auditing import RefusalLimiter
from medfw.server.models import Base

__all__ = ["RefusalCount", "SharedLimiter"]

log = logging.getLogger("medfw.server.ratelimit")

#: the longest key stored (``ip:`` + an IPv6 address, ``device:`` + a device id)
MAX_KEY = 160


class RefusalCount(Base):
    """Refused authentications of one key (``ip:ADDR``, ``device:ID``) within one interval."""

    __tablename__ = "auth_refusals"

    key: Mapped[str] = mapped_column(String(MAX_KEY), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer)


class SharedLimiter(RefusalLimiter):
    """A :class:`RefusalLimiter` whose counts are summed over every process of one database.

    Args:
        engine: the fleet database.
        limit: refusals per key within ``window`` after which the key is blocked (``0``: no limit).
        window: seconds (also the length of one counting interval).
        sync_every: seconds between two reads of the shared counters (a refusal is written at once).
    """

    def __init__(self, engine: Engine, *, limit: int = 20, window: float = 60.0, sync_every: float = 0.5) -> None:
        super().__init__(limit=limit, window=window)
        self.engine = engine
        self.sync_every = sync_every
        self._pending: Counter[str] = Counter()
        self._shared: dict[str, float] = {}  # key -> time.time() until which it is blocked
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._swept = 0

    def refused(self, *keys: str) -> None:
        """Count one refusal against each key: in memory now, in the shared counters at the next sync."""
        super().refused(*keys)
        if not self.limit:
            return
        with self._pending_lock:
            self._pending.update(k[:MAX_KEY] for k in keys)
        self._wake.set()

    def blocked(self, *keys: str) -> int | None:
        """Seconds until the first blocked key may try again (this process's count or the shared one)."""
        local = super().blocked(*keys)
        at = time.time()
        shared = [self._shared.get(k[:MAX_KEY], 0.0) - at for k in keys]
        wait = max((s for s in shared if s > 0), default=None)
        if wait is None:
            return local
        return max(local or 0, 1, math.ceil(wait))

    def sync(self) -> None:
        """Write the queued refusals (one upsert) and read which keys the summed counts block."""
        if not self.limit:
            return
        at = time.time()
        bucket = int(at // self.window)
        with self._pending_lock:
            pending, self._pending = self._pending, Counter()
        try:
            with self.engine.begin() as conn:
                if pending:
                    conn.execute(self._upsert(), [{"key": k, "bucket": bucket, "count": n} for k, n in pending.items()])
                rows = conn.execute(
                    select(RefusalCount.key, RefusalCount.bucket, RefusalCount.count).where(
                        RefusalCount.bucket >= bucket - 1,
                        RefusalCount.key.in_(self._candidates(bucket)),
                    )
                ).all()
                if bucket - 1 > self._swept:
                    conn.execute(delete(RefusalCount).where(RefusalCount.bucket < bucket - 1))
                    self._swept = bucket - 1
        except SQLAlchemyError:
            with self._pending_lock:
                self._pending.update(pending)  # written at the next sync; the in-process limit holds meanwhile
            raise
        self._shared = self._blocked_until(rows, at, bucket)

    def _upsert(self) -> Any:
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(RefusalCount)
        return stmt.on_conflict_do_update(
            index_elements=[RefusalCount.key, RefusalCount.bucket],
            set_={"count": RefusalCount.count + stmt.excluded.count},
        )

    def _candidates(self, bucket: int) -> Any:
        """Keys whose two-interval total reaches the limit (only they can be blocked)."""
        return (
            select(RefusalCount.key)
            .where(RefusalCount.bucket >= bucket - 1)
            .group_by(RefusalCount.key)
            .having(func.sum(RefusalCount.count) >= self.limit)
            .scalar_subquery()
        )

    def _blocked_until(self, rows: Any, at: float, bucket: int) -> dict[str, float]:
        """For each key over the limit, the time its sliding-window estimate falls below it."""
        counts: dict[str, list[int]] = {}
        for key, b, n in rows:
            counts.setdefault(key, [0, 0])[0 if b == bucket else 1] += n
        start = bucket * self.window
        fraction = (at - start) / self.window
        out: dict[str, float] = {}
        for key, (current, previous) in counts.items():
            if current + previous * (1 - fraction) < self.limit:
                continue
            if previous and current < self.limit:  # falls below during this interval
                until = start + self.window * (1 - (self.limit - current) / previous)
            else:  # during the next interval, as the current one's weight decays
                until = start + self.window * (2 - self.limit / max(current, 1))
            out[key] = max(until, at + 1)
        return out

    # ---- background thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Sync in a daemon thread: at once after a refusal, else every ``sync_every`` seconds."""
        if self._thread is not None or not self.limit:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="medfw-ota-ratelimit", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after a last sync."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.sync_every)
            self._wake.clear()
            try:
                self.sync()
            except SQLAlchemyError as e:
                if not failing:  # once per outage, not twice a second
                    log.warning("sharing the refusal counts failed (%s); the per-process limit holds", type(e).__name__)
                failing = True
            except Exception:
                log.exception("sharing the refusal counts failed")
            else:
                if failing:
                    log.info("sharing the refusal counts works again")
                failing = False
