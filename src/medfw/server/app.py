"""The fleet server's HTTP API (FastAPI): device API, TUF metadata/targets, management API.

Device API (``Authorization: Device <device-id>:<secret>``):
    ``GET /api/v1/devices/{id}/poll`` (ETag, 304 when unchanged), ``GET /api/v1/devices/{id}/artifact``
    (HTTP Range), ``POST /api/v1/devices/{id}/reports``.
TUF (public, read-only): ``GET /tuf/metadata/{N.role.json|timestamp.json}``, ``GET /tuf/targets/{path}``.
Management API (``Authorization: Bearer <token>``; roles admin > operator > read-only): devices, groups,
releases, rollouts, reports, fleet, tokens.

Every refusal is a 4xx JSON ``{"detail": reason}``; nothing is stored for a refused request. Request bodies are
limited to ``max_body`` bytes (413).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from medfw import __version__
from medfw.errors import InputError, MedfwError, StorageError, TransportError
from medfw.server import schemas, witness
from medfw.server.credentials import Role
from medfw.server.service import ApiError, FleetService
from medfw.update.repository import TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

__all__ = ["DEFAULT_MAX_BODY", "OnlineKeys", "create_app", "repo_online_keys"]

DEFAULT_MAX_BODY = 64 * 1024
_META_RE = re.compile(r"^(?:[1-9][0-9]{0,9}\.(?:root|targets|snapshot)|timestamp|root)\.json$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class OnlineKeys:
    """The online snapshot and timestamp signers the server re-signs short-lived metadata with."""

    def __init__(self, snapshot: MedfwTufSigner, timestamp: MedfwTufSigner) -> None:
        self.snapshot = snapshot
        self.timestamp = timestamp


class _BodyLimit:
    """Refuse request bodies above ``limit`` bytes with 413, by Content-Length or while reading a chunked body.

    Bodies of requests other than GET/HEAD are read here first (at most ``limit`` bytes are ever buffered) and
    handed to the application only when complete and small enough.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await _send_json(send, 413, f"request body larger than {self.limit} bytes")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await _send_json(send, 413, f"request body larger than {self.limit} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


_POLL_PATH = re.compile(r"^/api/v1/devices/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/poll$")
_POLL_PARAMS = frozenset({"version", "secure_version", "slot"})
_MAX_SVN = 2**31 - 1


class _FastPoll:
    """Serve well-formed, authenticated polls without FastAPI's per-request dependency resolution.

    Polls are most of the traffic. This path handles exactly the requests the documented ``GET …/poll`` route
    would answer with 200/304 — same checks, same answer, same ETag; anything else (a malformed query, a missing
    or wrong credential, a device acting for another) falls through to that route, which answers and audits it.
    """

    def __init__(self, app: ASGIApp, service: FleetService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = _POLL_PATH.match(scope["path"])
            if m is not None and await self._serve(m.group(1), scope, send):
                return
        await self.app(scope, receive, send)

    async def _serve(self, device_id: str, scope: Scope, send: Send) -> bool:
        auth = etag_in = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"if-none-match":
                etag_in = value.decode("latin-1").strip()
        if auth is None or not auth.startswith("Device "):
            return False
        try:
            params = parse_qs(scope["query_string"].decode("ascii"), strict_parsing=False, keep_blank_values=True)
        except UnicodeDecodeError:
            return False
        if not params.keys() <= _POLL_PARAMS or any(len(v) != 1 for v in params.values()):
            return False
        version = params.get("version", [None])[0]
        slot = params.get("slot", [None])[0]
        svn_text = params.get("secure_version", ["0"])[0]
        if not svn_text.isdigit() or int(svn_text) > _MAX_SVN:
            return False
        if (version is not None and len(version) > 64) or (slot is not None and len(slot) > 16):
            return False
        svn = int(svn_text)
        credential = auth[len("Device ") :].strip()
        service = self.service
        found = service.authenticate_device_cached(credential)
        who = service.authenticate_device(credential) if found is False else found
        if who != device_id:
            return False
        try:
            result = service.poll_cached(device_id, version=version, secure_version=svn, slot=slot) or service.poll(
                device_id, version=version, secure_version=svn, slot=slot
            )
        except ApiError:
            return False
        etag = result.etag.encode()
        if etag_in == result.etag:
            await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", etag)]})
            await send({"type": "http.response.body", "body": b""})
            return True
        body = json.dumps(result.body, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"etag", etag),
            (b"cache-control", b"no-cache"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _service(request: Request) -> FleetService:
    svc: FleetService = request.app.state.service
    return svc


async def _device_auth(request: Request, device_id: str, authorization: Annotated[str | None, Header()] = None) -> str:
    """Authenticate ``Authorization: Device <id>:<secret>`` and check the device acts for itself.

    Cached digests are checked on the event loop; a first sight of a device reads the database in a thread.
    """
    service = _service(request)
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme != "Device" or not credential:
        await run_in_threadpool(service.record_denied, "device", actor="unknown", reason="missing_credential")
        raise ApiError(401, "missing device credential (Authorization: Device <id>:<secret>)")
    credential = credential.strip()
    found = service.authenticate_device_cached(credential)
    # a cache miss is one indexed read (well under a millisecond); a thread hop would cost more than it saves
    who = service.authenticate_device(credential) if found is False else found
    if not isinstance(who, str):
        await run_in_threadpool(
            service.record_denied, "device", actor="unknown", reason="bad_credential", data={"claimed": device_id}
        )
        raise ApiError(401, "invalid device credential")
    if who != device_id:
        await run_in_threadpool(
            service.record_denied,
            "device",
            actor=f"device:{who}",
            reason="other_device",
            data={"claimed": device_id},
        )
        raise ApiError(403, f"device {who} cannot act for device {device_id}")
    return who


def _need(role: Role) -> Callable[..., str]:
    def check(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        service = _service(request)
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Bearer" or not token:
            service.record_denied("management", actor="unknown", reason="missing_token")
            raise ApiError(401, "missing API token (Authorization: Bearer <token>)")
        found = service.authenticate_token(token.strip())
        if found is None:
            service.record_denied("management", actor="unknown", reason="bad_token")
            raise ApiError(401, "invalid API token")
        name, has = found
        if not has.allows(role):
            service.record_denied(
                "management", actor=f"token:{name}", reason="role", data={"has": has.value, "needs": role.value}
            )
            raise ApiError(403, f"a {has.value} token cannot use this route (needs {role.value})")
        return f"token:{name}"

    return check


Admin = Annotated[str, Depends(_need(Role.ADMIN))]
Operator = Annotated[str, Depends(_need(Role.OPERATOR))]
Reader = Annotated[str, Depends(_need(Role.READ_ONLY))]
DeviceAuth = Annotated[str, Depends(_device_auth)]


def create_app(
    service: FleetService,
    repo: TufRepository | None = None,
    *,
    online_keys: OnlineKeys | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    maintenance_interval: float = 5.0,
) -> FastAPI:
    """Build the ASGI application.

    Args:
        service: the fleet service (database + audit sink).
        repo: the TUF repository whose metadata and targets are served (releases are read from it).
        online_keys: snapshot/timestamp signers; with them, short-lived metadata is re-signed before it expires.
        max_body: largest accepted request body.
        maintenance_interval: seconds between background passes: online re-signing, recording newly published
            releases, writing what polling devices reported.
    """
    stop = threading.Event()

    synced: list[int] = []  # the targets version whose releases are in the database

    def maintenance() -> None:
        if repo is not None and online_keys is not None:
            with contextlib.suppress(MedfwError, OSError):
                repo.sign_online(online_keys.snapshot, online_keys.timestamp)
        if repo is not None:
            with contextlib.suppress(MedfwError, OSError):
                version = repo.targets().signed.version
                if synced != [version]:
                    service.sync_releases(repo.releases(), actor="server")
                    synced[:] = [version]
        with contextlib.suppress(Exception):
            service.flush_seen()

    def loop() -> None:
        while not stop.wait(maintenance_interval):
            with contextlib.suppress(Exception):  # a failed pass (database briefly away) is retried next time
                maintenance()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        maintenance()  # also records the repository's releases
        worker = threading.Thread(target=loop, name="medfw-ota-maintenance", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)
            service.flush_seen()

    app = FastAPI(
        title="medfw OTA fleet server",
        version=__version__,
        description="Signed (TUF) firmware delivery with staged rollouts. The server assigns releases; it never "
        "signs them.",
        lifespan=lifespan,
        responses={400: {"model": schemas.Error}, 401: {"model": schemas.Error}, 403: {"model": schemas.Error}},
    )
    app.state.service = service
    app.add_middleware(_FastPoll, service=service)
    app.add_middleware(_BodyLimit, limit=max_body)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(MedfwError)
    async def _medfw_error(_request: Request, exc: MedfwError) -> JSONResponse:
        status = 422 if isinstance(exc, InputError) else 503 if isinstance(exc, StorageError | TransportError) else 400
        return JSONResponse({"detail": exc.diagnostics()}, status_code=status)

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
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "internal error"}, status_code=500)

    # ---- device API ------------------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness probe: the process is up and serving (no authentication, no database access)."""
        return {"status": "ok"}

    @app.get("/api/v1/devices/{device_id}/poll", response_model=schemas.PollOut, tags=["device"])
    async def poll(
        device_id: str,
        who: DeviceAuth,
        *,
        version: Annotated[str | None, Query(max_length=64)] = None,
        secure_version: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        slot: Annotated[str | None, Query(max_length=16)] = None,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> Any:
        """Report the running version and get the current assignment; ``304`` when it has not changed."""
        result = service.poll_cached(who, version=version, secure_version=secure_version, slot=slot)
        if result is None:
            result = service.poll(who, version=version, secure_version=secure_version, slot=slot)
        if if_none_match is not None and if_none_match.strip() == result.etag:
            return Response(status_code=304, headers={"ETag": result.etag})
        return JSONResponse(result.body, headers={"ETag": result.etag, "Cache-Control": "no-cache"})

    @app.get(
        "/api/v1/devices/{device_id}/artifact",
        tags=["device"],
        response_class=FileResponse,
        responses={206: {"description": "partial content (Range)"}, 404: {"model": schemas.Error}},
    )
    def artifact(device_id: str, who: DeviceAuth) -> FileResponse:
        """Download the assigned image; supports ``Range: bytes=N-`` to resume."""
        if repo is None:
            raise ApiError(404, "this server has no repository")
        path = repo.target_file(service.assigned_target(who))
        return FileResponse(path, media_type="application/octet-stream")

    @app.post("/api/v1/devices/{device_id}/reports", response_model=schemas.ReportStored, tags=["device"])
    def report(device_id: str, who: DeviceAuth, body: schemas.ReportIn) -> Any:
        """Report update progress: downloading, installed, booted, confirmed, reverted or rejected (with reason)."""
        return service.report(
            who,
            status=body.status,
            reason=body.reason,
            detail=body.detail,
            rollout_id=body.rollout,
            version=body.version,
            secure_version=body.secure_version,
            slot=body.slot,
        )

    # ---- TUF -------------------------------------------------------------------------------------------------

    @app.get("/tuf/metadata/{name}", tags=["tuf"], response_class=FileResponse)
    def tuf_metadata(name: str) -> FileResponse:
        """TUF metadata (``N.root.json``, ``timestamp.json``, ``N.snapshot.json``, ``N.targets.json``)."""
        if repo is None or not _META_RE.match(name):
            raise ApiError(404, "no such metadata")
        path = repo.metadata_dir / name
        if not path.is_file():
            raise ApiError(404, "no such metadata")
        return FileResponse(path, media_type="application/json")

    @app.get("/tuf/targets/{target:path}", tags=["tuf"], response_class=FileResponse)
    def tuf_target(target: str) -> FileResponse:
        """A target file by its hash-prefixed name (Range supported)."""
        if repo is None:
            raise ApiError(404, "no such target")
        base = repo.targets_dir.resolve()
        path = (base / target).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise ApiError(404, "no such target")
        return FileResponse(path, media_type="application/octet-stream")

    # ---- management API --------------------------------------------------------------------------------------

    @app.post("/api/v1/devices", response_model=schemas.DeviceCreated, status_code=201, tags=["devices"])
    def add_device(body: schemas.DeviceCreate, actor: Operator) -> Any:
        """Register a device; the credential is returned once."""
        cred = service.add_device(body.id, model=body.model, chip=body.chip, group=body.group, actor=actor)
        return {"id": body.id, "credential": cred}

    @app.get("/api/v1/devices", response_model=list[schemas.DeviceOut], tags=["devices"])
    def list_devices(
        _actor: Reader,
        group: Annotated[str | None, Query(max_length=64)] = None,
        model: Annotated[str | None, Query(max_length=64)] = None,
    ) -> Any:
        """List devices and what they last reported."""
        return service.device_rows(group=group, model=model)

    @app.delete("/api/v1/devices/{device_id}", status_code=204, tags=["devices"])
    def delete_device(device_id: str, actor: Admin) -> Response:
        """Decommission a device (admin)."""
        service.delete_device(device_id, actor=actor)
        return Response(status_code=204)

    @app.put("/api/v1/devices/{device_id}/group", response_model=schemas.DeviceOut, tags=["devices"])
    def set_group(device_id: str, body: schemas.GroupChange, actor: Operator) -> Any:
        """Move a device to another group."""
        return service.set_group(device_id, body.group, actor=actor)

    @app.get("/api/v1/groups", response_model=list[schemas.GroupOut], tags=["devices"])
    def groups(_actor: Reader) -> Any:
        """Device groups and their sizes."""
        return service.groups()

    @app.get("/api/v1/fleet", response_model=list[schemas.FleetRow], tags=["devices"])
    def fleet(_actor: Reader) -> Any:
        """Devices per model and version."""
        return service.fleet()

    @app.get("/api/v1/releases", response_model=list[schemas.ReleaseOut], tags=["releases"])
    def releases(_actor: Reader) -> Any:
        """Known releases."""
        return service.releases()

    @app.post("/api/v1/releases/sync", response_model=list[schemas.ReleaseOut], tags=["releases"])
    def sync(actor: Admin) -> Any:
        """Read new releases from the TUF repository and re-sign the online metadata (admin)."""
        if repo is None:
            raise ApiError(404, "this server has no repository")
        if online_keys is not None:
            repo.sign_online(online_keys.snapshot, online_keys.timestamp)
        return service.sync_releases(repo.releases(), actor=actor)

    @app.post("/api/v1/rollouts", response_model=schemas.RolloutOut, status_code=201, tags=["rollouts"])
    def create_rollout(body: schemas.RolloutCreate, actor: Operator) -> Any:
        """Create and start a staged rollout."""
        return service.create_rollout(
            release=body.release,
            name=body.name,
            group=body.group,
            devices=body.devices,
            version=body.version,
            phases=body.phases,
            success_threshold=body.success_threshold,
            error_threshold=body.error_threshold,
            actor=actor,
        )

    @app.get("/api/v1/rollouts", response_model=list[schemas.RolloutOut], tags=["rollouts"])
    def list_rollouts(_actor: Reader) -> Any:
        """All rollouts with per-phase counts."""
        return service.rollouts()

    @app.get("/api/v1/rollouts/{rollout_id}", response_model=schemas.RolloutOut, tags=["rollouts"])
    def get_rollout(rollout_id: int, _actor: Reader) -> Any:
        """One rollout with per-phase counts."""
        return service.rollout(rollout_id)

    @app.post("/api/v1/rollouts/{rollout_id}/{action}", response_model=schemas.ControlResult, tags=["rollouts"])
    def control(rollout_id: int, action: str, actor: Operator) -> Any:
        """``pause``, ``resume`` or ``cancel`` a rollout."""
        return service.control_rollout(rollout_id, action, actor=actor)

    @app.get("/api/v1/reports", response_model=list[schemas.ReportOut], tags=["reports"])
    def reports(
        _actor: Reader,
        device: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        """Device reports, newest first."""
        return service.reports(device_id=device, limit=limit)

    @app.post("/api/v1/tokens", response_model=schemas.TokenCreated, status_code=201, tags=["tokens"])
    def create_token(body: schemas.TokenCreate, actor: Admin) -> Any:
        """Create a management token (admin); shown once."""
        token = service.create_token(body.name, Role(body.role), actor=actor)
        return {"name": body.name, "role": body.role, "token": token}

    app.include_router(witness.make_router(_need(Role.READ_ONLY), _need(Role.OPERATOR)))  # audit-log witness
    return app


def repo_online_keys(repo: TufRepository) -> OnlineKeys | None:
    """Load ``online-keys/snapshot.pem`` and ``timestamp.pem`` of a repository, if both exist."""
    snap = repo.online_keys_dir / "snapshot.pem"
    ts = repo.online_keys_dir / "timestamp.pem"
    if not (snap.is_file() and ts.is_file()):
        return None
    return OnlineKeys(MedfwTufSigner.from_medfw_uri(str(snap)), MedfwTufSigner.from_medfw_uri(str(ts)))
