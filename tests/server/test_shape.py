"""The server's shape: domain errors map to one status each, views are frozen, maintenance logs its failures."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from medfw.errors import InputError, MedfwError, StorageError, UsageError
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized, Unavailable
from medfw.server.http import status_of
from medfw.server.maintenance import Maintenance
from medfw.server.service import FleetService


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


def test_service_returns_frozen_views(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.sqlite'}")
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


def test_maintenance_logs_a_failed_pass(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.sqlite'}")
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    svc.add_device("d1", model="pump", actor="t")
    svc.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE assignments"))
        conn.execute(text("DROP TABLE reports"))
        conn.execute(text("DROP TABLE devices"))
    with caplog.at_level(logging.WARNING, logger="medfw.server.maintenance"):
        Maintenance(svc, None, None).run_once()
    assert any("writing poll data failed" in r.getMessage() for r in caplog.records)
