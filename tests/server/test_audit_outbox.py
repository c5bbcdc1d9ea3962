"""Audit that survives crashes and floods (finding 9): the outbox, aggregated refusals, the refusal rate limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfw.audit.sink import AuditEvent, MemorySink
from medfw.server.auditing import RefusalLimiter
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService

from .conftest import Api


class _FlakySink(MemorySink):
    """An audit log that is away (disk full, locked) until ``up`` is set."""

    up = False

    def record(self, event: AuditEvent) -> None:
        if not self.up:
            raise OSError("audit log unavailable")
        super().record(event)


def test_events_commit_with_their_change_and_reach_the_log_later(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sink = _FlakySink()
    svc = FleetService(make_sessionmaker(engine), sink)
    svc.add_device("d1", model="pump", actor="t")  # committed although the log is away
    ack = svc.report(
        "d1",
        status="downloading",
        reason=None,
        detail=None,
        rollout_id=None,
        version="1.0",
        secure_version=1,
        slot="ota_0",
    )
    assert ack.accepted and svc.store.outbox_size() == 2 and sink.events == []
    # a new process (after a crash) drains what the previous one committed
    sink.up = True
    again = FleetService(make_sessionmaker(engine), sink)
    assert again.drain_outbox() == 2 and svc.store.outbox_size() == 0
    assert [e.type for e in sink.events] == ["device.register", "ota.report"]
    assert [e.data["outbox_id"] for e in sink.events] == sorted(e.data["outbox_id"] for e in sink.events)
    assert all(e.data["committed"] for e in sink.events)


def test_a_rolled_back_change_leaves_no_audit_event(api: Api) -> None:
    api.device("pump-1")
    before = len(api.sink.events)
    r = api.client.post("/api/v1/rollouts", json={"release": 1, "devices": ["nope"]}, headers=api.h("operator"))
    assert r.status_code == 422 and len(api.sink.events) == before and api.service.store.outbox_size() == 0


def test_refused_requests_are_aggregated_per_source_and_reason(api: Api) -> None:
    api.service.limiter = RefusalLimiter(limit=0)  # no rate limit in this test
    for _ in range(30):
        assert api.client.get("/api/v1/devices", headers={"Authorization": "Bearer mft_x"}).status_code == 401
    for _ in range(7):
        assert api.client.get("/api/v1/devices").status_code == 401
    assert not [e for e in api.sink.events if e.outcome == "denied"]  # nothing synced per request
    api.service.flush_denied()
    denied = {e.reason: e for e in api.sink.events if e.outcome == "denied"}
    assert denied.keys() == {"bad_token", "missing_token"}
    assert denied["bad_token"].data["count"] == 30 and denied["missing_token"].data["count"] == 7
    assert denied["bad_token"].data["source"] == "testclient" and denied["bad_token"].actor == "source:testclient"
    api.service.flush_denied()
    assert len([e for e in api.sink.events if e.outcome == "denied"]) == 2  # counted once


def test_refused_authentication_is_rate_limited_per_source_and_device(api: Api) -> None:
    good = api.device("pump-1")
    api.device("pump-2")
    api.service.limiter = RefusalLimiter(limit=5, window=60)
    wrong = {"Authorization": "Device pump-2:" + "A" * 43}
    for _ in range(5):
        assert api.client.get("/api/v1/devices/pump-2/poll", headers=wrong).status_code == 401
    r = api.client.get("/api/v1/devices/pump-2/poll", headers=wrong)
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    # the source is blocked, also for a valid credential and for the management API
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=good).status_code == 429
    assert api.client.get("/api/v1/devices", headers=api.h("admin")).status_code == 429


def test_limiter_keys_are_independent() -> None:
    limiter = RefusalLimiter(limit=3, window=60)
    for _ in range(3):
        limiter.refused("ip:a", "device:x")
    assert limiter.blocked("ip:a") is not None and limiter.blocked("device:x") is not None
    assert limiter.blocked("ip:b") is None and limiter.blocked("ip:b", "device:y") is None
    assert RefusalLimiter(limit=0).blocked("ip:a") is None


@pytest.mark.parametrize("n", [1, 3])
def test_limiter_counts_only_within_the_window(n: int) -> None:
    limiter = RefusalLimiter(limit=n, window=0.0)
    limiter.refused("ip:a")
    assert limiter.blocked("ip:a") is None  # the window has already passed


def test_one_process_holds_the_audit_lease_and_another_takes_over(tmp_path: Path) -> None:
    from medfw.server.lease import AuditLease

    opened: list[str] = []
    first = AuditLease(str(tmp_path / "audit.db"), lambda: (opened.append("a"), MemorySink())[1])
    second = AuditLease(str(tmp_path / "audit.db"), lambda: (opened.append("b"), MemorySink())[1])
    assert first.try_claim() is not None and second.try_claim() is None and opened == ["a"]
    assert first._fd is not None
    import os

    os.close(first._fd)
    assert second.try_claim() is not None and opened == ["a", "b"]
    assert oct((tmp_path / "audit.db.drainer.lock").stat().st_mode & 0o777) == "0o600"


def test_a_worker_that_is_not_the_drainer_leaves_events_for_the_one_that_is(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sink = MemorySink()
    other = FleetService(make_sessionmaker(engine), None, drainer=False)  # a second worker
    drainer = FleetService(make_sessionmaker(engine), sink)
    other.add_device("d1", model="pump", actor="w2")
    assert other.store.outbox_size() == 1 and sink.events == []
    drainer.add_device("d2", model="pump", actor="w1")  # the drainer appends everything committed, in order
    assert [e.actor for e in sink.events] == ["w2", "w1"] and drainer.store.outbox_size() == 0


def test_the_server_appends_the_outbox_from_a_thread_of_its_own(db_url: str) -> None:
    """``ota serve``: a request waits only for its commit (its events are in the outbox then); a thread of the
    drainer appends them, and stopping it appends whatever is still committed."""
    import time

    engine = make_engine(db_url)
    migrate(engine)
    sink = _FlakySink()
    svc = FleetService(make_sessionmaker(engine), sink)
    svc.append_in_background()
    try:
        svc.add_device("d1", model="pump", actor="t")  # returns although the log is away: the event waits
        assert svc.store.outbox_size() == 1 and sink.events == []
        sink.up = True
        svc.add_device("d2", model="pump", actor="t")
        deadline = time.monotonic() + 30  # (bounded wait for the thread, not a timing assertion)
        while len(sink.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e.actor for e in sink.events] == ["t", "t"]
        assert [e.objects["device"] for e in sink.events] == ["d1", "d2"]  # in commit order
        sink.up = False
        svc.add_device("d3", model="pump", actor="t")
        sink.up = True
    finally:
        svc.stop_appending()  # appends what is left
    assert [e.objects["device"] for e in sink.events] == ["d1", "d2", "d3"] and svc.store.outbox_size() == 0
