"""Console safety: response headers (strict CSP, no framing, no referrer), who is signed in, CSRF and origin checks.

* Every response of the server carries the headers (the JSON API's too): ``Content-Security-Policy`` allows only
  the server's own scripts, styles, images and connections (no inline script or style, no ``eval``),
  ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``, ``X-Content-Type-Options: nosniff``.
* A state-changing console request must carry the session's CSRF token (a hidden form field) and must not come
  from another site (``Origin`` / ``Sec-Fetch-Site``); otherwise it is refused with 403 and nothing is stored.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request

from medfw.server.console.sessions import SessionStore, Viewer
from medfw.server.credentials import Role

__all__ = [
    "CSP",
    "SESSION_COOKIE",
    "Forbidden",
    "SecurityHeaders",
    "SignInRequired",
    "check_csrf",
    "cross_site",
    "safe_next",
]

SESSION_COOKIE = "medfw_session"
LOGIN_COOKIE = "medfw_login"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding the console's security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in _HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignInRequired(Exception):  # noqa: N818 - a control-flow signal turned into a redirect
    """No valid session: answer with the sign-in page, remembering where the viewer was going."""

    def __init__(self, next_path: str, message: str = "") -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.message = message


class Forbidden(Exception):  # noqa: N818 - turned into a 403 page
    """The viewer may not do this (role, CSRF, cross-site request)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (never another site: ``//host`` and schemes are refused)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value[:512]


def current_path(request: Request) -> str:
    """The request's path and query, for returning to it after sign-in."""
    query = request.url.query
    return quote(request.url.path, safe="/") + (f"?{query}" if query else "")


def viewer_of(request: Request, store: SessionStore, needed: Role = Role.READ_ONLY) -> Viewer:
    """The signed-in viewer, or :class:`SignInRequired` / :class:`Forbidden` (role too low)."""
    viewer = store.lookup(request.cookies.get(SESSION_COOKIE))
    if viewer is None:
        expired = SESSION_COOKIE in request.cookies
        message = "Your session has ended. Sign in again to continue." if expired else ""
        raise SignInRequired(current_path(request) if request.method == "GET" else "/", message)
    if not viewer.can(needed):
        raise Forbidden(f"a {viewer.role.value} token cannot do this (needs {needed.value})")
    return viewer


def cross_site(request: Request) -> bool:
    """Whether the browser says the request comes from another site (``Sec-Fetch-Site``, ``Origin``)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None or origin == "null":  # no-referrer makes browsers send "null": the CSRF token decides
        return False
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return origin.rstrip("/") != own


def check_csrf(request: Request, form: Any, expected: str) -> None:
    """Refuse (403) a form without the expected CSRF token, or sent from another site."""
    if cross_site(request):
        raise Forbidden("cross-site request refused")
    given = form.get("csrf") if form is not None else None
    if not isinstance(given, str) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")


def client_key(request: Request) -> str:
    """The client address a sign-in throttle counts failures against."""
    return request.client.host if request.client else "unknown"
