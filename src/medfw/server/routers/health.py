"""Health probes."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness probe: the process is up and serving (no authentication, no database access)."""
    return {"status": "ok"}
