"""SQL of rollouts and their assignments (the rules that drive them are in :mod:`medfw.server.rollouts`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from medfw.server import rollout as rules
from medfw.server.models import Assignment, Device, FleetState, Release, Rollout
from medfw.server.views import PhaseView, ReasonView, RolloutView

__all__ = [
    "add_assignments",
    "busy_devices",
    "cancel_unstarted",
    "lock_rollout_creation",
    "locked_counts",
    "phase_counts",
    "rollout",
    "rollout_ids",
    "rollout_view",
    "start_phase",
    "targets",
]

_ROLLOUT_LOCK = 0x6D66_7277  # "mfrw": the advisory lock key of rollout creation

#: ids per ``IN (…)`` list: far below PostgreSQL's 65,535 bind parameters and SQLite's 32,766
CHUNK = 10_000


def _chunks(items: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield list(items[i : i + CHUNK])


def targets(
    s: Session, *, model: str, group: str | None, devices: Sequence[str] | None, version: str | None
) -> list[Any]:
    """Active devices (``id``, ``model``, ``secure_version`` rows) of ``model`` narrowed by group, an id list
    and/or the reported version, ordered by id."""
    q = (
        select(Device.id, Device.model, Device.secure_version)
        .where(Device.model == model, Device.credential_hash != "")
        .order_by(Device.id)
    )
    if group is not None:
        q = q.where(Device.group == group)
    if version is not None:
        q = q.where(Device.version == version)
    if not devices:
        return list(s.execute(q))
    found: list[Any] = []
    for chunk in _chunks(sorted(set(devices))):
        found.extend(s.execute(q.where(Device.id.in_(chunk))))
    return sorted(found, key=lambda d: d.id)


def lock_rollout_creation(s: Session) -> None:
    """Serialise rollout creation until the transaction ends, on both backends.

    PostgreSQL: a transaction-level advisory lock. SQLite: a write as the first statement takes the database's
    write lock at once (a deferred transaction would read first and let two creators see the same free devices).
    """
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ROLLOUT_LOCK})
    else:
        s.execute(update(FleetState).where(FleetState.id == 1).values(generation=FleetState.generation))


def busy_devices(s: Session, device_ids: Sequence[str]) -> set[str]:
    """Which of these devices are in a running or paused rollout and not yet done."""
    busy: set[str] = set()
    for chunk in _chunks(device_ids):
        busy.update(
            s.scalars(
                select(Assignment.device_id)
                .join(Rollout, Rollout.id == Assignment.rollout_id)
                .where(
                    Rollout.state.in_([rules.RolloutState.RUNNING, rules.RolloutState.PAUSED]),
                    Assignment.state.in_([*rules.ACTIVE_STATES, "waiting"]),
                    Assignment.device_id.in_(chunk),
                )
            )
        )
    return busy


def add_assignments(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert assignments (``rollout_id``, ``device_id``, ``phase``, ``state``, ``reason``, ``updated``)."""
    for i in range(0, len(rows), CHUNK):
        s.execute(insert(Assignment), list(rows[i : i + CHUNK]))


def rollout(s: Session, rollout_id: int, *, lock: bool = False) -> Rollout | None:
    """A rollout row (``lock``: ``SELECT … FOR UPDATE`` where the database has it)."""
    return s.get(Rollout, rollout_id, with_for_update=lock or None)


def rollout_ids(s: Session) -> list[int]:
    """Every rollout id, oldest first."""
    return list(s.scalars(select(Rollout.id).order_by(Rollout.id)))


def rollout_view(s: Session, rollout_id: int) -> RolloutView | None:
    """A rollout with its per-phase counts."""
    ro = s.get(Rollout, rollout_id)
    if ro is None:
        return None
    rel = s.get(Release, ro.release_id)
    assert rel is not None
    rows = s.execute(
        select(Assignment.phase, Assignment.state, Assignment.reason, func.count())
        .where(Assignment.rollout_id == rollout_id)
        .group_by(Assignment.phase, Assignment.state, Assignment.reason)
    ).all()
    per_phase: list[Counter[str]] = [Counter() for _ in ro.phases]
    reasons: Counter[tuple[str, str]] = Counter()
    for phase, state, reason, n in rows:
        per_phase[phase][state] += n
        if reason and (state in rules.ERROR_STATES or state == "skipped"):
            reasons[(state, reason)] += n
    return RolloutView(
        id=ro.id,
        name=ro.name,
        release=rel.target_path,
        version=rel.version,
        secure_version=rel.secure_version,
        target=dict(ro.target),
        state=ro.state,
        state_reason=ro.state_reason,
        current_phase=ro.current_phase + 1,
        success_threshold=ro.success_threshold,
        error_threshold=ro.error_threshold,
        phases=tuple(
            PhaseView(phase=i + 1, spec=spec, counts=dict(sorted(per_phase[i].items())))
            for i, spec in enumerate(ro.phases)
        ),
        reasons=tuple(
            ReasonView(state, reason, n)
            for (state, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        created=ro.created.isoformat(),
        updated=ro.updated.isoformat(),
    )


def updated_devices(s: Session, rollout_id: int) -> int:
    """Devices a rollout updated or tried to (confirmed other than already installed, reverted, rejected)."""
    return int(
        s.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(
                Assignment.rollout_id == rollout_id,
                Assignment.state.in_(["confirmed", *rules.ERROR_STATES]),
                func.coalesce(Assignment.reason, "") != "already_installed",
            )
        )
        or 0
    )


def phase_counts(s: Session, ro: Rollout) -> rules.PhaseCounts:
    """Assignment counts over the phases started so far."""
    rows = s.execute(
        select(Assignment.state, func.count())
        .where(Assignment.rollout_id == ro.id, Assignment.phase <= ro.current_phase)
        .group_by(Assignment.state)
    ).all()
    return _counts(rows)


def locked_counts(raw: Any, rollout_ids: Sequence[int]) -> dict[int, tuple[Any, rules.PhaseCounts]]:
    """PostgreSQL, on a connection in pipeline mode: lock each rollout row (in id order) and count its assignments
    over the phases started so far; all sent before the first result is awaited (one round trip). Returns each
    rollout's row (state, thresholds, phases, current phase, acknowledged failures) and counts."""
    from psycopg.rows import namedtuple_row  # noqa: PLC0415 - the PostgreSQL driver

    sent = []
    for rollout_id in sorted(rollout_ids):
        row, counts = raw.cursor(row_factory=namedtuple_row), raw.cursor()
        row.execute(_LOCK_ROW, {"id": rollout_id})
        counts.execute(_COUNT_ROWS, {"id": rollout_id})
        sent.append((rollout_id, row, counts))
    found = {}
    for rollout_id, row, counts in sent:
        ro = row.fetchone()
        if ro is not None:
            found[rollout_id] = ro, _counts(counts.fetchall())
        row.close()
        counts.close()
    return found


_LOCK_ROW = (
    "SELECT state, current_phase, success_threshold, error_threshold, acknowledged_failures, phases"
    " FROM rollouts WHERE id = %(id)s FOR UPDATE"
)
_COUNT_ROWS = (
    "SELECT a.state, count(*) FROM assignments a JOIN rollouts r ON r.id = a.rollout_id"
    " WHERE a.rollout_id = %(id)s AND a.phase <= r.current_phase GROUP BY a.state"
)


def _counts(rows: Iterable[Any]) -> rules.PhaseCounts:
    c: Counter[str] = Counter({str(state): int(n) for state, n in rows})
    return rules.PhaseCounts(
        total=sum(c.values()),
        waiting=c["waiting"],
        active=sum(c[x] for x in rules.ACTIVE_STATES),
        confirmed=c["confirmed"],
        failed=sum(c[x] for x in rules.ERROR_STATES),
        skipped=c["skipped"],
        cancelled=c["cancelled"],
    )


def start_phase(s: Session, rollout_id: int, phase: int, now: datetime) -> None:
    """Offer the release to the waiting devices of ``phase``."""
    s.execute(
        update(Assignment)
        .where(Assignment.rollout_id == rollout_id, Assignment.phase == phase, Assignment.state == "waiting")
        .values(state="pending", updated=now)
    )


def cancel_unstarted(s: Session, rollout_id: int, now: datetime) -> None:
    """Withdraw the assignments of a rollout that have not started."""
    s.execute(
        update(Assignment)
        .where(Assignment.rollout_id == rollout_id, Assignment.state.in_(["waiting", "pending"]))
        .values(state="cancelled", reason="rollout_cancelled", updated=now)
    )
