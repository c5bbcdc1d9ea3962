"""Clinical state of a unit: whether therapy is running (``busy``) and which updates its user approved.

A medical device must not reboot into an update in the middle of therapy. The install-permission hook of the
device port asks :meth:`ClinicalState.install_permission` before anything is downloaded or written: a busy unit
answers ``device_busy``; a rollout that requires on-device approval is refused with ``awaiting_approval`` until the
user approved that release on the unit (``medfw device approve``). Both are *deferrals*, not failures: the agent
retries on a later cycle.

Kept in ``clinical.json`` in the device directory (atomic writes); changes are ``config.change`` events in the
unit's audit trail.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.errors import DeviceError

__all__ = ["ClinicalState", "Permission"]

FILE = "clinical.json"
_MAX_APPROVALS = 64


class Permission(enum.StrEnum):
    """The answer of the install-permission hook."""

    GRANTED = "granted"
    DEVICE_BUSY = "device_busy"
    AWAITING_APPROVAL = "awaiting_approval"


@dataclass
class ClinicalState:
    """Therapy state and the releases the user approved (by TUF target path)."""

    busy: bool = False
    approved: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, directory: Path | None) -> ClinicalState:
        """Read ``clinical.json`` (a fresh state when there is none)."""
        if directory is None or not (directory / FILE).exists():
            return cls()
        path = directory / FILE
        try:
            doc = json.loads(read_bytes(path, max_length=64 * 1024, what="clinical state"))
            busy, approved = doc["busy"], doc["approved"]
        except (ValueError, KeyError, TypeError) as e:
            raise DeviceError(f"clinical state is malformed: {e}", path=str(path)) from None
        if (
            not isinstance(busy, bool)
            or not isinstance(approved, list)
            or not all(isinstance(a, str) for a in approved)
        ):
            raise DeviceError("clinical state is malformed", path=str(path), field="approved")
        return cls(busy=busy, approved=list(approved))

    def save(self, directory: Path | None) -> None:
        """Write ``clinical.json`` atomically (in-memory units keep it only in memory)."""
        if directory is not None:
            doc = {"busy": self.busy, "approved": self.approved}
            atomic_write(directory / FILE, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())

    def set_busy(self, busy: bool, sink: AuditSink) -> None:
        """Therapy starts (``busy``) or ends."""
        before, self.busy = self.busy, busy
        if before != busy:
            reason = "therapy_started" if busy else "therapy_ended"
            sink.record(AuditEvent("config.change", "success", reason, "app", {}, {"busy": busy}))

    def approve(self, target: str, sink: AuditSink) -> None:
        """The user approves installing the release ``target`` on this unit."""
        if not target or len(target) > 256 or not target.isprintable():
            raise DeviceError("the release to approve must be a printable TUF target path", field="target")
        if target not in self.approved:
            self.approved = [*self.approved, target][-_MAX_APPROVALS:]
        sink.record(AuditEvent("config.change", "success", "user_approval", "user", {}, {"approved": target}))

    def install_permission(self, target: str, *, approval_required: bool) -> Permission:
        """May ``target`` be installed now?"""
        if self.busy:
            return Permission.DEVICE_BUSY
        if approval_required and target not in self.approved:
            return Permission.AWAITING_APPROVAL
        return Permission.GRANTED
