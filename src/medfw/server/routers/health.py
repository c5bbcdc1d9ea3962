"""Health probes: ``/healthz`` (liveness, never touches the database) and ``/readyz`` (database + repository)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from medfw.errors import MedfwError
from medfw.server.deps import Service
from medfw.server.http import RETRY_AFTER
from medfw.update.repository import TufRepository

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness probe: the process is up and its event loop answers (no authentication, no database access)."""
    return {"status": "ok"}


def _repository(repo: TufRepository | None) -> str:
    if repo is None:
        return "none"
    try:
        timestamp = repo.load("timestamp")
    except (MedfwError, OSError, ValueError) as e:
        return f"unreadable: {type(e).__name__}"
    return "expired" if timestamp.signed.is_expired() else "ok"


@router.get("/readyz", responses={503: {"description": "not ready (see checks)"}})
async def readyz(request: Request, service: Service) -> JSONResponse:
    """Readiness probe: the database answers and the served TUF metadata is readable and unexpired."""

    def check() -> dict[str, str]:
        try:
            service.store.ping()
            database = "ok"
        except SQLAlchemyError as e:
            database = f"unavailable: {type(e).__name__}"
        return {"database": database, "repository": _repository(request.app.state.repo)}

    checks = await run_in_threadpool(check)
    ready = checks["database"] == "ok" and checks["repository"] in ("ok", "none")
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    headers = {} if ready else {"Retry-After": str(RETRY_AFTER)}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)
