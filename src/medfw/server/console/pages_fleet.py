"""Console pages: Fleet (with its live fragment), Devices (search, filter, pagination) and one device's timeline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from medfw.server.console.audit_view import device_audit_entries
from medfw.server.console.web import Console
from medfw.server.views_fleet import DeviceFilter, DeviceState

__all__ = ["routes"]

_STATES = tuple(s.value for s in DeviceState)
_Text = Annotated[str, Query(max_length=64)]


def _fleet_context(c: Console) -> dict[str, Any]:
    summary = c.fleet()
    chart_rows = [(f"{m} {v or '(not reported)'}", n) for m, v, n, _stale in summary.rows]
    return {"summary": summary, "chart_rows": chart_rows}


def routes(c: Console) -> APIRouter:
    """The fleet and device routes."""
    r = APIRouter(include_in_schema=False)

    @r.get("/")
    def fleet(request: Request) -> Response:
        viewer = c.viewer(request)
        ctx = _fleet_context(c)
        return c.render(
            request,
            "fleet.html",
            viewer,
            title="Fleet",
            paused_by_errors=c.service.paused_by_errors(),
            **ctx,
        )

    @r.get("/live/fleet")
    def fleet_live(request: Request) -> Response:
        viewer = c.viewer(request)
        return c.render(request, "_fleet_live.html", viewer, **_fleet_context(c))

    @r.get("/devices")
    def devices(
        request: Request,
        *,
        q: _Text = "",
        model: _Text = "",
        group: _Text = "",
        version: _Text = "",
        state: _Text = "",
        seen: Annotated[str, Query(max_length=6)] = "",
        page: Annotated[str, Query(max_length=9)] = "1",
    ) -> Response:
        viewer = c.viewer(request)
        errors: dict[str, str] = {}
        seen_hours = _int_or_error(seen, "seen", errors, low=1, high=24 * 365) if seen else None
        page_no = _int_or_error(page, "page", errors, low=1, high=10**8) or 1
        if state and state not in _STATES:
            errors["state"] = f"unknown state (one of {', '.join(_STATES)})"
            state = ""
        f = DeviceFilter(
            q=q.strip(),
            model=model,
            group=group,
            version=version,
            state=DeviceState(state) if state else None,
            seen_hours=seen_hours,
        )
        result = c.service.device_page(f, page=page_no)
        return c.render(
            request,
            "devices.html",
            viewer,
            title="Devices",
            f=f,
            params=f.query_string(),
            result=result,
            facets=c.cached("facets", 30.0, c.service.device_facets),
            states=_STATES,
            errors=errors,
            status=422 if errors else 200,
        )

    @r.get("/devices/{device_id}")
    def device(request: Request, device_id: str) -> Response:
        viewer = c.viewer(request)
        dev = c.service.device_detail(device_id)
        reports = c.service.device_reports(device_id)
        return c.render(
            request,
            "device.html",
            viewer,
            title=f"Device {device_id}",
            dev=dev,
            reports=reports,
            versions=_versions_over_time(reports),
            assignments=c.service.device_assignments(device_id),
            audit=device_audit_entries(c.audit_log, device_id),
            audit_configured=bool(c.audit_log),
        )

    return r


def _int_or_error(value: str, name: str, errors: dict[str, str], *, low: int, high: int) -> int | None:
    try:
        n = int(value)
    except ValueError:
        errors[name] = "a whole number"
        return None
    if not low <= n <= high:
        errors[name] = f"between {low} and {high}"
        return None
    return n


def _versions_over_time(reports: list[Any]) -> list[dict[str, Any]]:
    """When the device first reported each version (oldest first), from its reports."""
    out: list[dict[str, Any]] = []
    for rep in reversed(reports):
        if rep.version and (not out or out[-1]["version"] != rep.version):
            out.append({"version": rep.version, "secure_version": rep.secure_version, "since": rep.created})
    return out
