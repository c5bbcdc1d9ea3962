"""The one place where errors become HTTP answers: every refusal is a JSON ``{"detail": reason}``.

| error | status |
|---|---|
| :class:`~medfw.server.errors.Unauthorized` | 401 |
| :class:`~medfw.server.errors.Forbidden` | 403 |
| :class:`~medfw.server.errors.NotFound` | 404 |
| :class:`~medfw.server.errors.Conflict` | 409 |
| :class:`~medfw.server.errors.Throttled` | 429 with ``Retry-After`` |
| :class:`~medfw.server.errors.Invalid`, other input errors, malformed requests | 422 |
| :class:`~medfw.server.errors.Unavailable`, database unreachable | 503 with ``Retry-After`` |
| anything else | 500 ``internal error`` (logged, never shown) |
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from medfw.errors import InputError, MedfwError, StorageError, TransportError
from medfw.server.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Throttled,
    Unauthorized,
    Unavailable,
)
from medfw.server.store import is_outage

__all__ = ["RETRY_AFTER", "answer_for", "install_error_handlers", "status_of"]

log = logging.getLogger("medfw.server")

#: seconds a client should wait before retrying when the database is away
RETRY_AFTER = 5

_STATUS: tuple[tuple[type[MedfwError], int], ...] = (
    (Unauthorized, 401),
    (Throttled, 429),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
    (StorageError, 503),
    (TransportError, 503),
    (InputError, 422),
)


def status_of(exc: MedfwError) -> int:
    """The HTTP status of a medfw error."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})


def answer_for(exc: Exception, method: str, path: str) -> JSONResponse:
    """The answer to a request that raised ``exc`` (medfw errors, database errors, anything else): the mapping
    above, for the handlers below and for the fast paths in front of the routes."""
    if isinstance(exc, MedfwError):
        status = status_of(exc)
        detail = exc.message if isinstance(exc, ServiceError | Forbidden | Unavailable) else exc.diagnostics()
        if status == 503:
            return _unavailable(detail)
        if isinstance(exc, Throttled):
            return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(exc.retry_after)})
        return JSONResponse({"detail": detail}, status_code=status)
    if isinstance(exc, DBAPIError):
        if is_outage(exc):
            log.warning("database unavailable during %s %s: %s", method, path, type(exc.orig))
            return _unavailable("database unavailable, retry later")
        log.error("database error during %s %s", method, path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)
    if isinstance(exc, PoolTimeout):
        return _unavailable("database busy, retry later")
    log.error("unexpected error during %s %s", method, path, exc_info=exc)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping above on ``app``."""

    @app.exception_handler(MedfwError)
    async def _medfw(request: Request, exc: MedfwError) -> JSONResponse:
        return answer_for(exc, request.method, request.url.path)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        return answer_for(exc, request.method, request.url.path)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        return answer_for(exc, request.method, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return answer_for(exc, request.method, request.url.path)
