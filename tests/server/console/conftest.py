"""Fixtures of the console tests: the fleet server app with its console, tokens of each role, an audit log."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medfw.audit import init_log, open_log
from medfw.server.app import create_app
from medfw.server.console import Console, attach_console
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.update.repository import ReleaseInfo, TufRepository
from server.conftest import _signer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Site:
    client: TestClient
    service: FleetService
    console: Console
    tokens: dict[str, str]
    audit_log: Path
    release_id: int

    def csrf(self, path: str = "/") -> str:
        r = self.client.get(path)
        m = CSRF_RE.search(r.text)
        assert m is not None, r.text[:500]
        return m.group(1)

    def sign_in(self, role: str = "admin", next_path: str = "/") -> None:
        self.client.cookies.clear()
        token = self.csrf("/login")
        r = self.client.post(
            "/login", data={"token": self.tokens[role], "csrf": token, "next": next_path}, follow_redirects=False
        )
        assert r.status_code == 303, r.text


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[Site]:
    root, targets, snap, ts = _signer(), _signer(), _signer(), _signer()
    repo = TufRepository.init(
        tmp_path / "repo", root_signers=[root], targets_signers=[targets], snapshot_signer=snap, timestamp_signer=ts
    )
    repo.publish(
        bytes(range(256)) * 40,
        ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 0, ""),
        targets_signers=[targets],
    )
    repo.sign_online(snap, ts)
    log = tmp_path / "server-audit.db"
    init_log(log, key_out=tmp_path / "server-audit.key")
    engine = make_engine(db_url)
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), open_log(log))
    tokens = {r.value: service.create_token(r.value, r) for r in Role}
    app = create_app(service, repo, maintenance_interval=3600)
    console = attach_console(app, service, audit_log=str(log))
    console.aggregate_ttl = 0  # every page load counts afresh
    with TestClient(app, base_url="http://testserver") as client:
        release_id = service.releases()[0].id
        yield Site(client, service, console, tokens, log, release_id)
    engine.dispose()
