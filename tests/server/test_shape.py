"""The server's shape: domain errors map to one status each, views are frozen, maintenance logs its failures."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from medfw.errors import InputError, MedfwError, StorageError, UsageError
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, Unavailable
from medfw.server.http import status_of
from medfw.server.logs import JsonFormatter
from medfw.server.maintenance import Maintenance
from medfw.server.service import FleetService

from .conftest import Api, database_down


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Unauthorized("x"), 401),
        (Forbidden("x"), 403),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (Invalid("x"), 422),
        (UsageError("x"), 422),
        (InputError("x"), 422),
        (Unavailable("x"), 503),
        (StorageError("x"), 503),
        (MedfwError("x"), 400),
    ],
)
def test_each_domain_error_has_one_status(error: MedfwError, status: int) -> None:
    assert status_of(error) == status


def test_service_returns_frozen_views(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    svc.add_device("d1", model="pump", actor="t")
    (row,) = svc.device_rows()
    with pytest.raises(dataclasses.FrozenInstanceError):
        row.group = "other"  # type: ignore[misc]
    with pytest.raises(NotFound):
        svc.rollout(99)
    with pytest.raises(Conflict):
        svc.add_device("d1", model="pump", actor="t")


def test_maintenance_logs_a_failed_pass(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    svc.add_device("d1", model="pump", actor="t")
    svc.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    with database_down(engine, db_url), caplog.at_level(logging.WARNING, logger="medfw.server.maintenance"):
        Maintenance(svc, None, None).run_once()  # the database is gone: every new connection fails
    assert any("writing poll data failed" in r.getMessage() for r in caplog.records)
    assert "d1" in svc.cache.take_seen()  # kept for the next pass
    engine.dispose()


def test_request_log_names_the_actor_never_the_secret(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    dev = api.device("pump-1")
    secret = dev["Authorization"].split(":", 1)[1]
    with caplog.at_level(logging.INFO, logger="medfw.server.request"):
        assert api.client.get("/api/v1/devices/pump-1/poll", headers=dev).status_code == 200
        assert api.client.get("/api/v1/devices", headers=api.h("read-only")).status_code == 200
        assert api.client.get("/api/v1/devices", headers={"Authorization": "Bearer mft_wrong"}).status_code == 401
    lines = [r for r in caplog.records if r.name == "medfw.server.request"]
    assert [(r.method, r.path, r.status, r.actor) for r in lines] == [  # type: ignore[attr-defined]
        ("GET", "/api/v1/devices/pump-1/poll", 200, "device:pump-1"),
        ("GET", "/api/v1/devices", 200, "token:read-only"),
        ("GET", "/api/v1/devices", 401, None),
    ]
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n".join(JsonFormatter().format(r) for r in lines)
    assert secret not in text and api.tokens["read-only"] not in text and "mft_wrong" not in text
    first = json.loads(JsonFormatter().format(lines[0]))
    assert first["status"] == 200 and first["actor"] == "device:pump-1" and first["latency_ms"] >= 0
