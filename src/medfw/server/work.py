"""A unit of work: one database transaction and the audit events of what it changed.

Events are collected while the transaction runs and reach the audit log only after it commits, so a rolled-back
change never leaves an audit entry claiming it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from medfw.audit.sink import AuditEvent

__all__ = ["Work", "now"]


def now() -> datetime:
    """The current UTC time (what every stored timestamp uses)."""
    return datetime.now(UTC)


@dataclass
class Work:
    """The session of the running transaction, the audit events it produces and whether polls may change.

    ``changed``: any poll answer or credential may have changed (every process drops its poll cache).
    ``moved``: only assignments moved (processes re-read which devices are busy; see :mod:`medfw.server.cache`).
    ``ended``: only assignments ended (devices left their rollout's active states; the busy set only shrinks).
    ``committed``: called once the transaction has committed, before its events are appended to the audit log
    (they are safe in the outbox by then).
    """

    session: Session
    events: list[AuditEvent] = field(default_factory=list)
    changed: bool = False
    moved: bool = False
    ended: bool = False
    committed: list[Callable[[], None]] = field(default_factory=list)

    def audit(
        self,
        type_: str,
        outcome: str,
        actor: str,
        *,
        reason: str | None = None,
        objects: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Record an audit event, appended once the transaction has committed."""
        self.events.append(
            AuditEvent(type=type_, outcome=outcome, reason=reason, actor=actor, objects=objects or {}, data=data or {})
        )
