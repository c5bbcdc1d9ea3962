"""Read-only fleet views the console pages need beyond the JSON API's: one SQL statement per view.

Each function takes the service's session factory and returns frozen dataclasses. Every state change still goes
through :class:`medfw.server.service.FleetService` (the same calls the JSON API makes, with their audit events).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from medfw.server import rollout as rules
from medfw.server.models import Assignment, Device, Release, Report, Rollout

__all__ = [
    "DeviceFilter",
    "DevicePage",
    "FleetSummary",
    "RolloutProgress",
    "device_assignments",
    "device_page",
    "fleet_summary",
    "paused_by_errors",
    "rollout_progress",
    "rollout_summaries",
]

PAGE_SIZE = 50


@dataclass(frozen=True)
class FleetSummary:
    """Active devices per model × version (with how many were not seen lately), per group, and failed ones."""

    rows: tuple[tuple[str, str, int, int], ...]  # model, version, devices, not seen within the window
    groups: tuple[tuple[str, int], ...]
    total: int
    stale: int
    failed: int
    stale_hours: int

    def in_use(self) -> dict[tuple[str, str], int]:
        """Devices per (model, reported version): the exposure of a release."""
        return {(m, v): n for m, v, n, _stale in self.rows if v}


def fleet_summary(
    sessions: sessionmaker[Session], *, stale_hours: int = 24, now: datetime | None = None
) -> FleetSummary:
    """One scan of the devices, grouped by (model, version, group): every count the fleet views need."""
    cutoff = (now or datetime.now(UTC)) - timedelta(hours=stale_hours)
    stale = case((or_(Device.last_seen.is_(None), Device.last_seen < cutoff), 1), else_=0)
    failed = case((Device.last_status.in_(sorted(rules.ERROR_STATES)), 1), else_=0)
    q = (
        select(Device.model, Device.version, Device.group, func.count(), func.sum(stale), func.sum(failed))
        .where(Device.credential_hash != "")
        .group_by(Device.model, Device.version, Device.group)
    )
    per_version: Counter[tuple[str, str]] = Counter()
    per_version_stale: Counter[tuple[str, str]] = Counter()
    per_group: Counter[str] = Counter()
    failures = 0
    with sessions() as s:
        for model, version, group, n, n_stale, n_failed in s.execute(q):
            key = (str(model), str(version or ""))
            per_version[key] += int(n)
            per_version_stale[key] += int(n_stale or 0)
            per_group[str(group)] += int(n)
            failures += int(n_failed or 0)
    rows = tuple((m, v, per_version[(m, v)], per_version_stale[(m, v)]) for m, v in sorted(per_version))
    return FleetSummary(
        rows,
        tuple(sorted(per_group.items())),
        sum(per_version.values()),
        sum(per_version_stale.values()),
        failures,
        stale_hours,
    )


def paused_by_errors(sessions: sessionmaker[Session]) -> int:
    """Rollouts the error threshold paused (an open alert)."""
    q = select(func.count()).where(Rollout.state == "paused", Rollout.state_reason.like("error_threshold%"))
    with sessions() as s:
        return int(s.scalar(q) or 0)


@dataclass(frozen=True)
class DeviceFilter:
    """Device search: an id substring and exact filters; ``seen_hours`` keeps devices not seen for that long."""

    q: str = ""
    model: str = ""
    group: str = ""
    version: str = ""
    state: str = ""
    seen_hours: int | None = None

    def query_string(self) -> dict[str, str]:
        """The non-empty fields, for links that keep the filter."""
        names = {"seen_hours": "seen"}
        return {names.get(k, k): str(v) for k, v in self.__dict__.items() if v not in ("", None)}


@dataclass(frozen=True)
class DevicePage:
    """One page of devices and the total that match."""

    rows: tuple[dict[str, Any], ...]
    total: int
    page: int
    pages: int
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _filtered(q: Any, f: DeviceFilter, now: datetime) -> Any:
    if f.q:
        escaped = f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Device.id.like(f"%{escaped}%", escape="\\"))
    for column, value in ((Device.model, f.model), (Device.group, f.group), (Device.version, f.version)):
        if value:
            q = q.where(column == value)
    if f.state == "decommissioned":
        q = q.where(Device.credential_hash == "")
    elif f.state == "never":
        q = q.where(Device.last_status.is_(None), Device.credential_hash != "")
    elif f.state:
        q = q.where(Device.last_status == f.state, Device.credential_hash != "")
    if f.seen_hours is not None:
        cutoff = now - timedelta(hours=f.seen_hours)
        q = q.where(or_(Device.last_seen.is_(None), Device.last_seen < cutoff))
    return q


def device_page(
    sessions: sessionmaker[Session], f: DeviceFilter, *, page: int = 1, size: int = PAGE_SIZE
) -> DevicePage:
    """Devices matching ``f``, ordered by id, one page (server-side: a count and an indexed, offset page)."""
    now = datetime.now(UTC)
    columns = (
        Device.id,
        Device.model,
        Device.group,
        Device.version,
        Device.secure_version,
        Device.slot,
        Device.last_status,
        Device.last_seen,
        Device.credential_hash != "",
    )
    with sessions() as s:
        total = int(s.scalar(_filtered(select(func.count()).select_from(Device), f, now)) or 0)
        pages = max(1, -(-total // size))
        page = min(max(1, page), pages)
        q = _filtered(select(*columns), f, now).order_by(Device.id).offset((page - 1) * size).limit(size)
        keys = ("id", "model", "group", "version", "secure_version", "slot", "last_status", "last_seen", "active")
        rows = tuple(dict(zip(keys, r, strict=True)) for r in s.execute(q))
    return DevicePage(rows, total, page, pages)


def facets(sessions: sessionmaker[Session]) -> dict[str, tuple[str, ...]]:
    """The models, groups and versions present (the filter form's choices); one grouped query."""
    q = select(Device.model, Device.group, Device.version).group_by(Device.model, Device.group, Device.version)
    models: set[str] = set()
    groups: set[str] = set()
    versions: set[str] = set()
    with sessions() as s:
        for m, g, v in s.execute(q):
            models.add(m)
            groups.add(g)
            if v:
                versions.add(v)
    return {"model": tuple(sorted(models)), "group": tuple(sorted(groups)), "version": tuple(sorted(versions))}


def device_assignments(sessions: sessionmaker[Session], device_id: str) -> list[dict[str, Any]]:
    """A device's assignments in every rollout, newest first (its current one is the first active one)."""
    q = (
        select(Assignment, Rollout.state, Rollout.name, Release.target_path, Release.version)
        .join(Rollout, Rollout.id == Assignment.rollout_id)
        .join(Release, Release.id == Rollout.release_id)
        .where(Assignment.device_id == device_id)
        .order_by(Assignment.rollout_id.desc())
        .limit(50)
    )
    with sessions() as s:
        return [
            {
                "rollout": a.rollout_id,
                "rollout_name": name,
                "rollout_state": ro_state,
                "release": path,
                "version": version,
                "phase": a.phase + 1,
                "state": a.state,
                "reason": a.reason,
                "updated": a.updated,
                "current": a.state in rules.ACTIVE_STATES and ro_state == "running",
            }
            for a, ro_state, name, path, version in s.execute(q)
        ]


def device_reports(sessions: sessionmaker[Session], device_id: str, *, limit: int = 200) -> list[Report]:
    """A device's reports, newest first."""
    q = select(Report).where(Report.device_id == device_id).order_by(Report.id.desc()).limit(limit)
    with sessions() as s:
        return list(s.scalars(q))


@dataclass(frozen=True)
class RolloutProgress:
    """A rollout's state and its devices counted per phase and state, with failure reasons grouped."""

    id: int
    state: str
    state_reason: str | None
    current_phase: int  # 1-based
    phases: tuple[dict[str, int], ...]
    reasons: tuple[tuple[str, str, int], ...]  # state, reason, devices (most frequent first)

    @property
    def totals(self) -> dict[str, int]:
        """Devices per state over all phases."""
        c: Counter[str] = Counter()
        for p in self.phases:
            c.update(p)
        return dict(c)


def rollout_progress(sessions: sessionmaker[Session], rollout_id: int, phase_count: int) -> RolloutProgress | None:
    """One statement: the rollout's state joined with its assignments grouped by phase, state and reason."""
    q = (
        select(
            Rollout.state,
            Rollout.state_reason,
            Rollout.current_phase,
            Assignment.phase,
            Assignment.state,
            Assignment.reason,
            func.count(Assignment.id),
        )
        .select_from(Rollout)
        .outerjoin(Assignment, Assignment.rollout_id == Rollout.id)
        .where(Rollout.id == rollout_id)
        .group_by(
            Rollout.state,
            Rollout.state_reason,
            Rollout.current_phase,
            Assignment.phase,
            Assignment.state,
            Assignment.reason,
        )
    )
    with sessions() as s:
        rows: list[Any] = list(s.execute(q).all())
    if not rows:
        return None
    phases: list[Counter[str]] = [Counter() for _ in range(phase_count)]
    reasons: Counter[tuple[str, str]] = Counter()
    for _st, _why, _cur, phase, state, reason, n in rows:
        if phase is None:
            continue
        if phase < phase_count:
            phases[phase][state] += n
        if reason and (state in rules.ERROR_STATES or state == "skipped"):
            reasons[(state, reason)] += n
    st, why, cur = rows[0][0], rows[0][1], rows[0][2]
    ordered = tuple((s_, r_, n) for (s_, r_), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return RolloutProgress(rollout_id, st, why, cur + 1, tuple(dict(p) for p in phases), ordered)


def rollout_summaries(
    sessions: sessionmaker[Session], *, state: str = "", page: int = 1, size: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """One page of rollouts (newest first) with release and device counts by state, and the number of pages.

    Three statements whatever the page size: the total, the page of rollouts, and the counts of those rollouts.
    """
    q = select(Rollout, Release.target_path, Release.version).join(Release, Release.id == Rollout.release_id)
    total_q = select(func.count()).select_from(Rollout)
    if state:
        q = q.where(Rollout.state == state)
        total_q = total_q.where(Rollout.state == state)
    with sessions() as s:
        total = int(s.scalar(total_q) or 0)
        pages = max(1, -(-total // size))
        page = min(max(1, page), pages)
        rollouts = s.execute(q.order_by(Rollout.id.desc()).offset((page - 1) * size).limit(size)).all()
        ids = [ro.id for ro, _p, _v in rollouts]
        per: dict[int, Counter[str]] = {}
        if ids:
            counts = (
                select(Assignment.rollout_id, Assignment.state, func.count())
                .where(Assignment.rollout_id.in_(ids))
                .group_by(Assignment.rollout_id, Assignment.state)
            )
            for rid, st, n in s.execute(counts):
                per.setdefault(int(rid), Counter())[st] += n
    rows = [
        {
            "id": ro.id,
            "name": ro.name,
            "release": path,
            "version": version,
            "state": ro.state,
            "state_reason": ro.state_reason,
            "current_phase": ro.current_phase + 1,
            "phase_count": len(ro.phases),
            "counts": dict(per.get(ro.id, Counter())),
            "created": ro.created,
            "updated": ro.updated,
        }
        for ro, path, version in rollouts
    ]
    return rows, pages
