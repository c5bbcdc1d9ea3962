"""Fleet-wide views and release documents in the management API: the same service calls the console pages make.

- ``GET /api/v1/fleet/summary``: devices per model × version × group, not seen lately, failed.
- ``GET /api/v1/fleet/devices``: device search with filters and server-side pages.
- ``GET /api/v1/rollouts/{id}/progress``: devices per phase and state, failure reasons grouped.
- ``GET|PUT /api/v1/releases/{id}/documents[/{kind}]``: the evidence bundle, VEX and CSAF of a release. An upload
  is read only after the caller is authenticated as an operator, and at most the kind's size limit is buffered.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from medfw.server.deps import Operator, Reader, Service
from medfw.server.documents import MAX_SIZE
from medfw.server.errors import Invalid
from medfw.server.validation import NAME_PATTERN
from medfw.server.views_fleet import (
    DeviceFilter,
    DevicePage,
    DeviceState,
    DocumentKind,
    FleetSummary,
    ReleaseDocument,
    RolloutProgress,
)

__all__ = ["DOCUMENT_PATH", "router"]

router = APIRouter(prefix="/api/v1")

#: the upload path, whose body the generic body limit leaves to the route (it streams with the kind's limit)
DOCUMENT_PATH = r"^/api/v1/releases/[0-9]{1,10}/documents/[a-z-]{1,32}$"

_Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
_Name = Annotated[str, Query(max_length=64, pattern=NAME_PATTERN)]
_Search = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]*$")]


@router.get("/fleet/summary", response_model=FleetSummary, tags=["fleet"])
def fleet_summary(_actor: Reader, service: Service, stale_hours: Annotated[int, Query(ge=1, le=24 * 365)] = 24) -> Any:
    """Devices per model × version × group, how many were not seen for ``stale_hours``, and failed ones."""
    return service.fleet_summary(stale_hours=stale_hours)


@router.get("/fleet/devices", response_model=DevicePage, tags=["fleet"])
def search_devices(
    *,
    _actor: Reader,
    service: Service,
    q: _Search = "",
    model: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9._+-]*$")] = "",
    group: Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9._+-]*$")] = "",
    version: Annotated[str, Query(max_length=64, pattern=r"^[\x21-\x7e]*$")] = "",
    state: DeviceState | None = None,
    seen: Annotated[int | None, Query(ge=1, le=24 * 365)] = None,
    page: Annotated[int, Query(ge=1, le=10**8)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Devices matching every given filter (``q``: id substring; ``seen``: not seen for that many hours)."""
    f = DeviceFilter(q=q, model=model, group=group, version=version, state=state, seen_hours=seen)
    return service.device_page(f, page=page, size=size)


@router.get("/rollouts/{rollout_id}/progress", response_model=RolloutProgress, tags=["rollouts"])
def rollout_progress(rollout_id: _Id, _actor: Reader, service: Service) -> Any:
    """A rollout's devices per phase and state, with failure reasons grouped (most frequent first)."""
    head = service.rollout_header(rollout_id)
    return service.rollout_progress(rollout_id, len(head.phases))


@router.get("/releases/{release_id}/documents", response_model=list[ReleaseDocument], tags=["releases"])
def list_documents(release_id: _Id, _actor: Reader, service: Service) -> list[ReleaseDocument]:
    """The documents attached to a release."""
    service.release_by_id(release_id)
    return service.release_documents(release_id)


@router.get(
    "/releases/{release_id}/documents/{kind}",
    tags=["releases"],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the document's bytes"}},
)
def get_document(release_id: _Id, kind: DocumentKind, _actor: Reader, service: Service) -> Response:
    """A release's document, with its SHA-256 in ``Repr-Digest`` (RFC 9530)."""
    doc, data = service.release_document(release_id, kind)
    return document_response(doc, data)


def document_response(doc: ReleaseDocument, data: bytes) -> Response:
    """The bytes of a document as a download (never rendered inline by a browser)."""
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    headers = {
        "Content-Disposition": f'attachment; filename="{doc.filename}"',
        "X-Content-Type-Options": "nosniff",
        "Repr-Digest": f"sha-256=:{digest}:",
        "Cache-Control": "no-store",
    }
    return Response(data, media_type=doc.media_type, headers=headers)


_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put(
    "/releases/{release_id}/documents/{kind}",
    response_model=ReleaseDocument,
    status_code=201,
    tags=["releases"],
    openapi_extra=_RAW_BODY,
)
async def put_document(release_id: _Id, kind: DocumentKind, request: Request, actor: Operator, service: Service) -> Any:
    """Attach a document to a release (the raw bytes as the body), replacing one of the same kind (operator)."""
    data = await _read_limited(request, MAX_SIZE[kind])
    return await run_in_threadpool(service.attach_document, release_id, kind, data, actor=actor)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise Invalid(f"the document is larger than {limit} bytes", field="content")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Invalid(f"the document is larger than {limit} bytes", field="content")
        chunks.append(chunk)
    return b"".join(chunks)
