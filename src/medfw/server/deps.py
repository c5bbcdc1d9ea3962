"""FastAPI dependencies shared by every router: the service, the repository, and authentication.

A router declares what it needs in its signature (``service: Service``, ``actor: Operator``, ``who: DeviceAuth``);
refusals raise :mod:`medfw.server.errors`, which :mod:`medfw.server.http` maps to statuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from medfw.identity.tls import client_certificate
from medfw.server.credentials import Role
from medfw.server.errors import Forbidden, NotFound, Throttled, Unauthorized
from medfw.server.middleware import set_actor
from medfw.server.service import FleetService
from medfw.update.repository import TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

__all__ = [
    "Admin",
    "DeviceAuth",
    "OnlineKeys",
    "Operator",
    "Reader",
    "Repo",
    "Service",
    "Signers",
    "need",
]


@dataclass(frozen=True)
class OnlineKeys:
    """The online snapshot and timestamp signers the server re-signs short-lived metadata with."""

    snapshot: MedfwTufSigner
    timestamp: MedfwTufSigner


def _service(request: Request) -> FleetService:
    svc: FleetService = request.app.state.service
    return svc


# The dependencies below only read the application's state: coroutines, so FastAPI calls them on the event loop
# (a plain function would be run in the thread pool, one more thread hop per request).


async def _service_dep(request: Request) -> FleetService:
    return _service(request)


async def _repo(request: Request) -> TufRepository:
    repo: TufRepository | None = request.app.state.repo
    if repo is None:
        raise NotFound("this server has no repository")
    return repo


async def _signers(request: Request) -> OnlineKeys | None:
    keys: OnlineKeys | None = request.app.state.online_keys
    return keys


Service = Annotated[FleetService, Depends(_service_dep)]
Repo = Annotated[TufRepository, Depends(_repo)]
Signers = Annotated[OnlineKeys | None, Depends(_signers)]


def _source(request: Request) -> str:
    """The client address (the proxy's, unless it is a configured trusted proxy; see ``ota serve``)."""
    return request.client.host if request.client else "unknown"


def _throttle(service: FleetService, *keys: str) -> None:
    wait = service.limiter.blocked(*keys)
    if wait is not None:
        raise Throttled("too many refused authentications; retry later", retry_after=wait)


async def _device_auth(request: Request, device_id: str, authorization: Annotated[str | None, Header()] = None) -> str:
    """Authenticate the device — by its TLS client certificate (mutual TLS) or ``Authorization: Device
    <id>:<secret>`` (shared-secret simulator units) — and check it acts for itself.

    Cached digests are checked on the event loop; a first sight of a device reads the database in a thread.
    """
    service = _service(request)
    source = _source(request)
    _throttle(service, f"ip:{source}", f"device:{device_id}")
    cert = client_certificate(request.scope)
    if cert is not None:  # mutual TLS: the certificate the TLS layer verified names the device
        try:
            who_cert = await run_in_threadpool(service.authenticate_certificate, cert)
        except Unauthorized:
            service.record_denied("device", actor="unknown", reason="bad_certificate", source=source)
            raise
        if who_cert != device_id:
            data = {"claimed": device_id}
            service.record_denied("device", actor=f"device:{who_cert}", reason="other_device", data=data, source=source)
            raise Forbidden(f"device {who_cert} cannot act for device {device_id}")
        set_actor(request.scope, f"device:{who_cert}")
        return who_cert
    scheme, _, credential = (authorization or "").partition(" ")
    if scheme != "Device" or not credential:
        service.record_denied("device", actor="unknown", reason="missing_credential", source=source)
        raise Unauthorized("missing device credential (Authorization: Device <id>:<secret>)")
    credential = credential.strip()
    found = service.authenticate_device_cached(credential)
    who = await run_in_threadpool(service.authenticate_device, credential) if found is False else found
    if not isinstance(who, str):
        data = {"claimed": device_id}
        service.record_denied("device", actor="unknown", reason="bad_credential", data=data, source=source)
        raise Unauthorized("invalid device credential")
    if who != device_id:
        data = {"claimed": device_id}
        service.record_denied("device", actor=f"device:{who}", reason="other_device", data=data, source=source)
        raise Forbidden(f"device {who} cannot act for device {device_id}")
    set_actor(request.scope, f"device:{who}")
    return who


def need(role: Role) -> Callable[..., str]:
    """A dependency that authenticates a management token of at least ``role``; it yields ``token:<name>``."""

    def check(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
        service = _service(request)
        source = _source(request)
        _throttle(service, f"ip:{source}")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "Bearer" or not token:
            service.record_denied("management", actor="unknown", reason="missing_token", source=source)
            raise Unauthorized("missing API token (Authorization: Bearer <token>)")
        found = service.authenticate_token(token.strip())
        if found is None:
            service.record_denied("management", actor="unknown", reason="bad_token", source=source)
            raise Unauthorized("invalid API token")
        name, has = found
        set_actor(request.scope, f"token:{name}")
        if not has.allows(role):
            data = {"has": has.value, "needs": role.value}
            service.record_denied("management", actor=f"token:{name}", reason="role", data=data, source=source)
            raise Forbidden(f"a {has.value} token cannot use this route (needs {role.value})")
        return f"token:{name}"

    return check


Admin = Annotated[str, Depends(need(Role.ADMIN))]
Operator = Annotated[str, Depends(need(Role.OPERATOR))]
Reader = Annotated[str, Depends(need(Role.READ_ONLY))]
DeviceAuth = Annotated[str, Depends(_device_auth)]
