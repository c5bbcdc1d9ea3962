"""Credentials (finding 2): token expiry, last use, list and revoke; device credential rotation with a grace
period; re-provisioning a decommissioned id only with the explicit call. SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from medfw.server.credentials import Role, parse_duration
from medfw.server.models import ApiToken, Device

from .conftest import Api


def _past(api: Api, table: type, column: str, key: str, value: str) -> None:
    with api.service.sessions.begin() as s:
        col = getattr(table, column)
        s.execute(update(table).where(getattr(table, key) == value).values({col: datetime.now(UTC) - timedelta(1)}))


def test_tokens_expire_record_last_use_list_and_revoke(api: Api) -> None:
    admin = api.h("admin")
    r = api.client.post("/api/v1/tokens", json={"name": "ci", "role": "operator", "expires_in": "90d"}, headers=admin)
    assert r.status_code == 201
    ci = {"Authorization": f"Bearer {r.json()['token']}"}
    assert api.client.get("/api/v1/devices", headers=ci).status_code == 200
    listed = {t["name"]: t for t in api.client.get("/api/v1/tokens", headers=admin).json()}
    assert listed["ci"]["active"] and listed["ci"]["last_used"] is not None and listed["ci"]["expires"] is not None
    assert listed["operator"]["expires"] is None and "token" not in listed["ci"] and "token_hash" not in listed["ci"]
    # expiry
    _past(api, ApiToken, "expires", "name", "ci")
    assert api.client.get("/api/v1/devices", headers=ci).status_code == 401
    assert not {t["name"]: t for t in api.client.get("/api/v1/tokens", headers=admin).json()}["ci"]["active"]
    # revocation
    op = api.h("operator")
    assert api.client.get("/api/v1/devices", headers=op).status_code == 200
    r = api.client.delete("/api/v1/tokens/operator", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] is not None and r.json()["active"] is False
    assert api.client.get("/api/v1/devices", headers=op).status_code == 401
    assert api.client.delete("/api/v1/tokens/nope", headers=admin).status_code == 404
    assert api.client.get("/api/v1/tokens", headers=api.h("read-only")).status_code == 403
    for bad in ("0", "-1d", "10", "10y", "9999999d"):
        r = api.client.post("/api/v1/tokens", json={"name": "x", "role": "admin", "expires_in": bad}, headers=admin)
        assert r.status_code == 422 and "expires_in" in r.json()["detail"], bad
    actions = [e.data.get("action") for e in api.sink.of_type("config.change") if e.outcome == "success"]
    assert actions == ["token.create", "token.revoke"]


def test_device_credential_rotation_with_and_without_grace(api: Api) -> None:
    old = api.device("pump-1")
    admin = api.h("admin")
    poll = "/api/v1/devices/pump-1/poll"
    assert api.client.get(poll, headers=old).status_code == 200  # cached digest
    r = api.client.post("/api/v1/devices/pump-1/credential", json={"grace": "1h"}, headers=admin)
    assert r.status_code == 200
    new = {"Authorization": f"Device {r.json()['credential']}"}
    assert api.client.get(poll, headers=new).status_code == 200
    assert api.client.get(poll, headers=old).status_code == 200  # within the grace period
    _past(api, Device, "prev_valid_until", "id", "pump-1")  # the grace period is over
    api.service.cache.check_every = 0.0
    api.service.store.bump_generation()  # as another process would: every cached digest is dropped
    assert api.client.get(poll, headers=old).status_code == 401
    assert api.client.get(poll, headers=new).status_code == 200
    # grace 0: the old credential is refused at once
    r = api.client.post("/api/v1/devices/pump-1/credential", json={}, headers=admin)
    newer = {"Authorization": f"Device {r.json()['credential']}"}
    assert api.client.get(poll, headers=new).status_code == 401
    assert api.client.get(poll, headers=newer).status_code == 200
    assert api.client.post("/api/v1/devices/pump-1/credential", json={}, headers=api.h("operator")).status_code == 403
    assert api.client.post("/api/v1/devices/nope/credential", json={}, headers=admin).status_code == 404
    r = api.client.post("/api/v1/devices/pump-1/credential", json={"grace": "a\x00"}, headers=admin)
    assert r.status_code == 422 and "grace" in r.json()["detail"]
    rotations = [e for e in api.sink.of_type("device.register") if e.data.get("action") == "credential.rotate"]
    assert [e.data["grace_seconds"] for e in rotations] == [3600, 0]


def test_decommissioned_id_is_reprovisioned_only_explicitly(api: Api) -> None:
    old = api.device("pump-1")
    admin = api.h("admin")
    body = {"id": "pump-1", "model": "pump"}
    assert (
        api.client.post("/api/v1/devices/pump-1/reprovision", json={"model": "pump"}, headers=admin).status_code == 409
    )
    assert api.client.delete("/api/v1/devices/pump-1", headers=admin).status_code == 204
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=old).status_code == 401
    assert api.client.post("/api/v1/devices", json=body, headers=api.h("operator")).status_code == 409
    r = api.client.post("/api/v1/devices/pump-1/reprovision", json={"model": "pump"}, headers=api.h("operator"))
    assert r.status_code == 403
    r = api.client.post("/api/v1/devices/pump-1/reprovision", json={"model": "pump", "group": "ward"}, headers=admin)
    assert r.status_code == 200
    new = {"Authorization": f"Device {r.json()['credential']}"}
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=new).status_code == 200
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=old).status_code == 401
    (row,) = [d for d in api.service.device_rows() if d.id == "pump-1"]
    assert row.active and row.group == "ward"
    assert api.client.post("/api/v1/devices/zz/reprovision", json={"model": "pump"}, headers=admin).status_code == 404


def test_parse_duration() -> None:
    assert parse_duration("10m") == timedelta(minutes=10) and parse_duration("90d") == timedelta(days=90)
    assert parse_duration("0") == timedelta(0) and parse_duration("2w") == timedelta(weeks=2)
    assert Role.ADMIN.allows(Role.OPERATOR) and not Role.READ_ONLY.allows(Role.OPERATOR)
