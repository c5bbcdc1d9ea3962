"""SQL of device reports: built once with bound parameters, one statement each, no ORM objects (reports are the
write-heavy path of a rollout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from medfw.server.models import Assignment, Device, Report

__all__ = ["ReportTarget", "add_report", "move_assignment", "report_target", "update_device"]

#: (assignment id, its state) of the device in the reported rollout; ``None`` without a rollout or assignment
ReportTarget = tuple[int, str] | None

_DEVICE = select(Device.id).where(Device.id == bindparam("device_id"))
_TARGET = (
    select(Device.id, Assignment.id, Assignment.state)
    .select_from(Device)
    .outerjoin(Assignment, (Assignment.device_id == Device.id) & (Assignment.rollout_id == bindparam("rollout_id")))
    .where(Device.id == bindparam("device_id"))
)
_REPORT = insert(Report)
_MOVE = (
    update(Assignment)
    .where(Assignment.id == bindparam("b_id"))
    .values(state=bindparam("b_state"), reason=bindparam("b_reason"), updated=bindparam("b_updated"))
)


def report_target(s: Session, device_id: str, rollout_id: int | None) -> tuple[bool, ReportTarget]:
    """Whether the device is registered, and its assignment in ``rollout_id`` (one query)."""
    conn = s.connection()
    if rollout_id is None:
        return conn.execute(_DEVICE, {"device_id": device_id}).first() is not None, None
    row = conn.execute(_TARGET, {"device_id": device_id, "rollout_id": rollout_id}).first()
    if row is None:
        return False, None
    return True, (None if row[1] is None else (int(row[1]), str(row[2])))


def add_report(s: Session, **columns: Any) -> None:
    """Insert a device report (the columns of :class:`~medfw.server.models.Report`)."""
    s.connection().execute(_REPORT, columns)


def update_device(s: Session, device_id: str, **values: Any) -> None:
    """Set what a device reported (only the columns given)."""
    s.connection().execute(update(Device).where(Device.id == device_id).values(**values))


def move_assignment(s: Session, assignment_id: int, *, state: str, reason: str | None, when: datetime) -> None:
    """Move an assignment to ``state``."""
    s.connection().execute(_MOVE, {"b_id": assignment_id, "b_state": state, "b_reason": reason, "b_updated": when})
