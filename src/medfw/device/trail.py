"""The unit's own audit trail: every event the device model records also goes to the unit's own log.

The log (``audit.sqlite`` in the device directory, created at identity provisioning) is a :mod:`medfw.audit` log —
hash-chained, HMAC-sealed with forward-secure epoch keys — whose initial key was derived at provisioning, so the
fleet server can verify what the unit uploads (:mod:`medfw.identity.trail`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medfw.audit.sink import AuditEvent, AuditSink

__all__ = ["OWN_LOG", "TeeSink", "open_own_log"]

OWN_LOG = "audit.sqlite"


class TeeSink:
    """Records each event in the unit's own log first, then in the caller's sink."""

    def __init__(self, own: Any, other: AuditSink) -> None:
        self.own = own
        self.other = other

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` to both."""
        self.own.record(event)
        self.other.record(event)

    def close(self) -> None:
        """Close the unit's own log (a ``close`` checkpoint is sealed if entries were appended)."""
        self.own.close()


def open_own_log(path: Path, other: AuditSink) -> TeeSink:
    """Open the unit's own log at ``path`` (a new session) and tee ``other`` behind it."""
    from medfw.audit import open_log  # noqa: PLC0415 - the log machinery loads on first use

    return TeeSink(open_log(path), other)
