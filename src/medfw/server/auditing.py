"""Audit of the fleet server: an outbox committed with every state change, refused requests aggregated, and a
rate limit on refused authentication.

**Outbox.** A unit of work writes its audit events into the ``audit_outbox`` table of the fleet database in the
same transaction as the change they record. After the commit (and at every maintenance pass, and at start-up) the
*drainer* appends the outbox rows to the audit log in id order and deletes each one once it is appended. A crash
between commit and append leaves the rows in the outbox, so they reach the log at the next start; a crash between
append and delete appends that one event again at the next start (each event carries its ``outbox_id``).
With several server processes only one is the drainer (the holder of a lock file next to the audit log); the
others leave their events in the outbox for it.

**Refusals.** A refused request is counted per (kind, source address, reason) and written as one aggregated event
per interval (``count``, ``first``, ``last``, a few of the claimed identities), never one synced entry each.

**Rate limit.** After ``limit`` refused authentications within ``window`` seconds from one source address, or
for one device id, further requests from it (or for it) get 429 with ``Retry-After`` until the window has passed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medfw.audit.sink import AuditEvent
from medfw.server.work import now

__all__ = ["Denials", "RefusalLimiter", "event_from_json", "event_to_json"]


def event_to_json(event: AuditEvent, *, created: datetime) -> str:
    """Serialise an audit event for the outbox."""
    return json.dumps(
        {
            "type": event.type,
            "outcome": event.outcome,
            "reason": event.reason,
            "actor": event.actor,
            "objects": dict(event.objects),
            "data": dict(event.data),
            "committed": created.isoformat(),
        },
        sort_keys=True,
        default=str,
    )


def event_from_json(text: str, outbox_id: int) -> AuditEvent:
    """An outbox row as the audit event to append (marked with its outbox id and commit time)."""
    raw = json.loads(text)
    data = {**raw.get("data", {}), "outbox_id": outbox_id, "committed": raw.get("committed")}
    return AuditEvent(
        type=raw["type"],
        outcome=raw["outcome"],
        reason=raw.get("reason"),
        actor=raw.get("actor"),
        objects=raw.get("objects", {}),
        data=data,
    )


@dataclass
class _Tally:
    count: int = 0
    first: str = ""
    last: str = ""
    actors: set[str] = field(default_factory=set)
    claimed: set[str] = field(default_factory=set)


class Denials:
    """Refused requests counted per (kind, source, reason) until :meth:`take` turns them into events."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str, str], _Tally] = defaultdict(_Tally)
        self._lock = threading.Lock()

    def add(self, kind: str, *, source: str, reason: str, actor: str, claimed: str | None = None) -> None:
        """Count one refusal."""
        when = now().isoformat()
        with self._lock:
            t = self._tallies[(kind, source, reason)]
            t.count += 1
            t.first = t.first or when
            t.last = when
            if len(t.actors) < 5:
                t.actors.add(actor)
            if claimed is not None and len(t.claimed) < 5:
                t.claimed.add(claimed)

    def take(self) -> list[AuditEvent]:
        """One ``denied`` event per (kind, source, reason) counted since the last call."""
        with self._lock:
            tallies, self._tallies = self._tallies, defaultdict(_Tally)
        events = []
        for (kind, source, reason), t in sorted(tallies.items()):
            data: dict[str, Any] = {
                "action": "authenticate",
                "count": t.count,
                "source": source,
                "first": t.first,
                "last": t.last,
                "actors": sorted(t.actors),
            }
            if t.claimed:
                data["claimed"] = sorted(t.claimed)
            type_ = "ota.report" if kind == "device" else "config.change"
            events.append(AuditEvent(type=type_, outcome="denied", reason=reason, actor=f"source:{source}", data=data))
        return events


class RefusalLimiter:
    """Sliding-window count of refused authentications per key (``ip:…``, ``device:…``).

    Args:
        limit: refusals within ``window`` after which a key is blocked (``0`` disables the limit).
        window: seconds.
    """

    def __init__(self, *, limit: int = 20, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, *keys: str) -> int | None:
        """Seconds until the first blocked key may try again, or ``None`` when none is blocked."""
        if not self.limit:
            return None
        at = time.monotonic()
        wait: float | None = None
        with self._lock:
            for key in keys:
                hits = self._hits.get(key)
                if hits is None:
                    continue
                while hits and at - hits[0] > self.window:
                    hits.popleft()
                if len(hits) >= self.limit:
                    left = self.window - (at - hits[0])
                    wait = left if wait is None else max(wait, left)
                elif not hits:
                    del self._hits[key]
        return None if wait is None else max(1, int(wait + 0.999))

    def refused(self, *keys: str) -> None:
        """Count one refusal against each key (bounded memory: a key keeps at most ``limit`` timestamps)."""
        if not self.limit:
            return
        at = time.monotonic()
        with self._lock:
            if len(self._hits) > 100_000:
                self._hits.clear()
            for key in keys:
                hits = self._hits.setdefault(key, deque(maxlen=self.limit))
                hits.append(at)
