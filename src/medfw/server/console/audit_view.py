"""The server's audit trail as the console shows it: entries newest first, filters, and whether the chain links.

Entries are read incrementally (only those appended since the last look) and each one's ``prev`` is checked
against the hash of the entry before it, and its ``seq`` against its position. That shows a broken or edited
chain without the offline verification key; the full check (HMAC seals, checkpoints) is ``medfw audit verify``
with that key, and the page says so.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from medfw.audit.record import entry_hash
from medfw.audit.store import open_store, storage_errors
from medfw.errors import MedfwError

__all__ = ["AuditEntry", "AuditFilter", "ChainStatus", "device_audit_entries", "read_trail"]


@dataclass(frozen=True)
class AuditEntry:
    """One entry's fields that the console shows."""

    seq: int
    ts: str
    type: str
    outcome: str
    actor: str
    reason: str
    objects: dict[str, str]
    data: dict[str, Any]


@dataclass(frozen=True)
class ChainStatus:
    """How far the hash chain links up."""

    entries: int
    linked: int
    first_bad_seq: int | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Every entry links to the one before it."""
        return not self.error and self.first_bad_seq is None


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to show."""

    actor: str = ""
    type: str = ""
    device: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, e: AuditEntry) -> bool:
        """Whether ``e`` passes every filter that is set."""
        if self.actor and self.actor.lower() not in e.actor.lower():
            return False
        if self.type and e.type != self.type:
            return False
        if self.device and e.objects.get("device") != self.device:
            return False
        if self.since is not None or self.until is not None:
            try:
                ts = datetime.fromisoformat(e.ts.replace("Z", "+00:00"))
            except ValueError:
                return False
            if (self.since and ts < self.since) or (self.until and ts > self.until):
                return False
        return True


@dataclass
class _Trail:
    entries: list[AuditEntry] = field(default_factory=list)
    last_hash: str = "0" * 64
    first_bad: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_TRAILS: dict[str, _Trail] = {}
_TRAILS_LOCK = threading.Lock()


def _light(raw: bytes) -> tuple[int, str, dict[str, Any]]:
    """A record's ``seq``, ``prev`` and ``body`` for display: parsed, not re-canonicalised (``medfw audit verify``
    does the strict check of every record and its seal; here a malformed record breaks the chain status)."""
    obj = json.loads(raw)
    seq, prev, body = obj.get("seq"), obj.get("prev"), obj.get("body")
    if not isinstance(seq, int) or not isinstance(prev, str) or not isinstance(body, dict):
        raise ValueError("not an audit record")
    return seq, prev, body


def _entry(seq: int, body: dict[str, Any]) -> AuditEntry:
    objects = body.get("objects") or {}
    data = body.get("data") or {}
    return AuditEntry(
        seq=seq,
        ts=str(body.get("ts", "")),
        type=str(body.get("type", "")),
        outcome=str(body.get("outcome", "")),
        actor=str(body.get("actor", "")),
        reason=str(body.get("reason") or ""),
        objects={str(k): str(v) for k, v in objects.items()} if isinstance(objects, dict) else {},
        data=dict(data) if isinstance(data, dict) else {},
    )


def _catch_up(path: str, trail: _Trail) -> None:
    with storage_errors(path):
        store = open_store(path)
        try:
            for chunk in store.iter_chunks(len(trail.entries)):
                for raw, _tag in chunk:
                    try:
                        seq, prev, body = _light(raw)
                    except ValueError:
                        seq, prev, body = -1, "", {}
                    if trail.first_bad is None and (prev != trail.last_hash or seq != len(trail.entries)):
                        trail.first_bad = len(trail.entries)
                    trail.last_hash = entry_hash(raw).hex()
                    trail.entries.append(_entry(seq, body))
        finally:
            store.close()


def read_trail(path: str) -> tuple[list[AuditEntry], ChainStatus]:
    """Every entry of the log at ``path`` (oldest first) and the chain status; new entries are read incrementally."""
    with _TRAILS_LOCK:
        trail = _TRAILS.setdefault(path, _Trail())
    with trail.lock:
        try:
            _catch_up(path, trail)
        except MedfwError as e:
            return list(trail.entries), ChainStatus(len(trail.entries), 0, error=e.message)
        entries = list(trail.entries)
        linked = len(entries) if trail.first_bad is None else trail.first_bad
        return entries, ChainStatus(len(entries), linked, trail.first_bad)


def device_audit_entries(path: str | None, device_id: str, *, limit: int = 100) -> list[AuditEntry]:
    """The newest entries about one device (``objects.device``), newest first."""
    if not path:
        return []
    entries, _status = read_trail(path)
    out = [e for e in reversed(entries) if e.objects.get("device") == device_id]
    return out[:limit]
