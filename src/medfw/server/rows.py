"""Rows of the fleet database as the frozen views the service returns."""

from __future__ import annotations

from datetime import UTC, datetime

from medfw.server.models import ApiToken, Device, Release, Report
from medfw.server.views import DeviceView, ReleaseView, ReportView, TokenView

__all__ = ["device_view", "release_view", "report_view", "token_view"]


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).isoformat()


def token_view(t: ApiToken, when: datetime) -> TokenView:
    """A token row as a view (``active``: neither revoked nor expired at ``when``)."""
    expires = t.expires if t.expires is None or t.expires.tzinfo else t.expires.replace(tzinfo=UTC)
    return TokenView(
        name=t.name,
        role=t.role,
        created=_iso(t.created) or "",
        expires=_iso(t.expires),
        last_used=_iso(t.last_used),
        revoked=_iso(t.revoked),
        active=t.revoked is None and (expires is None or expires > when),
    )


def device_view(d: Device) -> DeviceView:
    """A device row as a view."""
    return DeviceView(
        id=d.id,
        model=d.model,
        chip=d.chip,
        group=d.group,
        version=d.version,
        secure_version=d.secure_version,
        slot=d.slot,
        last_status=d.last_status,
        last_seen=d.last_seen.isoformat() if d.last_seen else None,
        active=bool(d.credential_hash),
    )


def release_view(r: Release) -> ReleaseView:
    """A release row as a view."""
    return ReleaseView(
        id=r.id,
        target_path=r.target_path,
        model=r.model,
        chip=r.chip,
        image_format=r.image_format,
        version=r.version,
        secure_version=r.secure_version,
        length=r.length,
        sha256=r.sha256,
        sbom=dict(r.sbom),
    )


def report_view(r: Report) -> ReportView:
    """A report row as a view."""
    return ReportView(
        id=r.id,
        device=r.device_id,
        rollout=r.rollout_id,
        status=r.status,
        reason=r.reason,
        detail=r.detail,
        version=r.version,
        secure_version=r.secure_version,
        slot=r.slot,
        created=r.created.isoformat(),
    )
