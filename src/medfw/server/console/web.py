"""The console's shared machinery: templates (Jinja2, autoescaped), the signed-in viewer, forms with CSRF checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from medfw import __version__
from medfw.audit.sink import AuditEvent
from medfw.server.console import charts
from medfw.server.console.security import check_csrf, viewer_of
from medfw.server.console.sessions import LoginThrottle, SessionStore, Viewer
from medfw.server.credentials import Role
from medfw.server.service import FleetService

__all__ = ["NAV", "Console", "when"]

_HERE = Path(__file__).parent

#: (path, label, minimum role) of the navigation bar
NAV = (
    ("/", "Fleet", Role.READ_ONLY),
    ("/devices", "Devices", Role.READ_ONLY),
    ("/rollouts", "Rollouts", Role.READ_ONLY),
    ("/releases", "Releases", Role.READ_ONLY),
    ("/vulnerabilities", "Vulnerabilities", Role.READ_ONLY),
    ("/audit", "Audit", Role.READ_ONLY),
    ("/tokens", "Tokens", Role.ADMIN),
)


def _as_datetime(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def when(value: datetime | str | None, empty: str = "never") -> Markup:
    """A ``<time>`` element: UTC in the text and on hover; the page script shows it in the viewer's zone."""
    dt = _as_datetime(value)
    if dt is None:
        return Markup("<span class='muted'>{}</span>").format(empty)
    utc = dt.astimezone(UTC)
    iso = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(iso, text, text)


def _query(base: str, params: dict[str, Any], **changes: Any) -> str:
    from urllib.parse import urlencode  # noqa: PLC0415

    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return base + ("?" + urlencode(merged) if merged else "")


@dataclass
class Console:
    """What every console page needs: the fleet service, sessions, templates and the optional data sources."""

    service: FleetService
    store: SessionStore
    audit_log: str | None = None
    vuln_db: str | None = None
    stale_hours: int = 24
    refresh_seconds: int = 5
    #: seconds fleet-wide counts are reused within a process (default: the refresh interval)
    aggregate_ttl: float = -1.0
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    env: jinja2.Environment = field(init=False)
    _memo: dict[str, tuple[float, Any]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.aggregate_ttl < 0:
            self.aggregate_ttl = float(self.refresh_seconds)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            when=when,
            nav=NAV,
            version=__version__,
            progress_bar=charts.progress_bar,
            bar_chart=charts.bar_chart,
            state_class=charts.state_class,
            state_order=charts.STATE_ORDER,
            query=_query,
            Role=Role,
        )

    def cached(self, key: str, seconds: float, compute: Callable[[], Any]) -> Any:
        """``compute()``, remembered for ``seconds`` (for slow-changing aggregates such as filter choices)."""
        now = time.monotonic()
        hit = self._memo.get(key)
        if hit is not None and now - hit[0] < seconds:
            return hit[1]
        value = compute()
        self._memo[key] = (now, value)
        return value

    def fleet(self) -> Any:
        """The fleet's counts (one scan), at most one refresh interval old in this process."""
        return self.cached(
            "fleet", self.aggregate_ttl, lambda: self.service.fleet_summary(stale_hours=self.stale_hours)
        )

    def render(
        self, request: Request, template: str, viewer: Viewer | None, *, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        """Render a page (or a fragment, whose template name starts with ``_``) for ``viewer``."""
        html = self.env.get_template(template).render(
            request_path=request.url.path, viewer=viewer, refresh=self.refresh_seconds, **ctx
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def viewer(self, request: Request, needed: Role = Role.READ_ONLY) -> Viewer:
        """The signed-in viewer with at least ``needed`` (else a redirect to sign-in, or 403)."""
        return viewer_of(request, self.store, needed)

    async def form(self, request: Request, needed: Role) -> tuple[Viewer, FormData]:
        """The viewer and the posted form of a state-changing request, after the role and CSRF checks."""
        viewer = await run_in_threadpool(self.viewer, request, needed)
        form = await request.form(max_files=0, max_fields=64)
        check_csrf(request, form, viewer.csrf)
        return viewer, form

    def audit(self, viewer_or_actor: Viewer | str, outcome: str, action: str, **data: Any) -> None:
        """Record a console event (sign-in, sign-out) with the token's name as the actor."""
        actor = viewer_or_actor.actor if isinstance(viewer_or_actor, Viewer) else viewer_or_actor
        self.service.sink.record(
            AuditEvent(type="config.change", outcome=outcome, actor=actor, data={"action": action, **data})
        )


def text(value: Any) -> Markup:
    """Escape anything for HTML (device-reported strings are hostile)."""
    return escape("" if value is None else str(value))
