"""Server decisions land in a real tamper-evident audit log that verifies afterwards."""

from __future__ import annotations

import warnings
from pathlib import Path

from medfw.audit import init_log, open_log, verify_log
from medfw.server.app import create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_management_actions_and_reports_are_sealed(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "audit.db"
    key = tmp_path / "audit.key"
    init_log(log, key_out=key)
    sink = open_log(log)
    engine = make_engine(db_url)
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), sink)
    admin = service.create_token("admin", Role.ADMIN)
    with TestClient(create_app(service, maintenance_interval=3600)) as c:
        h = {"Authorization": f"Bearer {admin}"}
        cred = c.post("/api/v1/devices", json={"id": "d1", "model": "pump"}, headers=h).json()["credential"]
        d = {"Authorization": f"Device {cred}"}
        assert (
            c.post(
                "/api/v1/devices/d1/reports", json={"status": "rejected", "reason": "hash_mismatch"}, headers=d
            ).status_code
            == 200
        )
        assert c.get("/api/v1/devices", headers={"Authorization": "Bearer mft_bad"}).status_code == 401
    close = getattr(sink, "close", None)
    if close is not None:
        close()
    report = verify_log(log, key.read_bytes())
    assert report.ok, report.message
    assert report.entries >= 5  # init, token, register, report, denied
