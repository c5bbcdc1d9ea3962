"""Poll answers are cached per process and invalidated across processes through the database generation."""

from __future__ import annotations

from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.update.repository import ReleaseInfo


def _release() -> ReleaseInfo:
    return ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 4096, "ab" * 32)


def test_two_workers_see_each_others_changes(db_url: str) -> None:
    engine = make_engine(db_url)
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


def test_reported_state_is_written_in_batches(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    svc.add_device("d1", model="pump", actor="t")
    svc.poll("d1", version="1.0.0", secure_version=1, slot="ota_0")
    svc.poll("d1", version="1.0.1", secure_version=1, slot="ota_1")
    (row,) = svc.device_rows()  # flushes first
    assert (row.version, row.slot) == ("1.0.1", "ota_1") and row.last_seen is not None


def test_an_ended_assignment_keeps_idle_answers_and_drops_busy_ones(db_url: str) -> None:
    """A final report while the rollout goes on moves the ended generation: another worker keeps its busy set (a
    superset now; idle devices never wait for a re-read), answers the ended device from the database, and shrinks
    the set in the background."""
    engine = make_engine(db_url)
    migrate(engine)
    a = FleetService(make_sessionmaker(engine), generation_check=0.0)
    b = FleetService(make_sessionmaker(engine), generation_check=0.0)
    a.add_devices([(d, "pump", "esp32c3") for d in ("d1", "d2", "d3")], actor="t")
    a.sync_releases([_release()], actor="t")
    ro = a.create_rollout(
        release="pump/pump-1.1.0.bin", devices=["d1", "d2"], phases=["100%"], success_threshold=100, actor="t"
    ).id
    old = {"version": "1.0.0", "secure_version": 1, "slot": "ota_0"}
    assert b.poll("d1", **old).body["assignment"] is not None  # B reads the busy set {d1, d2}
    assert b.poll("d2", **old).body["assignment"] is not None
    assert b.poll("d3", **old).body["assignment"] is None
    assignments = b.cache.assignments
    a.report(
        "d1", status="confirmed", reason=None, detail=None, rollout_id=ro, version="1.1.0", secure_version=2, slot=None
    )
    assert a.rollout(ro).state == "running"  # d2 has not answered: nothing else moves
    b.cache.current()
    assert b.cache.assignments == assignments  # not a move that makes busy sets grow
    assert b.cache.idle("d3") is True and b.cache.idle("d1") is False  # the set is kept: a superset
    assert b.poll_cached("d2", **old) is None  # busy devices' cached answers are dropped
    assert b.poll("d1", **old).body["assignment"] is None  # the ended device is answered from the database
    b.cache.refresh_busy(b.busy_devices, shrink=True)
    assert b.cache.idle("d1") is True and b.cache.idle("d2") is False


def test_a_device_entering_an_active_state_makes_busy_sets_grow(db_url: str) -> None:
    """A report that moves a waiting device into an active state is a move: other workers re-read the busy set."""
    engine = make_engine(db_url)
    migrate(engine)
    a = FleetService(make_sessionmaker(engine), generation_check=0.0)
    b = FleetService(make_sessionmaker(engine), generation_check=0.0)
    a.add_devices([(d, "pump", "esp32c3") for d in ("d1", "d2")], actor="t")
    a.sync_releases([_release()], actor="t")
    ro = a.create_rollout(release="pump/pump-1.1.0.bin", phases=["50%", "100%"], actor="t").id
    old = {"version": "1.0.0", "secure_version": 1, "slot": "ota_0"}
    b.poll("d1", **old)
    waiting = "d2" if b.cache.idle("d2") else "d1"  # the device of the second phase
    assignments = b.cache.assignments
    a.report(
        waiting,
        status="downloading",
        reason=None,
        detail=None,
        rollout_id=ro,
        version=None,
        secure_version=None,
        slot=None,
    )
    b.cache.current()
    assert b.cache.assignments == assignments + 1 and b.cache.idle(waiting) is None  # read again before answering
    b.poll(waiting, **old)
    assert b.cache.idle(waiting) is False
