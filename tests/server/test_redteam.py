"""Regressions of the red-team findings against the fleet server, each on SQLite and on PostgreSQL.

Every case asserts the documented status and that other devices are unaffected.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import func, select

from medfw.server.app import create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.errors import Conflict
from medfw.server.models import ApiToken, Assignment, Report, Rollout
from medfw.server.rollout import ACTIVE_STATES
from medfw.server.service import FleetService
from medfw.update.repository import ReleaseInfo

from .conftest import PG, Api, database_down

BIG = [2**31, 2**63, 2**64 + 5]


def _count(api: Api, q: Any) -> int:
    with api.service.sessions() as s:
        return int(s.scalar(q) or 0)


def test_one_device_cannot_poison_another_devices_poll_data_or_reports(api: Api) -> None:
    """Finding 1: ``?version=x%00`` poisoned the batched poll write; another device's reports then got 500."""
    evil, good = api.device("evil"), api.device("good")
    for bad in ("x\x00", "a b", "x" * 65, "\u00e9"):
        r = api.client.get("/api/v1/devices/evil/poll", params={"version": bad}, headers=evil)
        assert r.status_code == 422 and "version" in r.json()["detail"], (bad, r.text)
    r = api.client.get("/api/v1/devices/evil/poll", params={"slot": "ota\x00"}, headers=evil)
    assert r.status_code == 422 and "slot" in r.json()["detail"]
    assert api.client.get("/api/v1/devices/good/poll", params={"version": "1.0.0"}, headers=good).status_code == 200
    for i in range(20):
        body = {"status": "downloading", "detail": f"step {i}"}
        assert api.client.post("/api/v1/devices/good/reports", json=body, headers=good).status_code == 200
    (row,) = [d for d in api.service.device_rows() if d.id == "good"]
    assert row.version == "1.0.0" and row.last_seen is not None


def test_a_row_the_database_refuses_costs_no_other_device_its_poll_data(api: Api) -> None:
    """Below the edge too: a value the database refuses (NUL on PostgreSQL) only loses that device's row."""
    api.device("a")
    api.device("b")
    api.service.poll_cached("a", version="x\x00" * 40, secure_version=1, slot="ota_0")  # bypasses the edge
    api.service.poll_cached("b", version="2.0.0", secure_version=1, slot="ota_1")
    api.service.flush_seen()
    rows = {d.id: d for d in api.service.device_rows()}
    assert (rows["b"].version, rows["b"].slot) == ("2.0.0", "ota_1")


@pytest.mark.parametrize("big", BIG)
def test_out_of_range_integers_are_422_naming_the_field(api: Api, big: int) -> None:
    """Finding 4: integers ≥ 2^31 / 2^63 in ids, ``release`` and a report's ``rollout`` gave 500."""
    dev = api.device("pump-1")
    op = api.h("operator")
    r = api.client.get(f"/api/v1/rollouts/{big}", headers=api.h("read-only"))
    assert r.status_code == 422 and "rollout_id" in r.json()["detail"]
    r = api.client.post(f"/api/v1/rollouts/{big}/pause", headers=op)
    assert r.status_code == 422 and "rollout_id" in r.json()["detail"]
    r = api.client.post("/api/v1/rollouts", json={"release": big}, headers=op)
    assert r.status_code == 422 and "release" in r.json()["detail"]
    r = api.client.post("/api/v1/devices/pump-1/reports", json={"status": "confirmed", "rollout": big}, headers=dev)
    assert r.status_code == 422 and "rollout" in r.json()["detail"]
    r = api.client.get("/api/v1/devices/pump-1/poll", params={"secure_version": str(big)}, headers=dev)
    assert r.status_code == 422 and "secure_version" in r.json()["detail"]
    assert _count(api, select(func.count()).select_from(Report)) == 0


def test_nul_bytes_and_long_names_are_refused_not_500(api: Api) -> None:
    """Finding 4: NUL in report fields, query parameters and device ids (PostgreSQL); long or NUL target names."""
    dev = api.device("pump-1")
    for field in ("reason", "detail", "version", "slot"):
        body = {"status": "rejected", "reason": "hash_mismatch", field: "a\x00b"}
        r = api.client.post("/api/v1/devices/pump-1/reports", json=body, headers=dev)
        assert r.status_code == 422 and field in r.json()["detail"], (field, r.text)
    reader = api.h("read-only")
    for path, params in (
        ("/api/v1/devices", {"group": "a\x00"}),
        ("/api/v1/devices", {"model": "a\x00"}),
        ("/api/v1/reports", {"device": "a\x00"}),
    ):
        r = api.client.get(path, params=params, headers=reader)
        assert r.status_code == 422, (path, params, r.text)
    assert api.client.delete("/api/v1/devices/a%00b", headers=api.h("admin")).status_code == 422
    assert api.client.get("/api/v1/devices/a%00b/poll", headers=dev).status_code in (403, 422)
    r = api.client.post("/api/v1/devices", json={"id": "a\x00b", "model": "pump"}, headers=api.h("operator"))
    assert r.status_code == 422 and "id" in r.json()["detail"]
    r = api.client.post("/api/v1/rollouts", json={"release": 1, "name": "n\x00"}, headers=api.h("operator"))
    assert r.status_code == 422 and "name" in r.json()["detail"]
    assert api.client.get("/tuf/targets/a%00b").status_code == 404
    assert api.client.get("/tuf/targets/" + "a" * 600).status_code == 404
    assert api.client.get("/tuf/metadata/" + "1" * 600 + ".root.json").status_code == 404
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=dev).status_code == 200


def _race(n: int, call: Callable[[int], object]) -> tuple[list[object], list[BaseException]]:
    barrier = threading.Barrier(n)
    results: list[object] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            out = call(i)
            with lock:
                results.append(out)
        except BaseException as e:
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


def test_concurrent_rollout_creation_puts_each_device_in_one_rollout(api: Api) -> None:
    """Finding 3: concurrent creation put the same devices in 4-9 active rollouts."""
    for i in range(6):
        api.device(f"pump-{i}")
    results, errors = _race(
        6, lambda i: api.service.create_rollout(release=1, phases=["100%"], name=f"r{i}", actor="t")
    )
    assert len(results) == 1 and len(errors) == 5 and all(isinstance(e, Conflict) for e in errors), errors
    assert _max_active_per_device(api) == 1 and _count(api, select(func.count()).select_from(Rollout)) == 1


def _max_active_per_device(api: Api) -> int:
    with api.service.sessions() as s:
        rows = s.execute(
            select(Assignment.device_id, func.count())
            .join(Rollout, Rollout.id == Assignment.rollout_id)
            .where(Assignment.state.in_(sorted(ACTIVE_STATES)), Rollout.state == "running")
            .group_by(Assignment.device_id)
        ).all()
    return max((n for _, n in rows), default=0)


def test_concurrent_token_creation_with_one_name_is_one_201_and_409s(api: Api) -> None:
    """Finding 3: ten simultaneous token creations with one name gave eight 500s."""
    results, errors = _race(10, lambda _i: api.service.create_token("same", Role.OPERATOR, actor="t"))
    assert len(results) == 1 and all(isinstance(e, Conflict) for e in errors) and len(errors) == 9, errors
    assert _count(api, select(func.count()).select_from(ApiToken).where(ApiToken.name == "same")) == 1
    r = api.client.post("/api/v1/tokens", json={"name": "same", "role": "admin"}, headers=api.h("admin"))
    assert r.status_code == 409


def test_resume_after_an_automatic_pause_continues(api: Api) -> None:
    """Finding 10: ``resume`` after an automatic pause answered 200 and did nothing (paused again at once)."""
    devs = {f"pump-{i}": api.device(f"pump-{i}") for i in range(4)}
    op = api.h("operator")
    ro = api.client.post(
        "/api/v1/rollouts",
        json={"release": 1, "phases": ["100%"], "error_threshold": 25, "success_threshold": 50},
        headers=op,
    ).json()
    body = {"status": "rejected", "reason": "hash_mismatch", "rollout": ro["id"]}
    api.client.post("/api/v1/devices/pump-0/reports", json=body, headers=devs["pump-0"])
    assert api.client.get(f"/api/v1/rollouts/{ro['id']}", headers=op).json()["state"] == "paused"
    r = api.client.post(f"/api/v1/rollouts/{ro['id']}/resume", headers=op)
    assert r.status_code == 200 and r.json()["state"] == "running", r.json()
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=devs["pump-1"]).json()["assignment"] is not None
    for d in ("pump-1", "pump-2"):
        body = {"status": "confirmed", "rollout": ro["id"], "version": "1.1.0"}
        assert api.client.post(f"/api/v1/devices/{d}/reports", json=body, headers=devs[d]).status_code == 200
    assert api.client.get(f"/api/v1/rollouts/{ro['id']}", headers=op).json()["state"] == "running"
    # a new failure counts again: 1 of the 3 devices still considered is over 25 %
    body = {"status": "rejected", "reason": "hash_mismatch", "rollout": ro["id"]}
    api.client.post("/api/v1/devices/pump-3/reports", json=body, headers=devs["pump-3"])
    assert api.client.get(f"/api/v1/rollouts/{ro['id']}", headers=op).json()["state"] == "paused"
    resumes = [e for e in api.sink.of_type("rollout.change") if e.data.get("action") == "resume"]
    assert resumes[0].data["acknowledged_failures"] == 1


def test_rollout_over_the_bind_parameter_limit(api: Api) -> None:
    """Finding 10: a rollout over 65,535 devices failed on PostgreSQL (bind-parameter limit)."""
    n = 66_000
    api.service.add_devices([(f"d{i:06d}", "pump", "esp32c3") for i in range(n)], actor="t")
    ro = api.service.create_rollout(release=1, phases=["1%", "100%"], actor="t")
    assert sum(sum(p.counts.values()) for p in ro.phases) == n
    with pytest.raises(Conflict):
        api.service.create_rollout(release=1, devices=[f"d{i:06d}" for i in range(0, n, 2)], actor="t")


def test_database_outage_is_503_with_retry_after_and_readyz_says_so(api: Api, db_url: str) -> None:
    """Finding 10: a database outage answered 500 while /healthz stayed 200; there was no readiness probe."""
    dev = api.device("pump-1")
    assert api.client.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok", "repository": "ok"}}
    with database_down(api.service.store.engine, db_url):
        time.sleep(api.service.cache.check_every)  # let the poll cache look at the database again
        for method, path, kwargs in (
            ("GET", "/api/v1/devices", {"headers": api.h("read-only")}),
            ("POST", "/api/v1/devices/pump-1/reports", {"headers": dev, "json": {"status": "downloading"}}),
            ("GET", "/api/v1/devices/pump-1/poll", {"headers": dev, "params": {"version": "9.9"}}),
        ):
            r = api.client.request(method, path, **kwargs)
            assert r.status_code == 503 and r.headers["retry-after"], (path, r.status_code, r.text)
            assert "Traceback" not in r.text
        ready = api.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("unavailable")
        assert api.client.get("/healthz").status_code == 200
    assert api.client.get("/api/v1/devices", headers=api.h("read-only")).status_code == 200
    assert api.client.get("/readyz").status_code == 200


@contextlib.contextmanager
def _write_lock(db_url: str) -> Iterator[Callable[[], bool]]:
    """Another writer holds the lock a poll's write needs; yields "is a request waiting for it?"."""
    if db_url.startswith("sqlite"):
        holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        try:
            yield lambda: True  # the watched transaction below tells when the poll waits
        finally:
            holder.execute("COMMIT")
            holder.close()
        return
    database = db_url.split("?", maxsplit=1)[0].rpartition("/")[2]
    with psycopg.connect(db_url) as holder, psycopg.connect(PG, autocommit=True) as watcher:
        holder.execute("LOCK TABLE assignments IN EXCLUSIVE MODE")  # reads go on, writes wait

        def waiting() -> bool:
            q = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            row = watcher.execute(q, (database,)).fetchone()
            return bool(row and row[0])

        yield waiting
        holder.commit()


def test_a_poll_waiting_for_a_write_lock_does_not_stall_the_event_loop(db_url: str) -> None:
    """Finding 7: on SQLite one poll waiting for the write lock stalled the event loop (/healthz took 9.76 s); on
    PostgreSQL the same holds for a poll waiting for a lock another transaction holds."""
    engine = make_engine(db_url)
    migrate(engine)
    svc = FleetService(make_sessionmaker(engine))
    cred = svc.add_device("pump-1", model="pump", actor="t")
    svc.sync_releases([ReleaseInfo("pump/p-1.1.0.bin", "pump", "", "esp-app", "1.1.0", 1, 10, "ab" * 32)], actor="t")
    svc.create_rollout(release=1, phases=["100%"], actor="t")
    entered = threading.Event()
    exited: list[bool] = []
    transaction = svc.store.transaction

    @contextlib.contextmanager
    def watched() -> Iterator[Any]:
        entered.set()
        try:
            with transaction() as s:
                yield s
        finally:
            exited.append(True)

    svc.store.transaction = watched  # type: ignore[method-assign]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(svc, maintenance_interval=3600), port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.01)
    answers: list[int] = []
    # reporting the assigned version makes the poll write (pending -> confirmed, already installed)
    poller = threading.Thread(
        target=lambda: answers.append(
            httpx.get(
                f"{base}/api/v1/devices/pump-1/poll",
                params={"version": "1.1.0"},
                headers={"Authorization": f"Device {cred}"},
                timeout=60,
            ).status_code
        )
    )
    try:
        with _write_lock(db_url) as waiting:
            poller.start()
            assert entered.wait(30)
            while not waiting():  # bounded by the poll's own timeout: it waits for the lock or has answered
                assert poller.is_alive()
                time.sleep(0.01)
            assert httpx.get(f"{base}/healthz", timeout=60).status_code == 200
            assert exited == []  # /healthz answered while the poll's transaction still waits for the lock
    finally:
        poller.join(timeout=60)
        server.should_exit = True
    assert answers == [200]
    engine.dispose()
