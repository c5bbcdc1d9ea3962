"""SQL of device reports, for a batch of them at once: statements built once with bound parameters, executed
once per batch (``executemany``), no ORM objects (reports are the write-heavy path of a rollout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from medfw.server.models import Assignment, Device, Report

if TYPE_CHECKING:
    from medfw.server.report_batch import PendingReport

__all__ = ["report_targets", "write_reports"]

_TARGETS = (
    select(Device.id, Assignment.id, Assignment.state, Assignment.rollout_id)
    .select_from(Device)
    .outerjoin(
        Assignment,
        (Assignment.device_id == Device.id) & Assignment.rollout_id.in_(bindparam("rollouts", expanding=True)),
    )
    .where(Device.id.in_(bindparam("devices", expanding=True)))
)
_REPORT = insert(Report).inline()  # (no primary key fetched back: the statement may be sent in a pipeline)
_TARGETS_PG = (
    "SELECT d.id, a.id, a.state, a.rollout_id FROM devices d"
    " LEFT JOIN assignments a ON a.device_id = d.id AND a.rollout_id = ANY(%(rollouts)s)"
    " WHERE d.id = ANY(%(devices)s)"
)
_POLLED = (
    update(Device)
    .where(Device.id == bindparam("b_id"))
    .values(
        last_seen=bindparam("b_seen"),
        version=bindparam("b_version"),
        secure_version=bindparam("b_svn"),
        slot=bindparam("b_slot"),
    )
)
_REPORTED = (
    update(Device)
    .where(Device.id == bindparam("b_id"))
    .values(
        last_status=bindparam("b_status"),
        version=func.coalesce(bindparam("b_version", type_=Device.version.type), Device.version),
        secure_version=func.coalesce(bindparam("b_svn", type_=Device.secure_version.type), Device.secure_version),
        slot=func.coalesce(bindparam("b_slot", type_=Device.slot.type), Device.slot),
    )
)
_MOVE = (
    update(Assignment)
    .where(Assignment.id == bindparam("b_id"))
    .values(state=bindparam("b_state"), reason=bindparam("b_reason"), updated=bindparam("b_updated"))
)


def report_targets(
    s: Session, reports: Sequence[tuple[str, int | None]], raw: Any = None
) -> tuple[set[str], dict[tuple[str, int | None], tuple[int, str]]]:
    """The registered devices among ``(device, rollout)`` pairs, and each pair's assignment ``(id, state)``
    (one query; ``raw``: PostgreSQL's driver connection in pipeline mode, see :meth:`Store.pipeline`)."""
    devices = sorted({d for d, _ in reports})
    rollouts = sorted({r for _, r in reports if r is not None})
    rows: Any
    if raw is not None:
        with raw.cursor() as cursor:
            cursor.execute(_TARGETS_PG, {"devices": devices, "rollouts": rollouts or [-1]})
            rows = cursor.fetchall()
    else:
        rows = s.connection().execute(_TARGETS, {"devices": devices, "rollouts": rollouts or [-1]})
    known: set[str] = set()
    targets: dict[tuple[str, int | None], tuple[int, str]] = {}
    for device_id, assignment_id, state, rollout_id in rows:
        known.add(device_id)
        if assignment_id is not None:
            targets[(device_id, int(rollout_id))] = (int(assignment_id), str(state))
    return known, targets


def write_reports(s: Session, reports: Sequence[PendingReport], moves: Sequence[dict[str, Any]]) -> None:
    """Insert the reports, set what their devices reported (the data of the device's last poll first, then the
    report's fields) and move the assignments (``b_id``, ``b_state``, ``b_reason``, ``b_updated``); rows in
    device order, so two batches lock devices in the same order."""
    conn = s.connection()
    conn.execute(
        _REPORT,
        [
            {
                "device_id": r.device_id,
                "rollout_id": r.rollout_id,
                "status": r.status,
                "reason": r.reason,
                "detail": r.detail,
                "created": r.when,
                **r.fields,
            }
            for r in reports
        ],
    )
    ordered = sorted(reports, key=lambda r: r.device_id)
    polled = [
        {"b_id": r.device_id, "b_seen": r.polled[0], "b_version": v, "b_svn": svn, "b_slot": slot}
        for r in ordered
        if r.polled is not None
        for v, svn, slot in [r.polled[1]]
    ]
    if polled:
        conn.execute(_POLLED, polled)
    conn.execute(
        _REPORTED,
        [
            {
                "b_id": r.device_id,
                "b_status": r.status,
                "b_version": r.fields["version"],
                "b_svn": r.fields["secure_version"],
                "b_slot": r.fields["slot"],
            }
            for r in ordered
        ],
    )
    if moves:
        conn.execute(_MOVE, sorted(moves, key=lambda m: int(m["b_id"])))
