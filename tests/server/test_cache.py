"""Poll answers are cached per process and invalidated across processes through the database generation."""

from __future__ import annotations

from pathlib import Path

from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.update.repository import ReleaseInfo


def _release() -> ReleaseInfo:
    return ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 4096, "ab" * 32)


def test_two_workers_see_each_others_changes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.sqlite'}")
    migrate(engine)
    a = FleetService(make_sessionmaker(engine), generation_check=0.0)  # worker A
    b = FleetService(make_sessionmaker(engine), generation_check=0.0)  # worker B, same database
    cred = a.add_device("d1", model="pump", actor="t")
    assert b.authenticate_device(cred) == "d1"
    first = b.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    assert first.body["assignment"] is None
    assert b.poll_cached("d1", version="1.0.0", secure_version=1, slot="ota_0") == first
    a.sync_releases([_release()], actor="t")
    a.create_rollout(release="pump/pump-1.1.0.bin", phases=["100%"], actor="t")
    # B's cached answer is dropped because A bumped the generation
    assert b.poll_cached("d1", version="1.0.0", secure_version=1, slot="ota_0") is None
    second = b.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    assert second.body["assignment"]["version"] == "1.1.0" and second.etag != first.etag
    # a decommissioned device's cached credential stops working in the other worker too
    a.delete_device("d1", actor="t")
    assert b.authenticate_device(cred) is None


def test_reported_state_is_written_in_batches(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.sqlite'}")
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    svc.add_device("d1", model="pump", actor="t")
    svc.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    svc.poll("d1", version="1.0.1", secure_version=1, slot="ota_1")
    (row,) = svc.device_rows()  # flushes first
    assert (row.version, row.slot) == ("1.0.1", "ota_1") and row.last_seen is not None
