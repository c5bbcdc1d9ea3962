"""Proof: a key-rotation campaign on a 10-unit simulated fleet — every confirming unit ends on the new key with the
old slot revoked, a unit whose app never confirms keeps the old key, a power cut during the revoke step never leaves
a unit unbootable; M-of-N approval to start; pauses on errors; a new key already revoked is refused."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from medfw.crypto.keys import KeyType, generate_private_key, public_key_fingerprint
from medfw.crypto.signer import FileSigner
from medfw.device import PowerLossError
from medfw.image.sbv2 import public_key_digest
from medfw.keys.approval_policy import RequireApprovals
from medfw.keys.approvals import ApprovalRequest, sign_approval

from .trusted import TrustedFleet, Unit, trusted_fleet

APPROVERS = [FileSigner(generate_private_key(KeyType.ECDSA_P256)) for _ in range(3)]
POLICY = RequireApprovals.of(2, [a.public_key() for a in APPROVERS], ["alice", "bob", "carol"])


def _approvals(fleet: TrustedFleet, target: str, n: int) -> list[dict[str, Any]]:
    (rel,) = [r for r in fleet.admin.get("/api/v1/releases").json() if r["target_path"] == target]
    request = ApprovalRequest(public_key_fingerprint(fleet.new_key.public_key()), rel["sha256"], "key-rotation")
    now = dt.datetime.now(dt.UTC)
    return [
        sign_approval(request, name, signer, now=now).to_dict()
        for name, signer in zip(["alice", "bob", "carol"][:n], APPROVERS[:n], strict=True)
    ]


def _new_key_pem(fleet: TrustedFleet) -> str:
    pub = fleet.new_key.public_key()
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _slots(unit: Unit) -> dict[int, tuple[str | None, bool]]:
    return {s.index: (s.digest.hex() if s.digest else None, s.revoked) for s in unit.device.efuse.key_slots()}


def _cycle(unit: Unit) -> str:
    try:
        return unit.cycle()
    except PowerLossError:
        return "power_cut"


def test_ten_unit_campaign(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path, approval_policy=POLICY) as fleet:
        units = [fleet.unit(f"pump-{i:04d}", keep_unused_slots=True) for i in range(10)]
        for u in units:
            assert u.cycle() == "idle"
        units[9].healthy = False  # its new app never confirms
        units[4].port.power_cut_on_revoke = "after_burn"
        units[5].port.power_cut_on_revoke = "before_burn"
        target = fleet.publish("2.0.0", 2, signers=[fleet.old_key, fleet.new_key])
        body = {
            "release": target,
            "old_slot": 0,
            "new_key": _new_key_pem(fleet),
            "phases": ["2", "100%"],
            "success_threshold": 80,
            "error_threshold": 50,
        }
        r = fleet.admin.post("/api/v1/campaigns", json={**body, "approvals": _approvals(fleet, target, 1)})
        assert r.status_code == 403, r.text
        assert fleet.admin.get("/api/v1/rollouts").json() == []  # nothing stored
        r = fleet.admin.post("/api/v1/campaigns", json={**body, "approvals": _approvals(fleet, target, 2)})
        assert r.status_code == 201, r.text
        campaign = r.json()
        assert campaign["approved_by"] == ["alice", "bob"]
        assert campaign["counts"] == {"waiting": 10}
        seen: dict[str, list[str]] = {u.id: [] for u in units}
        for _round in range(6):
            for u in units:
                seen[u.id].append(_cycle(u))
        status = fleet.admin.get(f"/api/v1/campaigns/{campaign['id']}").json()
        states = {x["device"]: x["state"] for x in status["units"]}
        assert states.pop("pump-0009") == "kept_old_key"
        assert set(states.values()) == {"rotated"}, status
        assert "power_cut" in seen["pump-0004"] and "power_cut" in seen["pump-0005"]
        old = public_key_digest(fleet.old_key.public_key()).hex()
        new = public_key_digest(fleet.new_key.public_key()).hex()
        for u in units:
            slots = _slots(u)
            usable = [d for d, revoked in slots.values() if d and not revoked]
            assert usable, u.id  # never every slot revoked
            u.device.boot()  # and it boots
            if u.id == "pump-0009":
                assert slots[0] == (old, False) and new not in usable
                assert u.state().version == "1.0.0"
            else:
                assert slots[0] == (old, True), u.id
                assert usable == [new], u.id
                assert u.state().version == "2.0.0"
        rotated = [e for e in fleet.sink.of_type("key.rotate") if e.reason == "unit_rotated"]
        assert len(rotated) == 9
        assert any(e.reason == "campaign_start" for e in fleet.sink.of_type("key.rotate"))
        trail = fleet.admin.get("/api/v1/devices/pump-0004/audit", params={"limit": 1000}).json()
        assert any(e["type"] == "key.revoke" and e["outcome"] == "success" for e in trail["entries"])


def test_campaign_pauses_when_a_unit_cannot_rotate(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path, approval_policy=POLICY) as fleet:
        ok = fleet.unit("pump-0001", keep_unused_slots=True)
        full = fleet.unit("pump-0002")  # unused slots revoked at provisioning: no free slot for the new key
        for u in (ok, full):
            assert u.cycle() == "idle"
        target = fleet.publish("2.0.0", 2, signers=[fleet.old_key, fleet.new_key])
        body = {"release": target, "old_slot": 0, "new_key": _new_key_pem(fleet), "phases": ["100%"]}
        r = fleet.admin.post("/api/v1/campaigns", json={**body, "approvals": _approvals(fleet, target, 3)})
        assert r.status_code == 201, r.text
        for _ in range(3):
            for u in (ok, full):
                u.cycle()
        status = fleet.admin.get(f"/api/v1/campaigns/{r.json()['id']}").json()
        assert status["state"] == "paused"
        assert "no_free_slot" in status["state_reason"]
        units = {x["device"]: (x["state"], x["reason"]) for x in status["units"]}
        assert units["pump-0002"] == ("blocked", "no_free_slot")
        assert _slots(full)[0][1] is False  # the old key stays
        assert fleet.status(status["rollout"])["state"] in ("paused", "finished")


def test_campaign_with_a_new_key_already_revoked_is_refused(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path, approval_policy=POLICY) as fleet:
        new_digest = public_key_digest(fleet.new_key.public_key())
        unit = fleet.unit(
            "pump-0001", digests=[public_key_digest(fleet.old_key.public_key()), new_digest], keep_unused_slots=True
        )
        unit.device.boot()
        unit.device.revoke_key(1)  # the new key's slot was revoked earlier on this unit
        assert unit.cycle() == "idle"  # reports its key slots in signed claims
        target = fleet.publish("2.0.0", 2, signers=[fleet.old_key, fleet.new_key])
        body = {"release": target, "old_slot": 0, "new_key": _new_key_pem(fleet), "phases": ["100%"]}
        r = fleet.admin.post("/api/v1/campaigns", json={**body, "approvals": _approvals(fleet, target, 2)})
        assert r.status_code == 409, r.text
        assert "new_key_revoked" in r.json()["detail"]
        assert fleet.admin.get("/api/v1/rollouts").json() == []
        assert fleet.admin.get("/api/v1/campaigns").json() == []
        assert any(e.reason == "new_key_revoked" for e in fleet.sink.of_type("key.rotate"))


@pytest.mark.parametrize("old_slot", [-1, 3])
def test_campaign_with_a_bad_slot_is_refused(tmp_path: Path, old_slot: int) -> None:
    with trusted_fleet(tmp_path, approval_policy=POLICY) as fleet:
        target = fleet.publish("2.0.0", 2)
        body = {"release": target, "old_slot": old_slot, "new_key": _new_key_pem(fleet), "approvals": [{}]}
        assert fleet.admin.post("/api/v1/campaigns", json=body).status_code == 422
