"""kill -9 of the server during a 200-device rollout: afterwards every committed report has its audit entry and
the log verifies (finding 9). SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from medfw.audit import init_log, verify_log
from medfw.audit.query import list_entries
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.models import Report
from medfw.server.service import FleetService
from medfw.update.repository import ReleaseInfo

N = 200
STEPS = ("downloading", "installed", "booted", "confirmed")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(db: str, log: Path, port: int, err: Path) -> subprocess.Popen[bytes]:
    argv = ["ota", "serve", "--db", db, "--audit-log", str(log), "--port", str(port)]
    with err.open("ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from medfw.cli import run; run()", *argv],
            stdout=subprocess.DEVNULL,
            stderr=fh,
        )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            assert proc.poll() is None, err.read_text()
            time.sleep(0.05)
    raise AssertionError("server did not start")


def test_kill_9_during_a_rollout_loses_no_audit_entry(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    setup = FleetService(make_sessionmaker(engine))
    ids = [f"pump-{i:03d}" for i in range(N)]
    creds = dict(zip(ids, setup.add_devices([(i, "pump", "esp32c3") for i in ids], actor="t"), strict=True))
    setup.sync_releases([ReleaseInfo("pump/p-1.1.bin", "pump", "", "esp-app", "1.1.0", 1, 10, "ab" * 32)], actor="t")
    rollout = setup.create_rollout(release=1, phases=["100%"], success_threshold=100, actor="t").id
    engine.dispose()
    log, key = tmp_path / "audit.db", tmp_path / "audit.key"
    init_log(log, key_out=key)
    port, err = _port(), tmp_path / "server.log"
    server = _serve(db_url, log, port, err)
    sent = Counter[str]()
    stop = threading.Event()

    def devices(chunk: list[str]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
            for status in STEPS:
                for d in chunk:
                    if stop.is_set():
                        return
                    body = {"status": status, "rollout": rollout, "version": "1.1.0"}
                    try:
                        c.post(
                            f"/api/v1/devices/{d}/reports", json=body, headers={"Authorization": f"Device {creds[d]}"}
                        )
                    except httpx.HTTPError:
                        return
                    sent["n"] += 1

    threads = [threading.Thread(target=devices, args=(ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while sent["n"] < 150 and any(t.is_alive() for t in threads):
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)  # mid-rollout, mid-request
    server.wait(timeout=30)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    restarted = _serve(db_url, log, port, err)  # the start-up pass drains what the killed process committed
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(timeout=60)

    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        committed = Counter((r.device_id, r.status) for r in s.scalars(select(Report)))
    engine.dispose()
    audited = Counter(
        (e.body["objects"]["device"], e.body["data"]["status"])
        for e in list_entries(log, type_="ota.report")
        if e.body.get("outcome") != "denied"
    )
    assert sum(committed.values()) >= 100, (committed, err.read_text()[-2000:])
    missing = committed - audited
    assert not missing, f"{sum(missing.values())} committed reports have no audit entry: {list(missing)[:5]}"
    report = verify_log(log, key.read_bytes())
    assert report.ok, report.message


pytestmark = pytest.mark.slow
