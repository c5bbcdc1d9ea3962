"""Fixtures of the server tests: the same API suite runs on SQLite and on PostgreSQL.

PostgreSQL: ``$MEDFW_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``); each test module gets its
own database (``medfw_ota_<random>``), each test its own schema, so parallel workers never share tables.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import Engine

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.server.app import OnlineKeys, create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _signer() -> MedfwTufSigner:
    return MedfwTufSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    name = f"medfw_ota_{uuid.uuid4().hex[:12]}"
    base = PG.replace("postgresql://", "", 1)
    conninfo = "postgresql://" + base
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _db = PG.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    database: str = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{database}?options=-csearch_path%3D{schema}"


@dataclass
class Api:
    client: TestClient
    service: FleetService
    sink: MemorySink
    repo: TufRepository
    tokens: dict[str, str]
    release: ReleaseInfo

    def h(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def device(self, device_id: str, *, model: str = "pump", group: str = "default") -> dict[str, str]:
        r = self.client.post(
            "/api/v1/devices", json={"id": device_id, "model": model, "group": group}, headers=self.h("operator")
        )
        assert r.status_code == 201, r.text
        return {"Authorization": f"Device {r.json()['credential']}"}


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    root, targets = _signer(), _signer()
    online = OnlineKeys(_signer(), _signer())
    repo = TufRepository.init(
        tmp_path / "repo",
        root_signers=[root],
        targets_signers=[targets],
        snapshot_signer=online.snapshot,
        timestamp_signer=online.timestamp,
    )
    release = repo.publish(
        bytes(range(256)) * 40,
        ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 0, ""),
        targets_signers=[targets],
    )
    repo.sign_online(online.snapshot, online.timestamp)
    engine = make_engine(db_url)
    migrate(engine)
    sink = MemorySink()
    service = FleetService(make_sessionmaker(engine), sink, trust=TrustConfig(allow_shared_secret=True))
    tokens = {r.value: service.create_token(r.value, r) for r in Role}
    sink.events.clear()
    with TestClient(create_app(service, repo, online_keys=online, maintenance_interval=3600)) as client:
        yield Api(client, service, sink, repo, tokens, release)
    engine.dispose()


@contextlib.contextmanager
def database_down(engine: Engine, db_url: str) -> Iterator[None]:
    """Make the fleet database unreachable for new connections (and drop the open ones) on either backend."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        engine.dispose()
        moved = path.with_name("away")
        moved.mkdir()
        for f in path.parent.glob(path.name + "*"):
            f.rename(moved / f.name)
        path.mkdir()  # a directory where the database file was: every new connection fails
        try:
            yield
        finally:
            path.rmdir()
            for f in moved.iterdir():
                f.rename(path.parent / f.name)
        return
    database = db_url.split("?", maxsplit=1)[0].rpartition("/")[2]
    admin = PG.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
