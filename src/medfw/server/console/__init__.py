"""The fleet server's web console: server-rendered pages for operators and reviewers at ``/``.

Pages are Jinja2 templates over the same :class:`~medfw.server.service.FleetService` the JSON API uses (every
action goes through the same service call and writes the same audit event, with the signed-in token's name as the
actor). Progressive enhancement only: every page and form works without JavaScript; one small script of our own
shows times in the viewer's zone and refreshes live counts. No request leaves the server's origin: the stylesheet,
the script and Swagger UI for ``/docs`` are served from files shipped in the package.

:func:`attach_console` adds the console to an app built by :func:`medfw.server.app.create_app`.
"""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from medfw.errors import MedfwError
from medfw.server.console import pages_access, pages_fleet, pages_records, pages_rollouts
from medfw.server.console.security import Forbidden, SecurityHeaders, SignInRequired
from medfw.server.console.sessions import SessionStore
from medfw.server.console.vulns import VulnSource
from medfw.server.console.web import Console
from medfw.server.http import status_of
from medfw.server.service import FleetService

__all__ = ["Console", "attach_console"]

_API_PREFIXES = ("/api/", "/tuf/", "/healthz", "/openapi.json", "/static/")
_STATIC = Path(__file__).parent / "static"


def _is_console(request: Request) -> bool:
    return not request.url.path.startswith(_API_PREFIXES)


def _error_page(c: Console, request: Request, status: int, message: str) -> Response:
    viewer = None
    try:
        viewer = c.store.lookup(request.cookies.get("medfw_session"))
    except MedfwError:
        viewer = None
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 422: "Not accepted"}
    return c.render(
        request, "error.html", viewer, title=titles.get(status, "Error"), message=message, code=status, status=status
    )


async def _call(handler: Any, request: Request, exc: Exception) -> Response:
    """Run one of the app's own (JSON) exception handlers, sync or async."""
    result = handler(request, exc)
    if inspect.isawaitable(result):
        result = await result
    assert isinstance(result, Response)
    return result


def _install_handlers(app: FastAPI, c: Console) -> None:
    json_medfw_error = app.exception_handlers.get(MedfwError)
    json_http_error = app.exception_handlers.get(StarletteHTTPException)

    async def sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        from urllib.parse import urlencode  # noqa: PLC0415

        query = {"next": exc.next_path, **({"expired": "1"} if exc.message else {})}
        return RedirectResponse("/login?" + urlencode(query), status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Forbidden)
        return _error_page(c, request, 403, exc.message)

    async def medfw_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MedfwError)
        if _is_console(request):
            return _error_page(c, request, status_of(exc), exc.message)
        assert json_medfw_error is not None
        return await _call(json_medfw_error, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_console(request) and "text/html" in request.headers.get("accept", ""):
            return _error_page(c, request, exc.status_code, str(exc.detail))
        assert json_http_error is not None
        return await _call(json_http_error, request, exc)

    app.add_exception_handler(SignInRequired, sign_in)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(MedfwError, medfw_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def attach_console(
    app: FastAPI,
    service: FleetService,
    *,
    audit_log: str | None = None,
    vuln_db: str | None = None,
    stale_hours: int = 24,
    refresh_seconds: int = 5,
    store: SessionStore | None = None,
) -> Console:
    """Serve the console from ``app``: pages, static files, ``/docs`` from vendored Swagger UI, security headers.

    Args:
        app: the fleet server app (its JSON API stays as it is).
        service: the app's fleet service.
        audit_log: the server's audit log (the Audit page and device timelines read it).
        vuln_db: a vulnerability index URL (findings on the Releases and Vulnerabilities pages).
        stale_hours: a device not seen for this long counts as stale on the Fleet page.
        refresh_seconds: how often open pages refresh their live counts.
        store: console sessions (default: in the fleet database, 30 min idle, 12 h absolute).
    """
    c = Console(
        service,
        store or SessionStore(service.sessions),
        audit_log=audit_log,
        vuln_db=vuln_db,
        stale_hours=stale_hours,
        refresh_seconds=refresh_seconds,
    )
    # FastAPI's own /docs pages load Swagger UI from a CDN with inline script: the console serves its own.
    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in ("/docs", "/docs/oauth2-redirect", "/redoc")
    ]
    vulns = VulnSource(vuln_db) if vuln_db else None
    for router in (
        pages_access.routes(c),
        pages_fleet.routes(c),
        pages_rollouts.routes(c),
        pages_records.routes(c, vulns),
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=_STATIC), name="console-static")
    app.add_middleware(SecurityHeaders)
    _install_handlers(app, c)
    app.state.console = c
    if audit_log:  # read the trail once in the background, so the first page that shows it need not wait for it
        threading.Thread(target=_warm_trail, args=(audit_log,), name="console-audit-trail", daemon=True).start()
    return c


def _warm_trail(path: str) -> None:
    from medfw.server.console.audit_view import read_trail  # noqa: PLC0415

    read_trail(path)  # errors are shown by the page that reads it next
