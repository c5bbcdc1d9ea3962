"""The refused-authentication rate limit holds in the sum over server processes sharing one database (two app
instances, each with its own engine, like two workers), on SQLite and on PostgreSQL."""

from __future__ import annotations

import warnings

from sqlalchemy import func, insert, select

from medfw.server.app import create_app
from medfw.server.auditing import RefusalLimiter
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.ratelimit import RefusalCount, SharedLimiter
from medfw.server.service import FleetService

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

LIMIT = 6
WRONG = {"Authorization": "Device ghost:" + "A" * 43}


def _worker(db_url: str, *, shared: bool = True) -> tuple[FleetService, TestClient, TestClient]:
    """A server process: its own engine and service; a client from the attacker and one from elsewhere."""
    service = FleetService(make_sessionmaker(make_engine(db_url)), refusal_limit=LIMIT, shared_limit=shared)
    app = create_app(service, maintenance_interval=3600)
    # no lifespan: the test syncs the shared counters itself instead of the background thread
    return service, TestClient(app, client=("10.6.6.6", 4000)), TestClient(app, client=("10.1.1.1", 4000))


def _sync(*services: FleetService) -> None:
    for s in services:
        assert isinstance(s.limiter, SharedLimiter)
        s.limiter.sync()


def test_the_limit_holds_in_sum_over_two_processes(db_url: str) -> None:
    migrate(make_engine(db_url))
    a, attacker_a, other_a = _worker(db_url)
    b, attacker_b, other_b = _worker(db_url)
    good = {"Authorization": "Device " + a.add_device("pump-1", model="pump", actor="t")}
    for client in (attacker_a, attacker_b):
        for _ in range(LIMIT // 2):
            assert client.get("/api/v1/devices/ghost/poll", headers=WRONG).status_code == 401
    assert a.limiter.blocked("ip:10.6.6.6") is None  # each process alone is under the limit
    _sync(a, b, a)
    for client in (attacker_a, attacker_b):
        r = client.get("/api/v1/devices/ghost/poll", headers=WRONG)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 120
        assert client.get("/api/v1/devices/pump-1/poll", headers=good).status_code == 429  # the source is blocked
    # other sources and devices are unaffected
    for client in (other_a, other_b):
        assert client.get("/api/v1/devices/pump-1/poll", headers=good).status_code == 200


def test_without_sharing_each_process_allows_the_whole_limit(db_url: str) -> None:
    """The control: per-process counting lets two processes accept twice the limit."""
    migrate(make_engine(db_url))
    (_, attacker_a, _), (_, attacker_b, _) = _worker(db_url, shared=False), _worker(db_url, shared=False)
    codes = [c.get("/api/v1/devices/ghost/poll", headers=WRONG).status_code for c in (attacker_a, attacker_b)]
    for _ in range(LIMIT - 1):
        codes += [c.get("/api/v1/devices/ghost/poll", headers=WRONG).status_code for c in (attacker_a, attacker_b)]
    assert codes.count(401) == 2 * LIMIT


def test_postgresql_shares_by_default_and_sqlite_counts_in_process(db_url: str) -> None:
    service = FleetService(make_sessionmaker(make_engine(db_url)))
    shared = isinstance(service.limiter, SharedLimiter)
    assert shared == db_url.startswith("postgresql") and isinstance(service.limiter, RefusalLimiter)


def test_the_shared_count_decays_and_old_intervals_are_deleted(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    limiter = SharedLimiter(engine, limit=2, window=3600)
    limiter.refused("ip:x")
    limiter.refused("ip:x", "device:y")
    limiter.sync()
    assert limiter.blocked("ip:x") is not None and limiter.blocked("device:y") is None
    other = SharedLimiter(engine, limit=2, window=3600)  # another process
    assert other.blocked("ip:x") is None
    other.sync()
    wait = other.blocked("ip:x")
    assert wait is not None and wait <= 2 * 3600
    # a long-past interval is gone after the next sync
    with engine.begin() as conn:
        conn.execute(insert(RefusalCount).values(key="ip:old", bucket=1, count=99))
    fresh = SharedLimiter(engine, limit=2, window=3600)
    fresh.sync()
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RefusalCount).where(RefusalCount.bucket == 1)) == 0
    assert fresh.blocked("ip:old") is None


def test_no_limit_writes_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    limiter = SharedLimiter(engine, limit=0)
    limiter.refused("ip:x")
    limiter.sync()
    assert limiter.blocked("ip:x") is None
