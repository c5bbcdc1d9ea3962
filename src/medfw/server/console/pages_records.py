"""Console pages: Releases (with SBOM components and findings), Vulnerabilities (with exposure), Audit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from medfw.server.console.audit_view import AuditFilter, read_trail
from medfw.server.console.vulns import VulnSource
from medfw.server.console.web import Console
from medfw.server.errors import NotFound
from medfw.server.routers.views import document_response
from medfw.server.views import ReleaseView
from medfw.server.views_fleet import DocumentKind

__all__ = ["routes"]

_Text = Annotated[str, Query(max_length=64)]
_Id = Annotated[int, Path(ge=1, le=2**31 - 1)]

#: how each kind of release document is named on the pages
LABELS = {
    DocumentKind.EVIDENCE: "Evidence bundle",
    DocumentKind.VEX_CYCLONEDX: "VEX (CycloneDX)",
    DocumentKind.VEX_OPENVEX: "VEX (OpenVEX)",
    DocumentKind.CSAF: "CSAF advisory",
    DocumentKind.CSAF_SIGNATURE: "CSAF signature",
}
#: VEX generated from the decisions recorded now: format → (label, file suffix)
VEX_FORMATS = {
    "cyclonedx": ("CycloneDX 1.6", "cdx.json"),
    "openvex": ("OpenVEX 0.2", "openvex.json"),
    "csaf": ("CSAF 2.0 VEX", "csaf.json"),
}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-+" else "_" for ch in name)[:128]


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
        docs = c.service.document_kinds()
        return c.render(
            request, "releases.html", viewer, title="Releases", rows=rows, in_use=in_use, docs=docs, labels=LABELS
        )

    @r.get("/releases/{release_id}")
    def release(request: Request, release_id: _Id) -> Response:
        viewer = c.viewer(request)
        rel = c.service.release_by_id(release_id)
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
            documents=c.service.release_documents(rel.id),
            labels=LABELS,
            vex_formats=VEX_FORMATS,
        )

    @r.get("/releases/{release_id}/documents/{kind}")
    def document(request: Request, release_id: _Id, kind: DocumentKind) -> Response:
        c.viewer(request)
        doc, data = c.service.release_document(release_id, kind)
        return document_response(doc, data)

    @r.get("/releases/{release_id}/vex/{fmt}")
    def live_vex(request: Request, release_id: _Id, fmt: str) -> Response:
        c.viewer(request)
        if fmt not in VEX_FORMATS:
            raise NotFound(f"no VEX format {fmt!r}")
        rel = c.service.release_by_id(release_id)
        data = vulns.vex(_sbom_sha(rel), fmt) if vulns is not None else None
        if data is None:
            raise NotFound(f"the vulnerability index holds no SBOM of release {release_id}")
        name = f"{rel.version}-vex-now.{VEX_FORMATS[fmt][1]}"
        headers = {"Content-Disposition": f'attachment; filename="{_safe(name)}"', "X-Content-Type-Options": "nosniff"}
        return Response(data, media_type="application/json", headers={**headers, "Cache-Control": "no-store"})

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
