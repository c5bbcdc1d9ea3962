"""Console pages: Releases (with SBOM components and findings), Vulnerabilities (with exposure), Audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from medfw.server.console.audit_view import AuditFilter, read_trail
from medfw.server.console.vulns import VulnSource
from medfw.server.console.web import Console
from medfw.server.errors import NotFound
from medfw.server.views import ReleaseView

__all__ = ["routes"]

_Text = Annotated[str, Query(max_length=64)]
_AUDIT_PAGE = 100


def _sbom_sha(release: ReleaseView) -> str:
    return str((release.sbom or {}).get("sha256", ""))


def _parse_time(value: str, name: str, errors: dict[str, str]) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        errors[name] = "a date and time like 2026-01-31T12:00 (UTC)"
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def routes(c: Console, vulns: VulnSource | None) -> APIRouter:
    """Release, vulnerability and audit routes."""
    r = APIRouter(include_in_schema=False)

    @r.get("/releases")
    def releases(request: Request) -> Response:
        viewer = c.viewer(request)
        rows = list(reversed(c.service.releases()))
        in_use = c.fleet().in_use()
        return c.render(request, "releases.html", viewer, title="Releases", rows=rows, in_use=in_use)

    @r.get("/releases/{release_id}")
    def release(request: Request, release_id: int) -> Response:
        viewer = c.viewer(request)
        rel = next((x for x in c.service.releases() if x.id == release_id), None)
        if rel is None:
            raise NotFound(f"no release {release_id}")
        found = vulns.for_sbom(_sbom_sha(rel)) if vulns is not None else None
        devices = c.fleet().in_use().get((rel.model, rel.version), 0)
        return c.render(
            request,
            "release.html",
            viewer,
            title=f"Release {rel.target_path}",
            rel=rel,
            found=found,
            vulns_configured=vulns is not None,
            vuln_error=vulns.error if vulns is not None else "",
            devices=devices,
        )

    @r.get("/vulnerabilities")
    def vulnerabilities(request: Request) -> Response:
        viewer = c.viewer(request)
        rows = vulns.exposure(c.service) if vulns is not None else []
        return c.render(
            request,
            "vulnerabilities.html",
            viewer,
            title="Vulnerabilities",
            configured=vulns is not None,
            vuln_error=vulns.error if vulns is not None else "",
            rows=rows,
        )

    @r.get("/audit")
    def audit(
        request: Request,
        *,
        actor: _Text = "",
        type: _Text = "",
        device: _Text = "",
        since: _Text = "",
        until: _Text = "",
        page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    ) -> Response:
        viewer = c.viewer(request)
        errors: dict[str, str] = {}
        f = AuditFilter(
            actor=actor.strip(),
            type=type.strip(),
            device=device.strip(),
            since=_parse_time(since, "since", errors),
            until=_parse_time(until, "until", errors),
        )
        entries, status = read_trail(c.audit_log) if c.audit_log else ([], None)
        matching = [e for e in reversed(entries) if f.matches(e)]
        start = (page - 1) * _AUDIT_PAGE
        return c.render(
            request,
            "audit.html",
            viewer,
            title="Audit",
            configured=bool(c.audit_log),
            status=422 if errors else 200,
            chain=status,
            entries=matching[start : start + _AUDIT_PAGE],
            total=len(matching),
            page=page,
            pages=max(1, -(-len(matching) // _AUDIT_PAGE)),
            params={"actor": actor, "type": type, "device": device, "since": since, "until": until},
            types=sorted({e.type for e in entries}),
            errors=errors,
        )

    return r
