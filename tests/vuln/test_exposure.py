"""Exposure across the fleet, against a real OTA server (uvicorn on 127.0.0.1) on SQLite and on PostgreSQL.

A small simulated fleet of model ``pump``: release 1.0.0 (Mbed TLS 3.5.1) and release 1.1.0 (Mbed TLS 3.6.4),
both published with their SBOM reference; five devices, three running 1.0.0. CVE-2024-28755 affects Mbed TLS
3.5.1 only: exactly the three devices on 1.0.0 are exposed, and the count drops as a rollout of 1.1.0 confirms.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvicorn

from medfw.audit.sink import MemorySink
from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.server.app import OnlineKeys, create_app
from medfw.server.client import FleetClient
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner
from medfw.vuln.carryover import register_release
from medfw.vuln.exposure import exposure
from medfw.vuln.fleet_view import fleet_from_api, fleet_from_db
from medfw.vuln.index import VulnIndex

from .test_carryover import release_sbom

PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CVE = "CVE-2024-28755"


def _signer() -> MedfwTufSigner:
    return MedfwTufSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    name = f"medfw_exp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fleet_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    database: str = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{database}?options=-csearch_path%3D{schema}"


@dataclass
class Server:
    url: str
    db: str
    admin: str
    reader: str
    devices: dict[str, str]
    sboms: dict[str, bytes]

    def client(self, token: str | None = None) -> FleetClient:
        return FleetClient(self.url, token or self.admin)

    def report(self, device: str, version: str, *, rollout: int | None = None) -> None:
        body = {"status": "confirmed", "version": version, "secure_version": 1, "rollout": rollout}
        import httpx

        r = httpx.post(
            f"{self.url}/api/v1/devices/{device}/reports",
            json=body,
            headers={"Authorization": f"Device {self.devices[device]}"},
            timeout=30,
        )
        assert r.status_code < 300, r.text


def result(out: str) -> dict[str, Any]:
    """The ``result`` of a ``--json`` envelope."""
    doc = json.loads(out)
    assert doc["ok"] is True, doc
    value: dict[str, Any] = doc["result"]
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(fleet_db: str, tmp_path: Path) -> Iterator[Server]:
    targets, online = _signer(), OnlineKeys(_signer(), _signer())
    repo = TufRepository.init(
        tmp_path / "repo",
        root_signers=[_signer()],
        targets_signers=[targets],
        snapshot_signer=online.snapshot,
        timestamp_signer=online.timestamp,
    )
    sboms = {"1.0.0": release_sbom("3.5.1", fw_version="1.0.0"), "1.1.0": release_sbom("3.6.4", fw_version="1.1.0")}
    for version, sbom in sboms.items():
        ref = {"ref": f"pump-{version}.cdx.json", "sha256": hashlib.sha256(sbom).hexdigest()}
        info = ReleaseInfo(f"pump/pump-{version}.bin", "pump", "esp32c3", "esp-app", version, 1, 0, "", ref)
        repo.publish(bytes([len(version)]) * 4096, info, targets_signers=[targets])
    repo.sign_online(online.snapshot, online.timestamp)
    engine = make_engine(fleet_db)
    migrate(engine)
    # shared-secret simulator units: their confirmations count only when the server allows them
    service = FleetService(make_sessionmaker(engine), MemorySink(), trust=TrustConfig(allow_shared_secret=True))
    admin, reader = service.create_token("admin", Role.ADMIN), service.create_token("reader", Role.READ_ONLY)
    port = _free_port()
    app = create_app(service, repo, online_keys=online, maintenance_interval=3600)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    s = Server(f"http://127.0.0.1:{port}", fleet_db, admin, reader, {}, sboms)
    try:
        api = s.client()
        api.request("POST", "/api/v1/releases/sync")
        for i in range(5):
            created = api.request("POST", "/api/v1/devices", json={"id": f"pump-{i}", "model": "pump"})
            s.devices[f"pump-{i}"] = created["credential"]
        api.close()
        for i in range(5):
            s.report(f"pump-{i}", "1.0.0" if i < 3 else "1.1.0")
        yield s
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
        engine.dispose()


def test_exposure_counts_are_exact_and_drop_as_the_rollout_confirms(server: Server, full_index: VulnIndex) -> None:
    sink = MemorySink()
    register_release(full_index, server.sboms["1.0.0"], "pump-1.0.0.cdx.json", sink=sink)
    register_release(full_index, server.sboms["1.1.0"], "pump-1.1.0.cdx.json", sink=sink)

    (e,) = exposure(full_index, fleet_from_api(server.url, server.reader), CVE)
    assert [(r.release.version, r.devices) for r in e.releases] == [("1.0.0", ("pump-0", "pump-1", "pump-2"))]
    assert e.devices == 3
    assert [(f.release.version, f.rollout) for f in e.fixes] == [("1.1.0", None)]
    assert "3 device(s) of model pump" in e.alert() and "fixed in pump-1.1.0.bin (1.1.0), not rolled out" in e.alert()

    api = server.client()
    rollout = api.request(
        "POST",
        "/api/v1/rollouts",
        json={
            "release": "pump/pump-1.1.0.bin",
            "devices": ["pump-0", "pump-1", "pump-2"],
            "phases": ["1", "1", "100%"],
            "success_threshold": 100,
        },
    )
    api.close()
    server.report("pump-0", "1.1.0", rollout=rollout["id"])

    for view in (fleet_from_api(server.url, server.reader), fleet_from_db(server.db)):
        (e,) = exposure(full_index, view, CVE.lower())
        assert e.devices == 2 and e.releases[0].devices == ("pump-1", "pump-2")
        fix = e.fixes[0]
        assert fix.rollout is not None and fix.rollout.id == rollout["id"]
        # one of three confirmed: the first phase (one device) succeeded, the second is running
        assert f"rollout {rollout['id']} running at phase 2/3" in e.alert()

    # every open finding: the 1.1.0-only ones have no fix, and only Mbed TLS 3.5.1 ones are fixed by 1.1.0
    everything = {x.vuln_id: x for x in exposure(full_index, fleet_from_db(server.db))}
    assert everything[CVE].devices == 2
    expat = everything["CVE-2024-8176"]  # in both releases: all five devices exposed, no fix published
    assert expat.devices == 5 and not expat.fixes


def test_exposure_cli_over_api_and_db(
    server: Server, full_index: VulnIndex, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    db = str(tmp_path / "index.db")
    copy = Path(db)
    copy.write_bytes(Path(full_index.url).read_bytes())
    for version in ("1.0.0", "1.1.0"):
        path = tmp_path / f"pump-{version}.cdx.json"
        path.write_bytes(server.sboms[version])
        assert main(["vuln", "release", "add", str(path), "--db", db]) == 0
    capsys.readouterr()
    monkeypatch.setenv("MEDFW_OTA_TOKEN", server.reader)
    assert main(["vuln", "exposure", CVE, "--fleet", server.url, "--db", db, "--json"]) == 0
    out = result(capsys.readouterr().out)
    assert out["vulnerabilities"][0]["devices"] == 3
    assert out["vulnerabilities"][0]["releases"][0]["device_ids"] == ["pump-0", "pump-1", "pump-2"]
    token = tmp_path / "token"
    token.write_text(server.reader + "\n")
    token.chmod(0o644)
    monkeypatch.delenv("MEDFW_OTA_TOKEN")
    assert main(["vuln", "exposure", CVE, "--fleet", server.url, "--token-file", str(token), "--db", db]) == 0
    seen = capsys.readouterr()
    assert "pump 1.0.0 (3)" in seen.out and "readable by others" in seen.err
    assert main(["vuln", "exposure", "--fleet-db", server.db, "--db", db, "--json"]) == 0
    assert result(capsys.readouterr().out)["count"] >= 2
    # a refused token is exit 1, no token at all exit 2
    monkeypatch.setenv("MEDFW_OTA_TOKEN", "wrong")
    assert main(["vuln", "exposure", "--fleet", server.url, "--db", db]) == 1
    monkeypatch.delenv("MEDFW_OTA_TOKEN")
    assert main(["vuln", "exposure", "--fleet", server.url, "--db", db]) == 2


def _kev_catalog(path: Path) -> Path:
    """A KEV catalog in CISA's format listing CVE-2024-28755 — made up for this test (it is not in CISA KEV)."""
    path.write_text(
        json.dumps(
            {
                "title": "CISA Catalog of Known Exploited Vulnerabilities",
                "catalogVersion": "2026.11.30",
                "dateReleased": "2026-11-30T12:00:00.0000Z",
                "count": 1,
                "vulnerabilities": [
                    {
                        "cveID": CVE,
                        "vendorProject": "Arm",
                        "product": "Mbed TLS",
                        "vulnerabilityName": "test entry",
                        "dateAdded": "2026-11-30",
                        "shortDescription": "made up for a medfw test",
                        "requiredAction": "update",
                        "dueDate": "2026-12-21",
                        "knownRansomwareCampaignUse": "Unknown",
                        "notes": "",
                    }
                ],
            }
        )
    )
    return path


def test_rescan_alert_carries_the_exposure(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "index.db")
    vectors = Path(__file__).parent.parent / "vectors" / "vuln"
    assert main(["vuln", "feed", "import", "--kev", str(_kev_catalog(tmp_path / "kev.json")), "--db", db]) == 0
    for version in ("1.0.0", "1.1.0"):
        path = tmp_path / f"pump-{version}.cdx.json"
        path.write_bytes(server.sboms[version])
        assert main(["vuln", "release", "add", str(path), "--db", db]) == 0
    # the Mbed TLS records arrive after the releases were registered: the rescan finds them new
    assert main(["vuln", "feed", "import", "--nvd", str(vectors / "nvd" / "anchore-overrides"), "--db", db]) == 0
    capsys.readouterr()
    monkeypatch.setenv("MEDFW_OTA_TOKEN", server.reader)
    assert main(["vuln", "rescan", "--fleet", server.url, "--db", db]) == 1
    out = capsys.readouterr().out
    assert (
        f"alert: {CVE} is KEV: 3 device(s) of model pump run affected releases; fixed in pump-1.1.0.bin (1.1.0), "
        "not rolled out"
    ) in out
