"""The management API: devices, groups, fleet, releases, rollouts, reports, tokens (bearer tokens with roles)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from medfw.server import schemas
from medfw.server.credentials import Role, parse_duration
from medfw.server.deps import Admin, Operator, Reader, Repo, Service, Signers
from medfw.server.validation import DEVICE_ID_PATTERN, NAME_PATTERN, DeviceId, RolloutId
from medfw.server.views import (
    DeviceCreated,
    DeviceView,
    FleetRow,
    GroupView,
    ReleaseView,
    ReportView,
    RolloutView,
    TokenCreated,
    TokenView,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_Name = Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN)]
_Device = Annotated[str | None, Query(max_length=64, pattern=DEVICE_ID_PATTERN)]


@router.post("/devices", response_model=schemas.DeviceCreated, status_code=201, tags=["devices"])
def add_device(body: schemas.DeviceCreate, actor: Operator, service: Service) -> DeviceCreated:
    """Register a device; the credential is returned once."""
    cred = service.add_device(body.id, model=body.model, chip=body.chip, group=body.group, actor=actor)
    return DeviceCreated(id=body.id, credential=cred)


@router.get("/devices", response_model=list[schemas.DeviceOut], tags=["devices"])
def list_devices(_actor: Reader, service: Service, group: _Name = None, model: _Name = None) -> list[DeviceView]:
    """List devices and what they last reported."""
    return service.device_rows(group=group, model=model)


@router.delete("/devices/{device_id}", status_code=204, tags=["devices"])
def delete_device(device_id: DeviceId, actor: Admin, service: Service) -> Response:
    """Decommission a device (admin)."""
    service.delete_device(device_id, actor=actor)
    return Response(status_code=204)


@router.put("/devices/{device_id}/group", response_model=schemas.DeviceOut, tags=["devices"])
def set_group(device_id: DeviceId, body: schemas.GroupChange, actor: Operator, service: Service) -> DeviceView:
    """Move a device to another group."""
    return service.set_group(device_id, body.group, actor=actor)


@router.get("/groups", response_model=list[schemas.GroupOut], tags=["devices"])
def groups(_actor: Reader, service: Service) -> list[GroupView]:
    """Device groups and their sizes."""
    return service.groups()


@router.get("/fleet", response_model=list[schemas.FleetRow], tags=["devices"])
def fleet(_actor: Reader, service: Service) -> list[FleetRow]:
    """Devices per model and version."""
    return service.fleet()


@router.get("/releases", response_model=list[schemas.ReleaseOut], tags=["releases"])
def releases(_actor: Reader, service: Service) -> list[ReleaseView]:
    """Known releases."""
    return service.releases()


@router.post("/releases/sync", response_model=list[schemas.ReleaseOut], tags=["releases"])
def sync(actor: Admin, service: Service, repo: Repo, keys: Signers) -> list[ReleaseView]:
    """Read new releases from the TUF repository and re-sign the online metadata (admin)."""
    if keys is not None:
        repo.sign_online(keys.snapshot, keys.timestamp)
    return service.sync_releases(repo.releases(), actor=actor)


@router.post("/rollouts", response_model=schemas.RolloutOut, status_code=201, tags=["rollouts"])
def create_rollout(body: schemas.RolloutCreate, actor: Operator, service: Service) -> RolloutView:
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
        require_approval=body.require_approval,
        actor=actor,
    )


@router.get("/rollouts", response_model=list[schemas.RolloutOut], tags=["rollouts"])
def list_rollouts(_actor: Reader, service: Service) -> list[RolloutView]:
    """All rollouts with per-phase counts."""
    return service.rollouts()


@router.get("/rollouts/{rollout_id}", response_model=schemas.RolloutOut, tags=["rollouts"])
def get_rollout(rollout_id: RolloutId, _actor: Reader, service: Service) -> RolloutView:
    """One rollout with per-phase counts."""
    return service.rollout(rollout_id)


@router.post("/rollouts/{rollout_id}/{action}", response_model=schemas.ControlResult, tags=["rollouts"])
def control(
    rollout_id: RolloutId, action: Annotated[str, Path(max_length=16)], actor: Operator, service: Service
) -> RolloutView:
    """``pause``, ``resume`` or ``cancel`` a rollout."""
    return service.control_rollout(rollout_id, action, actor=actor)


@router.get("/reports", response_model=list[schemas.ReportOut], tags=["reports"])
def reports(
    _actor: Reader,
    service: Service,
    device: _Device = None,
    rollout: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ReportView]:
    """Device reports, newest first (optionally of one device and/or one rollout)."""
    return service.reports(device_id=device, rollout_id=rollout, limit=limit)


@router.post("/devices/{device_id}/credential", response_model=schemas.DeviceCreated, tags=["devices"])
def rotate_credential(
    device_id: DeviceId, body: schemas.CredentialRotate, actor: Admin, service: Service
) -> DeviceCreated:
    """Give a device a new credential (admin; shown once); the old one works for ``grace`` more."""
    cred = service.rotate_credential(device_id, grace=parse_duration(body.grace), actor=actor)
    return DeviceCreated(id=device_id, credential=cred)


@router.post("/devices/{device_id}/reprovision", response_model=schemas.DeviceCreated, tags=["devices"])
def reprovision(device_id: DeviceId, body: schemas.DeviceReprovision, actor: Admin, service: Service) -> DeviceCreated:
    """Register a decommissioned device id again with a new credential (admin; a plain re-register is 409)."""
    cred = service.reprovision_device(device_id, model=body.model, chip=body.chip, group=body.group, actor=actor)
    return DeviceCreated(id=device_id, credential=cred)


@router.post("/tokens", response_model=schemas.TokenCreated, status_code=201, tags=["tokens"])
def create_token(body: schemas.TokenCreate, actor: Admin, service: Service) -> TokenCreated:
    """Create a management token (admin); shown once."""
    expires_in = parse_duration(body.expires_in) if body.expires_in else None
    token = service.create_token(body.name, Role(body.role), actor=actor, expires_in=expires_in)
    return TokenCreated(name=body.name, role=body.role, token=token)


@router.get("/tokens", response_model=list[schemas.TokenOut], tags=["tokens"])
def list_tokens(_actor: Admin, service: Service) -> list[TokenView]:
    """Every token: role, creation, expiry, last use, revocation (admin; never the secret)."""
    return service.tokens()


@router.delete("/tokens/{name}", response_model=schemas.TokenOut, tags=["tokens"])
def revoke_token(
    name: Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)], actor: Admin, service: Service
) -> TokenView:
    """Revoke a token (admin): it stops working at once."""
    return service.revoke_token(name, actor=actor)
