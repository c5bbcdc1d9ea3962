"""The device API: poll (ETag, 304), artifact download (Range), reports.

Well-formed polls are usually answered by :class:`medfw.server.middleware.FastPoll` before they reach this
router; this route answers (and audits) the rest with the same result.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from medfw.server import schemas
from medfw.server.deps import DeviceAuth, Repo, Service
from medfw.server.service import FleetService
from medfw.server.trust import report_expectation
from medfw.server.validation import INT32_MAX, SLOT_PATTERN, VERSION_PATTERN, DeviceId
from medfw.server.views import ReportAck

__all__ = ["router", "store_report"]

router = APIRouter(prefix="/api/v1/devices", tags=["device"])


@router.get("/{device_id}/poll", response_model=schemas.PollOut)
async def poll(
    device_id: DeviceId,
    who: DeviceAuth,
    service: Service,
    *,
    version: Annotated[str | None, Query(max_length=64, pattern=VERSION_PATTERN)] = None,
    secure_version: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    slot: Annotated[str | None, Query(max_length=16, pattern=SLOT_PATTERN)] = None,
    if_none_match: Annotated[str | None, Header()] = None,
    x_medfw_claims: Annotated[str | None, Header(max_length=16384)] = None,
) -> Any:
    """Report the running version and get the current assignment; ``304`` when it has not changed.

    A certificate unit signs what it reports (``X-Medfw-Claims``: JWS of version, secure_version, slot, eFuse
    counter and key slots).
    """
    await run_in_threadpool(
        service.check_claims,
        who,
        x_medfw_claims,
        kind="poll",
        expect={"version": version, "secure_version": secure_version, "slot": slot},
    )
    result = service.poll_cached(who, version=version, secure_version=secure_version, slot=slot)
    if result is None:
        result = await run_in_threadpool(service.poll, who, version=version, secure_version=secure_version, slot=slot)
    if if_none_match is not None and if_none_match.strip() == result.etag:
        return Response(status_code=304, headers={"ETag": result.etag})
    return JSONResponse(dict(result.body), headers={"ETag": result.etag, "Cache-Control": "no-cache"})


@router.get(
    "/{device_id}/artifact",
    response_class=FileResponse,
    responses={206: {"description": "partial content (Range)"}, 404: {"model": schemas.Error}},
)
def artifact(device_id: DeviceId, who: DeviceAuth, service: Service, repo: Repo) -> FileResponse:
    """Download the assigned image; supports ``Range: bytes=N-`` to resume."""
    path = repo.target_file(service.assigned_target(who))
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/{device_id}/reports", response_model=schemas.ReportStored)
def report(device_id: DeviceId, who: DeviceAuth, service: Service, body: schemas.ReportIn) -> ReportAck:
    """Report update progress: deferred, downloading, installed, booted, confirmed, reverted or rejected (with
    reason), or a key-rotation result. A confirmation counts toward a rollout threshold only when trusted: signed
    claims of a certificate unit, or a shared-secret unit on a server that allows them."""
    return store_report(service, who, body)


def store_report(service: FleetService, who: str, body: schemas.ReportIn) -> ReportAck:
    """Check a report's signed claims and store it (this route, and its fast path in
    :mod:`medfw.server.fast_report`)."""
    trusted = service.check_claims(who, body.claims, kind="report", expect=report_expectation(body.model_dump()))
    return service.report(
        who,
        status=body.status,
        reason=body.reason,
        detail=body.detail,
        rollout_id=body.rollout,
        version=body.version,
        secure_version=body.secure_version,
        slot=body.slot,
        trusted=trusted,
    )


@router.post("/{device_id}/audit", response_model=schemas.TrailStored)
def upload_trail(device_id: str, who: DeviceAuth, service: Service, body: schemas.TrailUpload) -> Any:
    """Upload new entries of the unit's own audit trail; they must continue the chain the server holds."""
    return service.upload_trail(who, [e.model_dump() for e in body.entries], body.checkpoint)
