"""The device-trust management API: enrollment, revocation, device audit trails, maintenance windows, campaigns."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from medfw.server import trust_schemas as ts
from medfw.server.deps import Admin, Operator, Reader, Service
from medfw.server.rollouts import RolloutSpec
from medfw.server.validation import NAME_PATTERN, DeviceId, RolloutId

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


GroupName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)]


@router.post("/enrollment/preauthorized", tags=["enrollment"])
def preauthorize(body: ts.PreauthorizeIn, actor: Operator, service: Service) -> dict[str, int]:
    """Upload serials that enrol themselves (into their model's default group) on first contact."""
    added = service.preauthorize([(e.serial, e.model) for e in body.serials], actor=actor)
    return {"added": added}


@router.get("/enrollment/requests", tags=["enrollment"])
def enrollment_requests(
    _actor: Reader, service: Service, state: Annotated[str | None, Query(pattern="^(held|approved|rejected)$")] = None
) -> list[dict[str, Any]]:
    """Units with a valid factory certificate whose serial was not pre-authorised."""
    return service.enrollments(state)


@router.post("/enrollment/requests/{device_id}", tags=["enrollment"])
def decide_enrollment(
    device_id: DeviceId, body: ts.EnrollmentDecision, actor: Operator, service: Service
) -> dict[str, str]:
    """Approve (register the unit) or reject a held enrollment."""
    return {
        "device": device_id,
        "state": service.decide_enrollment(device_id, approve=body.approve, actor=actor, group=body.group),
    }


@router.put("/models/{model}/group", tags=["enrollment"])
def model_group(model: GroupName, body: ts.ModelGroupIn, actor: Operator, service: Service) -> dict[str, str]:
    """Set the group a model's units enrol into."""
    service.set_model_group(model, body.group, actor=actor)
    return {"model": model, "group": body.group}


@router.get("/revocations", tags=["enrollment"])
def revocations(_actor: Reader, service: Service) -> list[dict[str, str]]:
    """The server's certificate revocation list."""
    return service.revocations()


@router.post("/devices/{device_id}/certificate/revoke", tags=["enrollment"])
def revoke(device_id: DeviceId, body: ts.RevokeIn, actor: Admin, service: Service) -> dict[str, Any]:
    """Revoke every certificate a device used (decommissioning does this too)."""
    return {
        "device": device_id,
        "revoked": service.revoke_device_certificates(device_id, reason=body.reason, actor=actor),
    }


@router.get("/devices/{device_id}/audit", tags=["devices"])
def device_audit(
    device_id: DeviceId,
    _actor: Reader,
    service: Service,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    verify: bool = False,
) -> dict[str, Any]:
    """A unit's collected audit trail (verified at upload); ``verify=true`` re-verifies the whole stored chain."""
    out = service.device_trail(device_id, start=start, limit=limit)
    if verify:
        out["verification"] = service.verify_trail(device_id)
    return out


@router.get("/rollouts/{rollout_id}/trails", tags=["rollouts"])
def rollout_trails(
    rollout_id: RolloutId, _actor: Reader, service: Service, phase: Annotated[int, Query(ge=0, le=19)] = 0
) -> list[dict[str, Any]]:
    """The collected audit trails of a rollout phase's units (phase 0 = the canary), for evidence bundles."""
    return service.rollout_trails(rollout_id, phase=phase)


@router.get("/devices/{device_id}/claims", tags=["devices"])
def device_claims(device_id: DeviceId, _actor: Reader, service: Service) -> dict[str, Any]:
    """The unit's last verified signed claims (version, eFuse counter, key slots)."""
    return service.device_claims(device_id) or {"claims": None, "verified": None}


@router.get("/windows", tags=["devices"])
def windows(_actor: Reader, service: Service) -> list[dict[str, Any]]:
    """Maintenance windows of the groups."""
    return service.windows()


@router.put("/groups/{group}/window", tags=["devices"])
def set_window(group: GroupName, body: ts.WindowIn, actor: Operator, service: Service) -> dict[str, Any]:
    """Set a group's maintenance window (days and hours in the site's time zone)."""
    return service.set_window(
        group, timezone=body.timezone, days=body.days, start=body.start, end=body.end, actor=actor
    )


@router.delete("/groups/{group}/window", status_code=204, tags=["devices"])
def clear_window(group: GroupName, actor: Operator, service: Service) -> Response:
    """Remove a group's maintenance window."""
    service.clear_window(group, actor=actor)
    return Response(status_code=204)


@router.post("/campaigns", status_code=201, tags=["campaigns"])
def start_campaign(body: ts.CampaignCreate, actor: Admin, service: Service) -> dict[str, Any]:
    """Start a key-rotation campaign (M-of-N approvals under the server's approval policy)."""
    spec = RolloutSpec(
        release=body.release,
        group=body.group,
        devices=body.devices,
        phases=tuple(body.phases),
        success_threshold=body.success_threshold,
        error_threshold=body.error_threshold,
    )
    return service.start_campaign(
        release=body.release,
        old_slot=body.old_slot,
        new_key_pem=body.new_key.encode("ascii", "replace"),
        approvals=body.approvals,
        spec=spec,
        actor=actor,
    )


@router.get("/campaigns", tags=["campaigns"])
def campaigns(_actor: Reader, service: Service) -> list[dict[str, Any]]:
    """All key-rotation campaigns with per-unit progress."""
    return service.campaigns()


@router.get("/campaigns/{campaign_id}", tags=["campaigns"])
def campaign(campaign_id: RolloutId, _actor: Reader, service: Service) -> dict[str, Any]:
    """One campaign with per-unit progress."""
    return service.campaign(campaign_id)


@router.post("/campaigns/{campaign_id}/{action}", tags=["campaigns"])
def control_campaign(campaign_id: RolloutId, action: str, actor: Operator, service: Service) -> dict[str, Any]:
    """``pause`` or ``resume`` a campaign."""
    return service.control_campaign(campaign_id, action, actor=actor)
