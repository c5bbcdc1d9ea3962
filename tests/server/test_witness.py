"""The fleet server as audit-log witness: it keeps the latest checkpoint per log id and accepts only a
consistency-proven extension signed by the key its first checkpoint pinned."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from medfw.audit import AuditEvent, init_log
from medfw.audit.checkpoint import sign_checkpoint
from medfw.audit.keys import generate_checkpoint_key
from medfw.audit.log import append_session, checkpoint
from medfw.audit.sink import MemorySink
from medfw.audit.witness import WITNESS_API, fetch_witness, post_checkpoint
from medfw.cli import main
from medfw.errors import PolicyViolationError, VerificationError
from medfw.server.app import create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService

from .conftest import Api


def _grow(log: Path, tag: str, n: int) -> None:
    for i in range(n):
        append_session(log, [AuditEvent(type="boot.verify", outcome="success", actor=tag, data={"i": i})])


@pytest.fixture
def device_log(tmp_path: Path) -> Path:
    log = tmp_path / "dev.db"
    init_log(log, log_id="pump-0042", key_out=tmp_path / "dev.vkey")
    _grow(log, "a", 4)
    return log


def test_witness_accepts_extensions_and_refuses_rollback_fork_and_other_keys(
    api: Api, device_log: Path, tmp_path: Path
) -> None:
    url = "http://testserver" + WITNESS_API + "pump-0042"
    op, ro = api.tokens["operator"], api.tokens["read-only"]
    assert api.client.get(url, headers=api.h("read-only")).status_code == 404
    snap = tmp_path / "snap.db"
    shutil.copyfile(device_log, snap)
    first = checkpoint(device_log)
    assert post_checkpoint(device_log, "http://testserver", first, token=op, client=api.client)["previous_size"] is None
    _grow(device_log, "a", 3)
    second = checkpoint(device_log)
    answer = post_checkpoint(device_log, "http://testserver", second, token=op, client=api.client)
    assert (answer["size"], answer["previous_size"]) == (second.checkpoint.size, first.checkpoint.size)
    held = fetch_witness(url, token=ro, client=api.client)
    assert held is not None and held.checkpoint == second.checkpoint
    # rollback: an older checkpoint
    r = api.client.post(url, json={"checkpoint": first.to_dict(), "consistency": []}, headers=api.h("operator"))
    assert r.status_code == 409 and "older" in r.json()["detail"]
    # fork: the same size, grown differently from an earlier copy
    _grow(snap, "b", 4)
    fork = checkpoint(snap)
    assert fork.checkpoint.size == second.checkpoint.size and fork.checkpoint.root != second.checkpoint.root
    with pytest.raises(VerificationError, match="fork"):
        post_checkpoint(snap, "http://testserver", fork, token=op, client=api.client)
    # a bigger fork: the proof from the held checkpoint cannot exist
    _grow(snap, "b", 3)
    bigger = checkpoint(snap)
    with pytest.raises(VerificationError, match="refused"):
        post_checkpoint(snap, "http://testserver", bigger, token=op, client=api.client)
    # a checkpoint of the genuine log re-signed with another key
    _grow(device_log, "a", 1)
    resigned = sign_checkpoint(checkpoint(device_log).checkpoint, generate_checkpoint_key())
    with pytest.raises(VerificationError):
        post_checkpoint(device_log, "http://testserver", resigned, token=op, client=api.client)
    held = fetch_witness(url, token=ro, client=api.client)
    assert held is not None and held.checkpoint == second.checkpoint  # nothing refused replaced it
    refused = [e for e in api.sink.events if e.type == "audit.checkpoint" and e.outcome == "denied"]
    assert len(refused) == 4 and all(e.objects["log_id"] == "pump-0042" for e in refused)


def test_witness_auth_and_bad_input(api: Api, device_log: Path) -> None:
    url = WITNESS_API + "pump-0042"
    cp = checkpoint(device_log)
    assert api.client.get(url).status_code == 401
    with pytest.raises(PolicyViolationError):
        post_checkpoint(device_log, "http://testserver", cp, token=api.tokens["read-only"], client=api.client)
    for body in ([1], {"checkpoint": {"x": 1}}, {"checkpoint": cp.to_dict(), "consistency": ["zz"]}):
        r = api.client.post(url, json=body, headers=api.h("operator"))
        assert r.status_code == 422, (body, r.text)
    r = api.client.post(WITNESS_API + "other-log", json={"checkpoint": cp.to_dict()}, headers=api.h("operator"))
    assert r.status_code == 422 and "not 'other-log'" in r.text
    assert api.client.get(WITNESS_API + "bad%0Aid", headers=api.h("read-only")).status_code == 422


@pytest.fixture
def live(api: Api) -> Iterator[str]:
    """The same app served by uvicorn on 127.0.0.1 (a real HTTP peer for the CLI)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(api.service, api.repo, maintenance_interval=3600)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_cli_post_and_verify_against_the_server_witness(
    api: Api,
    live: str,
    device_log: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEDFW_OTA_TOKEN", api.tokens["operator"])
    vkey = tmp_path / "dev.vkey"
    snap = tmp_path / "snap.db"
    shutil.copyfile(device_log, snap)
    assert main(["audit", "checkpoint", str(device_log), "--post", live, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["result"]
    assert out["witness"]["log_id"] == "pump-0042"
    assert main(["audit", "verify", str(device_log), "--key", str(vkey), "--witness", live, "--json"]) == 0
    capsys.readouterr()
    shutil.copyfile(snap, device_log)  # rolled back below the witnessed checkpoint
    assert main(["audit", "verify", str(device_log), "--key", str(vkey), "--witness", live, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)["result"]
    assert out["classification"] == "truncated" and out["first_bad_seq"] == 5
    # and the witness refuses the rolled-back log's next checkpoint
    assert main(["audit", "checkpoint", str(device_log), "--post", live, "--json"]) == 1
    err = json.loads(capsys.readouterr().out)["error"]
    assert "truncated or rolled back" in err["message"] or "refused" in err["message"]


def test_witness_events_go_through_the_outbox_of_a_worker_that_is_not_the_drainer(
    db_url: str, device_log: Path
) -> None:
    """With several workers only one appends the audit log: a witness post on another worker commits its event
    (accepted or refused) in the outbox with the change, and the drainer appends it."""
    engine = make_engine(db_url)
    migrate(engine)
    sink = MemorySink()
    worker = FleetService(make_sessionmaker(engine), None, drainer=False)  # like a second worker of --workers 2
    drainer = FleetService(make_sessionmaker(engine), sink)
    token = worker.create_token("op", Role.OPERATOR)
    drainer.drain_outbox()
    sink.events.clear()
    first = checkpoint(device_log)
    with TestClient(create_app(worker, maintenance_interval=3600)) as client:
        post_checkpoint(device_log, "http://testserver", first, token=token, client=client)
        assert worker.store.outbox_size() == 1 and sink.events == []  # committed, not yet appended
        r = client.post(
            WITNESS_API + "pump-0042",
            json={"checkpoint": sign_checkpoint(first.checkpoint, generate_checkpoint_key()).to_dict()},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 409
    assert drainer.drain_outbox() == 2 and worker.store.outbox_size() == 0
    assert [(e.type, e.outcome) for e in sink.events] == [
        ("audit.checkpoint", "success"),
        ("audit.checkpoint", "denied"),
    ]
    assert all(e.data["outbox_id"] for e in sink.events)
    engine.dispose()
