"""Fleet key-rotation campaigns in the fleet service.

Starting a campaign needs M-of-N signed approvals (:mod:`medfw.keys.approvals`) of the request
``(new key fingerprint, SHA-256 of the dual-signed release, purpose "key-rotation")`` under the server's approval
policy. In one unit of work it creates the rollout of the release (phases, thresholds as any rollout) and the
campaign with one row per unit. Each unit whose release confirmed is handed the rotation step in its poll answer
(``key_rotation``: burn the new digest into a free slot, then revoke the old slot); the unit reports its key slots in
signed claims, from which its progress is derived (:func:`medfw.keys.campaign.progress`). A unit that reports a
failed rotation pauses the campaign and its rollout; a unit whose release never confirms keeps the old key.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from medfw.crypto.keys import load_public_key_bytes, public_key_fingerprint
from medfw.errors import ConfigError, MedfwError, PolicyViolationError
from medfw.image.sbv2 import public_key_digest
from medfw.keys.approvals import Approval, ApprovalRequest
from medfw.keys.campaign import CampaignRefusedError, UnitState, check_start, progress
from medfw.server import rollout as rules
from medfw.server import rollouts
from medfw.server.models import Assignment, Release, Rollout
from medfw.server.rollouts import RolloutSpec
from medfw.server.trails import TrailOps
from medfw.server.trust_errors import conflict, forbidden, invalid, not_found
from medfw.server.trust_models import DeviceClaims, RolloutOptions, RotationCampaign, RotationUnit

__all__ = ["PURPOSE", "CampaignOps"]

PURPOSE = "key-rotation"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CampaignOps(TrailOps):
    """Start, follow and steer key-rotation campaigns."""

    def _check_approvals(self, new_key: Any, release_sha256: str, approvals: Sequence[Any]) -> list[dict[str, Any]]:
        policy = self.trust.approval_policy
        if policy is None:
            raise forbidden("this server has no approval policy: a key-rotation campaign needs M-of-N approval")
        try:
            records = [Approval.from_dict(a) for a in approvals]
        except ConfigError as e:
            raise invalid(f"malformed approval record: {e.message}", field="approvals") from None
        request = ApprovalRequest(public_key_fingerprint(new_key), release_sha256, PURPOSE)
        try:
            result = policy.check(request, records, now=_now())
        except PolicyViolationError as e:
            raise forbidden(f"campaign not approved: {e.message}") from None
        return [a.to_dict() for a in records if a.approver_key in result.approved_by]

    def start_campaign(
        self,
        *,
        release: str | int,
        old_slot: int,
        new_key_pem: bytes,
        approvals: Sequence[Any],
        spec: RolloutSpec | None = None,
        actor: str,
    ) -> dict[str, Any]:
        """Start a campaign (see the module docstring); return its status.

        Raises:
            403 without enough valid approvals or an approval policy; 409 when a unit already revoked the new key,
            holds it in the old slot, or is in another active rollout; 422 for a malformed key or slot.
        """
        try:
            new_key = load_public_key_bytes(new_key_pem)
            new_digest = public_key_digest(new_key).hex()
        except MedfwError as e:
            raise invalid(f"new key: {e.message}", field="new_key") from None
        rel_sha, rel_path = self._campaign_release(release)
        try:
            approved = self._check_approvals(new_key, rel_sha, approvals)
        except MedfwError as e:
            self._refuse_campaign(actor, "approvals", rel_path, e.message)
            raise
        base = spec or RolloutSpec(release=rel_path)
        try:
            campaign_id = self._create_campaign(
                base,
                rel_path,
                old_slot=old_slot,
                new_key=new_key,
                new_digest=new_digest,
                approved=approved,
                actor=actor,
            )
        except CampaignRefusedError as e:  # the unit of work rolled back: nothing stored
            self._refuse_campaign(actor, e.reason, rel_path, e.message)
            raise conflict(f"campaign refused ({e.reason}): {e.message}") from None
        return self.campaign(campaign_id)

    def _create_campaign(
        self,
        base: RolloutSpec,
        rel_path: str,
        *,
        old_slot: int,
        new_key: Any,
        new_digest: str,
        approved: list[dict[str, Any]],
        actor: str,
    ) -> int:
        with self.work() as w:
            rollout_id = rollouts.create(w, RolloutSpec(**{**base.__dict__, "release": rel_path}), actor=actor)
            units, claims = _units_and_key_slots(w.session, rollout_id)
            check_start(old_slot=old_slot, new_digest=new_digest, units={u: claims.get(u) for u in units})
            camp = RotationCampaign(
                rollout_id=rollout_id,
                old_slot=old_slot,
                old_key_digest=_common_digest(claims, old_slot),
                new_key_digest=new_digest,
                new_key_fingerprint=public_key_fingerprint(new_key),
                state="running",
                approvals=approved,
                created=_now(),
                updated=_now(),
            )
            _add_campaign(w.session, camp, units)
            w.changed = True
            data = {"old_slot": old_slot, "new_key_digest": new_digest, "units": len(units)}
            data["approved_by"] = [a["statement"]["approver"] for a in approved]
            objects = {"campaign": str(camp.id), "rollout": str(rollout_id), "release": rel_path}
            w.audit("key.rotate", "success", actor, reason="campaign_start", objects=objects, data=data)
        return camp.id

    def _campaign_release(self, release: str | int) -> tuple[str, str]:
        with self.sessions() as s:
            q = select(Release).where(
                Release.id == release if isinstance(release, int) else Release.target_path == release
            )
            rel = s.scalar(q)
            if rel is None:
                raise not_found(f"no release {release}")
            return rel.sha256, rel.target_path

    def _refuse_campaign(self, actor: str, reason: str, release: str, detail: str) -> None:
        objects = {"release": release}
        self._event("key.rotate", "denied", actor, reason=reason, objects=objects, data={"detail": detail})

    def campaign(self, campaign_id: int) -> dict[str, Any]:
        """A campaign with per-unit progress."""
        with self.sessions() as s:
            camp = s.get(RotationCampaign, campaign_id)
            if camp is None:
                raise not_found(f"no campaign {campaign_id}")
            ro = s.get(Rollout, camp.rollout_id)
            assert ro is not None
            states = dict(
                s.execute(
                    select(Assignment.device_id, Assignment.state).where(Assignment.rollout_id == camp.rollout_id)
                ).all()
            )
            units = list(
                s.scalars(
                    select(RotationUnit).where(RotationUnit.campaign_id == campaign_id).order_by(RotationUnit.device_id)
                )
            )
            claims = {
                c.device_id: (c.claims or {}).get("key_slots")
                for c in s.scalars(select(DeviceClaims).where(DeviceClaims.device_id.in_([u.device_id for u in units])))
            }
            rows = []
            for u in units:
                p = progress(
                    assignment_state=states.get(u.device_id),
                    key_slots=claims.get(u.device_id),
                    old_slot=camp.old_slot,
                    new_digest=camp.new_key_digest,
                    failure=u.reason if u.state == UnitState.BLOCKED else None,
                )
                rows.append(
                    {
                        "device": u.device_id,
                        "state": p.state.value,
                        "reason": p.reason,
                        "key_slots": claims.get(u.device_id),
                    }
                )
            return {
                "id": camp.id,
                "rollout": camp.rollout_id,
                "rollout_state": ro.state,
                "state": camp.state,
                "state_reason": camp.state_reason,
                "old_slot": camp.old_slot,
                "old_key_digest": camp.old_key_digest,
                "new_key_digest": camp.new_key_digest,
                "new_key_fingerprint": camp.new_key_fingerprint,
                "approved_by": [a.get("statement", {}).get("approver") for a in camp.approvals],
                "counts": dict(Counter(r["state"] for r in rows)),
                "units": rows,
            }

    def campaigns(self) -> list[dict[str, Any]]:
        """All campaigns."""
        with self.sessions() as s:
            ids = list(s.scalars(select(RotationCampaign.id).order_by(RotationCampaign.id)))
        return [self.campaign(i) for i in ids]

    def control_campaign(self, campaign_id: int, action: str, *, actor: str) -> dict[str, Any]:
        """``pause`` or ``resume`` a campaign (and its rollout when that can follow)."""
        if action not in ("pause", "resume"):
            raise not_found(f"unknown campaign action {action!r}")
        with self.work() as w:
            camp = w.session.get(RotationCampaign, campaign_id, with_for_update=True)
            if camp is None:
                raise not_found(f"no campaign {campaign_id}")
            want, target = ("running", "paused") if action == "pause" else ("paused", "running")
            if camp.state != want:
                raise conflict(f"cannot {action} a {camp.state} campaign", field="state")
            camp.state, camp.state_reason, camp.updated = target, f"{action}d by {actor}", _now()
            if action == "resume":
                for u in w.session.scalars(
                    select(RotationUnit).where(
                        RotationUnit.campaign_id == campaign_id, RotationUnit.state == UnitState.BLOCKED.value
                    )
                ):
                    u.state, u.reason = UnitState.WAITING.value, None
            ro = w.session.get(Rollout, camp.rollout_id)
            assert ro is not None
            source = rules.RolloutState.RUNNING if action == "pause" else rules.RolloutState.PAUSED
            if ro.state == source:
                rollouts.control(w, ro.id, action, actor=actor)
            w.changed = True
            w.audit("key.rotate", "success", actor, reason=f"campaign_{action}", objects={"campaign": str(campaign_id)})
        return self.campaign(campaign_id)

    def campaign_report(self, device_id: str, status: str, reason: str | None) -> None:
        """Follow a unit's rotation report: a failure pauses the campaign and its rollout (audited)."""
        if status not in ("key_rotated", "key_rotation_failed"):
            return
        with self.work() as w:
            s = w.session
            row = s.execute(
                select(RotationUnit, RotationCampaign)
                .join(RotationCampaign, RotationCampaign.id == RotationUnit.campaign_id)
                .where(RotationUnit.device_id == device_id, RotationCampaign.state.in_(["running", "paused"]))
                .order_by(RotationCampaign.id.desc())
            ).first()
            if row is None:
                return
            unit, camp = row
            objects = {"campaign": str(camp.id), "device": device_id}
            if status == "key_rotated":
                unit.state, unit.reason, unit.updated = UnitState.ROTATED.value, None, _now()
                w.audit("key.rotate", "success", f"device:{device_id}", reason="unit_rotated", objects=objects)
                return
            unit.state, unit.reason, unit.updated = UnitState.BLOCKED.value, reason, _now()
            w.audit("key.rotate", "failure", f"device:{device_id}", reason=reason, objects=objects)
            if camp.state == "running":
                camp.state, camp.state_reason, camp.updated = "paused", f"unit {device_id}: {reason}", _now()
                ro = s.get(Rollout, camp.rollout_id)
                if ro is not None and ro.state == rules.RolloutState.RUNNING:
                    rollouts.control(w, ro.id, "pause", actor="server")
                w.audit("key.rotate", "denied", "server", reason="campaign_paused", objects={"campaign": str(camp.id)})
            w.changed = True

    def extras_devices(self) -> set[str]:
        """The units of running campaigns: their poll answer can carry a rotation step (:meth:`rotation_instruction`)
        without an assignment. (A maintenance window or an approval only changes an answer with an assignment.)"""
        with self.sessions() as s:
            return set(
                s.scalars(
                    select(RotationUnit.device_id)
                    .join(RotationCampaign, RotationCampaign.id == RotationUnit.campaign_id)
                    .where(RotationCampaign.state == "running")
                )
            )

    def rotation_instruction(self, device_id: str) -> dict[str, Any] | None:
        """The rotation step a unit is handed in its poll answer, once its campaign release is confirmed."""
        with self.sessions() as s:
            row = s.execute(
                select(RotationCampaign, RotationUnit, Assignment.state, Release.version)
                .join(RotationUnit, RotationUnit.campaign_id == RotationCampaign.id)
                .join(
                    Assignment,
                    (Assignment.rollout_id == RotationCampaign.rollout_id)
                    & (Assignment.device_id == RotationUnit.device_id),
                )
                .join(Rollout, Rollout.id == RotationCampaign.rollout_id)
                .join(Release, Release.id == Rollout.release_id)
                .where(RotationUnit.device_id == device_id, RotationCampaign.state == "running")
                .order_by(RotationCampaign.id.desc())
            ).first()
            if row is None:
                return None
            camp, unit, a_state, version = row
            if a_state != "confirmed" or unit.state in (UnitState.ROTATED.value, UnitState.BLOCKED.value):
                return None
            return {
                "campaign": camp.id,
                "rollout": camp.rollout_id,
                "version": version,
                "old_slot": camp.old_slot,
                "old_key_digest": camp.old_key_digest or None,
                "new_key_digest": camp.new_key_digest,
            }


def _units_and_key_slots(s: Any, rollout_id: int) -> tuple[list[str], dict[str, Any]]:
    """The rollout's units and the key slots each last reported in signed claims."""
    units = list(s.scalars(select(Assignment.device_id).where(Assignment.rollout_id == rollout_id)))
    rows = s.scalars(select(DeviceClaims).where(DeviceClaims.device_id.in_(units)))
    return units, {c.device_id: (c.claims or {}).get("key_slots") for c in rows}


def _common_digest(claims: Mapping[str, Any], slot: int) -> str:
    """The digest most units report in ``slot`` (the campaign's old key), or ``""``."""
    found = Counter(
        str(sl.get("digest"))
        for ks in claims.values()
        for sl in (ks or [])
        if sl.get("slot") == slot and sl.get("digest")
    ).most_common(1)
    return found[0][0] if found else ""


def _add_campaign(s: Any, camp: RotationCampaign, units: Sequence[str]) -> None:
    s.add(camp)
    s.flush()
    s.add(RolloutOptions(rollout_id=camp.rollout_id, require_approval=False, campaign_id=camp.id))
    for u in units:
        s.add(RotationUnit(campaign_id=camp.id, device_id=u, state=UnitState.WAITING.value, updated=_now()))


def campaign_units(status: Mapping[str, Any]) -> Mapping[str, str]:
    """``device -> state`` of a campaign status (for tests and the CLI)."""
    return {u["device"]: u["state"] for u in status["units"]}
