"""SQL of device reports: one statement each, no ORM objects (reports are the write-heavy path of a rollout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from medfw.server.models import Assignment, Device, Report

__all__ = ["ReportTarget", "add_report", "move_assignment", "report_target", "update_device"]

#: (assignment id, its state) of the device in the reported rollout; ``None`` without a rollout or assignment
ReportTarget = tuple[int, str] | None


def report_target(s: Session, device_id: str, rollout_id: int | None) -> tuple[bool, ReportTarget]:
    """Whether the device is registered, and its assignment in ``rollout_id`` (one query)."""
    if rollout_id is None:
        return s.scalar(select(Device.id).where(Device.id == device_id)) is not None, None
    row = s.execute(
        select(Device.id, Assignment.id, Assignment.state)
        .select_from(Device)
        .outerjoin(Assignment, (Assignment.device_id == Device.id) & (Assignment.rollout_id == rollout_id))
        .where(Device.id == device_id)
    ).first()
    if row is None:
        return False, None
    return True, (None if row[1] is None else (int(row[1]), str(row[2])))


def add_report(s: Session, **columns: Any) -> None:
    """Insert a device report (the columns of :class:`~medfw.server.models.Report`)."""
    s.execute(insert(Report).values(**columns))


def update_device(s: Session, device_id: str, **values: Any) -> None:
    """Set what a device reported (only the columns given)."""
    s.execute(update(Device).where(Device.id == device_id).values(**values))


def move_assignment(s: Session, assignment_id: int, *, state: str, reason: str | None, when: datetime) -> None:
    """Move an assignment to ``state``."""
    s.execute(update(Assignment).where(Assignment.id == assignment_id).values(state=state, reason=reason, updated=when))
