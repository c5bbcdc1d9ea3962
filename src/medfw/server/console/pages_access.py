"""Console pages: sign-in and sign-out, tokens (admin), and the API docs served from vendored Swagger UI."""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from medfw.server.console.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Forbidden,
    client_key,
    cross_site,
    safe_next,
)
from medfw.server.console.web import Console
from medfw.server.credentials import Role
from medfw.server.errors import ServiceError

__all__ = ["routes"]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_ROLES = tuple(r.value for r in Role)


def _login_page(c: Console, request: Request, *, next_path: str, message: str = "", status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    resp = c.render(
        request, "login.html", None, title="Sign in", next_path=next_path, message=message, csrf=nonce, status=status
    )
    resp.set_cookie(
        LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/login"
    )
    return resp


def routes(c: Console) -> APIRouter:
    """Sign-in, sign-out, tokens and docs routes."""
    r = APIRouter(include_in_schema=False)

    @r.get("/login")
    def login_form(
        request: Request,
        next: Annotated[str, Query(max_length=512)] = "/",
        expired: Annotated[str, Query(max_length=1)] = "",
    ) -> Response:
        message = "Your session has ended. Sign in again to continue." if expired else ""
        return _login_page(c, request, next_path=safe_next(next), message=message)

    @r.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=8)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        given = str(form.get("csrf", ""))
        if cross_site(request) or not nonce or not hmac.compare_digest(given.encode(), nonce.encode()):
            raise Forbidden("sign-in form expired or sent from another site: reload the page")
        next_path = safe_next(str(form.get("next", "/")))
        client = client_key(request)
        await asyncio.sleep(c.throttle.delay(client))
        token = str(form.get("token", "")).strip()
        created = await run_in_threadpool(c.store.create, token) if 0 < len(token) <= 256 else None
        if created is None:
            failures = c.throttle.failed(client)
            await run_in_threadpool(
                c.service.record_denied, "management", actor="unknown", reason="bad_token", data={"via": "console"}
            )
            message = "That token is not valid." + (" Wait a moment before trying again." if failures >= 3 else "")
            return _login_page(c, request, next_path=next_path, message=message, status=401)
        c.throttle.succeeded(client)
        raw, viewer = created
        await run_in_threadpool(c.audit, viewer, "success", "console.sign_in")
        resp = RedirectResponse(next_path, status_code=303)
        resp.set_cookie(
            SESSION_COOKIE, raw, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
        resp.delete_cookie(LOGIN_COOKIE, path="/login")
        return resp

    @r.post("/logout")
    async def logout(request: Request) -> Response:
        viewer, _form = await c.form(request, Role.READ_ONLY)
        await run_in_threadpool(c.store.end, viewer)
        await run_in_threadpool(c.audit, viewer, "success", "console.sign_out")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @r.get("/tokens")
    def tokens(request: Request) -> Response:
        viewer = c.viewer(request, Role.ADMIN)
        return _tokens_page(c, request, viewer, values={}, errors={})

    @r.post("/tokens")
    async def create_token(request: Request) -> Response:
        viewer, form = await c.form(request, Role.ADMIN)
        name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
        errors: dict[str, str] = {}
        if not _NAME_RE.match(name):
            errors["name"] = "1-64 characters: letters, digits and . _ + - (starting with a letter or digit)"
        if role not in _ROLES:
            errors["role"] = "choose admin, operator or read-only"
        created: dict[str, str] = {}
        if not errors:
            try:
                token = await run_in_threadpool(c.service.create_token, name, Role(role), actor=viewer.actor)
            except ServiceError as e:
                errors["name"] = e.message
            else:
                created = {"name": name, "role": role, "token": token}
        values = {"name": name, "role": role} if errors else {}
        status = 422 if errors else 201
        return await run_in_threadpool(
            _tokens_page, c, request, viewer, values=values, errors=errors, created=created, status=status
        )

    @r.post("/tokens/{name}/revoke")
    async def revoke_token(request: Request, name: str) -> Response:
        viewer, _form = await c.form(request, Role.ADMIN)
        await run_in_threadpool(c.service.revoke_token, name, actor=viewer.actor)
        c.store.end_for_token(name)
        return RedirectResponse("/tokens", status_code=303)

    @r.get("/docs")
    def docs(request: Request) -> Response:
        return c.render(request, "docs.html", None, title="API documentation")

    return r


def _tokens_page(
    c: Console,
    request: Request,
    viewer: object,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    created: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return c.render(
        request,
        "tokens.html",
        viewer,  # type: ignore[arg-type]
        title="Tokens",
        rows=c.service.tokens(),
        roles=_ROLES,
        values=values,
        errors=errors,
        created=created or {},
        status=status,
    )
