"""Proof: mTLS end to end with a test device CA — enrollment, polls, reports and an update; revocation; forged
reports never count toward rollout thresholds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from medfw.identity.claims import sign_claims
from medfw.identity.tls import client_ssl_context
from medfw.identity.unit import DeviceCredentials

from .pki import device_ca, unit_files
from .trusted import TrustedFleet, trusted_fleet


@pytest.fixture
def fleet(tmp_path: Path) -> TrustedFleet:
    with trusted_fleet(tmp_path) as f:
        yield f  # type: ignore[misc]


def test_provisioned_unit_enrols_polls_updates_and_is_refused_once_revoked(fleet: TrustedFleet) -> None:
    r = fleet.admin.put("/api/v1/models/pump/group", json={"group": "wards"})
    assert r.status_code == 200, r.text
    unit = fleet.unit("pump-0001")
    assert unit.cycle() == "idle"  # first contact: pre-authorised, enrolled
    (row,) = fleet.admin.get("/api/v1/devices").json()
    assert (row["id"], row["group"], row["model"], row["chip"]) == ("pump-0001", "wards", "pump", "esp32c6")
    target = fleet.publish("1.1.0", 2)
    ro = fleet.rollout(target, phases=["100%"])
    assert unit.cycle() == "confirmed"
    assert unit.state().version == "1.1.0"
    status = fleet.status(ro["id"])
    assert status["state"] == "finished"
    claims = fleet.admin.get("/api/v1/devices/pump-0001/claims").json()["claims"]
    assert claims["version"] == "1.1.0"
    assert claims["efuse_counter"] == 2
    # revoke: the next connection is refused with 401 and audited
    r = fleet.admin.post("/api/v1/devices/pump-0001/certificate/revoke", json={"reason": "key_compromise"})
    assert r.status_code == 200, r.text
    assert r.json()["revoked"]
    poll = unit.client.get("/api/v1/devices/pump-0001/poll")
    assert poll.status_code == 401
    assert "revoked" in poll.json()["detail"]
    assert any(e.reason == "certificate_revoked" for e in fleet.sink.of_type("ota.report"))
    assert [x["device"] for x in fleet.admin.get("/api/v1/revocations").json()] == ["pump-0001"]


def test_unknown_serial_is_held_then_approved(fleet: TrustedFleet) -> None:
    unit = fleet.unit("pump-0099", preauthorize=False)
    r = unit.client.get("/api/v1/devices/pump-0099/poll")
    assert r.status_code == 403
    assert "held for approval" in r.json()["detail"]
    assert fleet.admin.get("/api/v1/devices").json() == []
    (held,) = fleet.admin.get("/api/v1/enrollment/requests", params={"state": "held"}).json()
    assert held["device"] == "pump-0099"
    assert any(e.reason == "enrollment_held" for e in fleet.sink.of_type("device.register"))
    r = fleet.admin.post("/api/v1/enrollment/requests/pump-0099", json={"approve": True, "group": "icu"})
    assert r.json()["state"] == "approved"
    assert unit.cycle() == "idle"
    assert fleet.admin.get("/api/v1/devices").json()[0]["group"] == "icu"


def test_rejected_enrollment_and_decommission(fleet: TrustedFleet) -> None:
    stranger = fleet.unit("pump-0666", preauthorize=False)
    assert stranger.client.get("/api/v1/devices/pump-0666/poll").status_code == 403
    fleet.admin.post("/api/v1/enrollment/requests/pump-0666", json={"approve": False})
    assert stranger.client.get("/api/v1/devices/pump-0666/poll").status_code == 403
    unit = fleet.unit("pump-0002")
    assert unit.cycle() == "idle"
    assert fleet.admin.delete("/api/v1/devices/pump-0002").status_code == 204
    assert unit.client.get("/api/v1/devices/pump-0002/poll").status_code == 401


def test_certificate_of_another_ca_or_expired_is_refused_by_tls(fleet: TrustedFleet, tmp_path: Path) -> None:
    import datetime as dt

    other = unit_files(tmp_path / "o", device_ca(), "pump-0003")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired = unit_files(tmp_path / "e", fleet.ca, "pump-0004", days=1, now=old)
    for cert, key in (other, expired):
        with (
            httpx.Client(
                base_url=fleet.url, verify=client_ssl_context(server_ca=fleet.tls.ca, cert=cert, key=key)
            ) as c,
            pytest.raises(httpx.HTTPError),
        ):
            c.get("/api/v1/devices/pump-0003/poll")


def test_a_unit_cannot_act_for_another(fleet: TrustedFleet) -> None:
    a, b = fleet.unit("pump-0005"), fleet.unit("pump-0006")
    assert a.cycle() == "idle" and b.cycle() == "idle"
    r = a.client.get("/api/v1/devices/pump-0006/poll")
    assert r.status_code == 403


def test_forged_reports_do_not_count(fleet: TrustedFleet) -> None:
    honest, other = fleet.unit("pump-0010"), fleet.unit("pump-0011")
    assert honest.cycle() == "idle" and other.cycle() == "idle"
    target = fleet.publish("1.2.0", 2)
    ro = fleet.rollout(target, phases=["100%"], success_threshold=50)
    body = {"status": "confirmed", "rollout": ro["id"], "version": "1.2.0", "secure_version": 2, "slot": "ota_1"}
    # unsigned
    r = honest.client.post("/api/v1/devices/pump-0010/reports", json=body)
    assert r.status_code == 403
    # signed by another unit's key
    forger = DeviceCredentials.load(other.dir)
    payload = {"dev": "pump-0010", "typ": "report", "seq": 10**6, "iat": 0, "reason": None, **body}
    forged = sign_claims(forger.signer, payload, kid=forger.kid)
    r = honest.client.post("/api/v1/devices/pump-0010/reports", json={**body, "claims": forged})
    assert r.status_code == 403
    # claims of this unit that say something else than the request
    creds = DeviceCredentials.load(honest.dir)
    token = creds.claims(
        "report", status="rejected", reason="x", rollout=ro["id"], version="1.2.0", secure_version=2, slot="ota_1"
    )
    r = honest.client.post("/api/v1/devices/pump-0010/reports", json={**body, "claims": token})
    assert r.status_code == 403
    # a replayed genuine claim
    good = creds.claims(
        "report", status="downloading", reason=None, rollout=ro["id"], version="1.0.0", secure_version=1, slot="ota_0"
    )
    first = {
        "status": "downloading",
        "rollout": ro["id"],
        "version": "1.0.0",
        "secure_version": 1,
        "slot": "ota_0",
        "claims": good,
    }
    assert honest.client.post("/api/v1/devices/pump-0010/reports", json=first).status_code == 200
    assert honest.client.post("/api/v1/devices/pump-0010/reports", json=first).status_code == 409
    counts = fleet.counts(ro["id"])
    assert counts.get("confirmed", 0) == 0
    assert fleet.status(ro["id"])["state"] == "running"
    reasons = {e.reason for e in fleet.sink.of_type("ota.report") if e.outcome == "denied"}
    assert {"claims_missing", "bad_signature", "claims_mismatch"} <= reasons


def test_shared_secret_units_count_only_when_allowed(tmp_path: Path) -> None:
    for allowed in (False, True):
        with trusted_fleet(tmp_path / str(allowed), allow_shared_secret=allowed) as fleet:
            r = fleet.admin.post("/api/v1/devices", json={"id": "sim-1", "model": "pump", "chip": "esp32c6"})
            cred = r.json()["credential"]
            target = fleet.publish("1.3.0", 2)
            ro = fleet.rollout(target, phases=["100%"])
            h = {"Authorization": f"Device {cred}"}
            body = {
                "status": "confirmed",
                "rollout": ro["id"],
                "version": "1.3.0",
                "secure_version": 2,
                "slot": "ota_1",
            }
            r = fleet.admin.post("/api/v1/devices/sim-1/reports", json=body, headers=h)
            assert r.status_code == 200, r.text
            state = fleet.status(ro["id"])
            assert (state["state"] == "finished") is allowed
            assert fleet.counts(ro["id"]).get("unverified", 0) == (0 if allowed else 1)
