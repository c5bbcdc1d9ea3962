"""The SQL of the fleet-wide views: one statement per view (a count and an indexed page where a list is paged).

Each function takes an open session and returns the read models of :mod:`medfw.server.views_fleet`; the service
(:mod:`medfw.server.fleet_views`) opens the sessions and applies no SQL of its own.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select
from sqlalchemy.orm import Session, defer

from medfw.server import rollout as rules
from medfw.server.models import Assignment, Device, Release, Report, Rollout
from medfw.server.models_documents import ReleaseDocumentRow
from medfw.server.rows import report_view
from medfw.server.views import ReportView
from medfw.server.views_fleet import (
    AssignmentRow,
    DeviceDetail,
    DeviceFilter,
    DevicePage,
    DeviceState,
    DocumentKind,
    FleetSummary,
    ReleaseDocument,
    RolloutHeader,
    RolloutProgress,
    RolloutSummary,
)

__all__ = [
    "delete_document",
    "device_assignments",
    "device_detail",
    "device_page",
    "device_reports",
    "document_content",
    "document_kinds",
    "documents",
    "facets",
    "fleet_summary",
    "paused_by_errors",
    "put_document",
    "rollout_header",
    "rollout_progress",
    "rollout_summaries",
]

_DEVICE_COLUMNS = (
    Device.id,
    Device.model,
    Device.chip,
    Device.group,
    Device.version,
    Device.secure_version,
    Device.slot,
    Device.last_status,
    Device.last_seen,
    Device.created,
    Device.credential_hash != "",
)


def fleet_summary(s: Session, *, stale_hours: int, now: datetime) -> FleetSummary:
    """One scan of the devices, grouped by (model, version, group): every count the fleet views need."""
    cutoff = now - timedelta(hours=stale_hours)
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
    for model, version, group, n, n_stale, n_failed in s.execute(q):
        key = (str(model), str(version or ""))
        per_version[key] += int(n)
        per_version_stale[key] += int(n_stale or 0)
        per_group[str(group)] += int(n)
        failures += int(n_failed or 0)
    rows = tuple((m, v, per_version[(m, v)], per_version_stale[(m, v)]) for m, v in sorted(per_version))
    total, n_stale = sum(per_version.values()), sum(per_version_stale.values())
    return FleetSummary(rows, tuple(sorted(per_group.items())), total, n_stale, failures, stale_hours)


def paused_by_errors(s: Session) -> int:
    """Rollouts the error threshold paused (an open alert)."""
    q = select(func.count()).where(Rollout.state == "paused", Rollout.state_reason.like("error_threshold%"))
    return int(s.scalar(q) or 0)


def _filtered(q: Any, f: DeviceFilter, now: datetime) -> Any:
    if f.q:
        escaped = f.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(Device.id.like(f"%{escaped}%", escape="\\"))
    for column, value in ((Device.model, f.model), (Device.group, f.group), (Device.version, f.version)):
        if value:
            q = q.where(column == value)
    if f.state == DeviceState.DECOMMISSIONED:
        q = q.where(Device.credential_hash == "")
    elif f.state == DeviceState.NEVER:
        q = q.where(Device.last_status.is_(None), Device.credential_hash != "")
    elif f.state is not None:
        q = q.where(Device.last_status == f.state.value, Device.credential_hash != "")
    if f.seen_hours is not None:
        cutoff = now - timedelta(hours=f.seen_hours)
        q = q.where(or_(Device.last_seen.is_(None), Device.last_seen < cutoff))
    return q


def _detail(row: Any) -> DeviceDetail:
    return DeviceDetail(*row)


def device_page(s: Session, f: DeviceFilter, *, page: int, size: int, now: datetime) -> DevicePage:
    """Devices matching ``f``, ordered by id, one page (server-side: a count and an indexed, offset page)."""
    total = int(s.scalar(_filtered(select(func.count()).select_from(Device), f, now)) or 0)
    pages = max(1, -(-total // size))
    page = min(max(1, page), pages)
    q = _filtered(select(*_DEVICE_COLUMNS), f, now).order_by(Device.id).offset((page - 1) * size).limit(size)
    return DevicePage(tuple(_detail(r) for r in s.execute(q)), total, page, pages)


def device_detail(s: Session, device_id: str) -> DeviceDetail | None:
    """One device, or ``None``."""
    row = s.execute(select(*_DEVICE_COLUMNS).where(Device.id == device_id)).first()
    return None if row is None else _detail(row)


def facets(s: Session) -> dict[str, tuple[str, ...]]:
    """The models, groups and versions present (the filter form's choices); one grouped query."""
    q = select(Device.model, Device.group, Device.version).group_by(Device.model, Device.group, Device.version)
    models: set[str] = set()
    groups: set[str] = set()
    versions: set[str] = set()
    for m, g, v in s.execute(q):
        models.add(m)
        groups.add(g)
        if v:
            versions.add(v)
    return {"model": tuple(sorted(models)), "group": tuple(sorted(groups)), "version": tuple(sorted(versions))}


def device_assignments(s: Session, device_id: str, *, limit: int = 50) -> list[AssignmentRow]:
    """A device's assignments in every rollout, newest first (its current one is the first active one)."""
    q = (
        select(Assignment, Rollout.state, Rollout.name, Release.target_path, Release.version)
        .join(Rollout, Rollout.id == Assignment.rollout_id)
        .join(Release, Release.id == Rollout.release_id)
        .where(Assignment.device_id == device_id)
        .order_by(Assignment.rollout_id.desc())
        .limit(limit)
    )
    return [
        AssignmentRow(
            rollout=a.rollout_id,
            rollout_name=name,
            rollout_state=ro_state,
            release=path,
            version=version,
            phase=a.phase + 1,
            state=a.state,
            reason=a.reason,
            updated=a.updated,
            current=a.state in rules.ACTIVE_STATES and ro_state == "running",
        )
        for a, ro_state, name, path, version in s.execute(q)
    ]


def device_reports(s: Session, device_id: str, *, limit: int) -> list[ReportView]:
    """A device's reports, newest first."""
    q = select(Report).where(Report.device_id == device_id).order_by(Report.id.desc()).limit(limit)
    return [report_view(r) for r in s.scalars(q)]


def rollout_header(s: Session, rollout_id: int) -> RolloutHeader | None:
    """A rollout's settings and its release, or ``None``."""
    q = select(Rollout, Release).join(Release, Release.id == Rollout.release_id).where(Rollout.id == rollout_id)
    row = s.execute(q).first()
    if row is None:
        return None
    ro, rel = row
    return RolloutHeader(
        id=ro.id,
        name=ro.name,
        state=ro.state,
        target=dict(ro.target or {}),
        phases=tuple(ro.phases),
        success_threshold=ro.success_threshold,
        error_threshold=ro.error_threshold,
        created=ro.created,
        release_id=rel.id,
        release=rel.target_path,
        version=rel.version,
        secure_version=rel.secure_version,
    )


def rollout_progress(s: Session, rollout_id: int, phase_count: int) -> RolloutProgress | None:
    """One statement: the rollout's state joined with its assignments grouped by phase, state and reason."""
    keys = (Rollout.state, Rollout.state_reason, Rollout.current_phase, Assignment.phase, Assignment.state)
    q = (
        select(*keys, Assignment.reason, func.count(Assignment.id))
        .select_from(Rollout)
        .outerjoin(Assignment, Assignment.rollout_id == Rollout.id)
        .where(Rollout.id == rollout_id)
        .group_by(*keys, Assignment.reason)
    )
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


def rollout_summaries(s: Session, *, state: str, page: int, size: int) -> tuple[list[RolloutSummary], int]:
    """One page of rollouts (newest first) with release and device counts by state, and the number of pages.

    Three statements whatever the page size: the total, the page of rollouts, and the counts of those rollouts.
    """
    q = select(Rollout, Release.target_path, Release.version).join(Release, Release.id == Rollout.release_id)
    total_q = select(func.count()).select_from(Rollout)
    if state:
        q = q.where(Rollout.state == state)
        total_q = total_q.where(Rollout.state == state)
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
        RolloutSummary(
            id=ro.id,
            name=ro.name,
            release=path,
            version=version,
            state=ro.state,
            state_reason=ro.state_reason,
            current_phase=ro.current_phase + 1,
            phase_count=len(ro.phases),
            counts=dict(per.get(ro.id, Counter())),
            created=ro.created,
            updated=ro.updated,
        )
        for ro, path, version in rollouts
    ]
    return rows, pages


def _document(row: ReleaseDocumentRow) -> ReleaseDocument:
    return ReleaseDocument(
        release_id=row.release_id,
        kind=DocumentKind(row.kind),
        filename=row.filename,
        media_type=row.media_type,
        sha256=row.sha256,
        size=row.size,
        attached=row.attached,
        attached_by=row.attached_by,
        summary=dict(row.summary or {}),
    )


def documents(s: Session, release_id: int) -> list[ReleaseDocument]:
    """The documents of a release (without their bytes), in the order of :class:`DocumentKind`."""
    q = (
        select(ReleaseDocumentRow)
        .where(ReleaseDocumentRow.release_id == release_id)
        .options(defer(ReleaseDocumentRow.content))
    )
    order = list(DocumentKind)
    return sorted((_document(r) for r in s.scalars(q)), key=lambda d: order.index(d.kind))


def document_kinds(s: Session) -> dict[int, list[DocumentKind]]:
    """Which kinds of document each release has (one statement over every release)."""
    out: dict[int, list[DocumentKind]] = {}
    q = select(ReleaseDocumentRow.release_id, ReleaseDocumentRow.kind).order_by(ReleaseDocumentRow.release_id)
    for release_id, kind in s.execute(q):
        out.setdefault(int(release_id), []).append(DocumentKind(kind))
    order = list(DocumentKind)
    return {k: sorted(v, key=order.index) for k, v in out.items()}


def document_content(s: Session, release_id: int, kind: DocumentKind) -> tuple[ReleaseDocument, bytes] | None:
    """A document and its bytes, or ``None``."""
    q = select(ReleaseDocumentRow).where(
        ReleaseDocumentRow.release_id == release_id, ReleaseDocumentRow.kind == kind.value
    )
    row = s.scalars(q).first()
    return None if row is None else (_document(row), bytes(row.content))


def put_document(s: Session, doc: ReleaseDocument, content: bytes) -> bool:
    """Store ``doc`` (replacing the release's document of that kind); whether one was replaced."""
    replaced = delete_document(s, doc.release_id, doc.kind)
    s.add(
        ReleaseDocumentRow(
            release_id=doc.release_id,
            kind=doc.kind.value,
            filename=doc.filename,
            media_type=doc.media_type,
            sha256=doc.sha256,
            size=doc.size,
            content=content,
            summary=dict(doc.summary),
            attached=doc.attached,
            attached_by=doc.attached_by,
        )
    )
    return replaced


def delete_document(s: Session, release_id: int, kind: DocumentKind) -> bool:
    """Remove a release's document of ``kind``; whether there was one."""
    q = delete(ReleaseDocumentRow).where(
        ReleaseDocumentRow.release_id == release_id, ReleaseDocumentRow.kind == kind.value
    )
    return bool(s.execute(q).rowcount)  # type: ignore[attr-defined]
