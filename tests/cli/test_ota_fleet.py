"""Fleet CLI completeness: publish checks the image's own fields, reports, device remove/set-group, rollout reasons,
1-based phases, ``nothing_to_do`` and the secure_version warning, against a real server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.image.esp import build_app_image
from medfw.image.mcuboot_sign import sign_image as mcuboot_sign
from medfw.image.sbv2 import sign_image
from medfw.server.asgi import ServerSettings, build_app

from ._json import envelope


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit code, the envelope's result (``--json``) or stdout, and stderr plus any envelope error message."""
    code = main(list(argv))
    cap = capsys.readouterr()
    if "--json" not in argv:
        return code, cap.out, cap.err
    doc = envelope(cap.out)
    if "error" in doc:
        return code, doc["error"], cap.err + doc["error"]["message"]
    return code, doc["result"], cap.err


def _key(path: Path) -> str:
    write_private_key(generate_private_key(KeyType.ECDSA_P256), path)
    return str(path)


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    keys = {k: _key(tmp_path / "keys" / f"{k}.pem") for k in ("root", "targets", "boot")}
    path = str(tmp_path / "repo")
    argv = ["ota", "repo", "init", "--repo", path, "--root-key", keys["root"], "--targets-key", keys["targets"]]
    assert main(argv) == 0
    capsys.readouterr()
    return {"repo": path, **keys}


def _esp(repo: dict[str, str], tmp: Path, version: str, svn: int, chip: str = "esp32c6") -> str:
    image = build_app_image(chip=chip, version=version, secure_version=svn, size=8192)
    path = tmp / f"app-{version}-{svn}.bin"
    path.write_bytes(sign_image(image, [FileSigner.from_file(repo["boot"])]))
    return str(path)


def _publish(repo: dict[str, str], image: str, *extra: str) -> list[str]:
    base = ["ota", "release", "publish", "--repo", repo["repo"], "--image", image, "--model", "pump"]
    return [*base, "--targets-key", repo["targets"], "--json", *extra]


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (("--version", "1.3.0"), "version"),
        (("--secure-version", "3"), "secure_version"),
        (("--chip", "esp32s3"), "chip"),
    ],
)
def test_publish_refuses_flags_that_disagree_with_the_esp_image(
    repo: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, str], field: str
) -> None:
    image = _esp(repo, tmp_path, "1.2.0", 1)
    targets = Path(repo["repo"]) / "metadata" / "targets.json"
    before = targets.read_bytes()
    code, _, err = _run(capsys, *_publish(repo, image, *flags))
    assert code == 2
    assert field in err and flags[1] in err
    assert targets.read_bytes() == before  # nothing published
    code, out, _ = _run(capsys, *_publish(repo, image, "--version", "1.2.0", "--secure-version", "1"))
    assert code == 0 and (out["version"], out["secure_version"], out["chip"]) == ("1.2.0", 1, "esp32c6")


def test_publish_reads_and_checks_mcuboot_header_and_security_counter(
    repo: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = FileSigner.from_file(repo["boot"])
    image = tmp_path / "zephyr.signed.bin"
    image.write_bytes(
        mcuboot_sign(b"app" * 200, signer, version="2.1.0", header_size=32, pad_header=True, security_counter=5)
    )
    argv = _publish(repo, str(image), "--format", "mcuboot")
    code, _, err = _run(capsys, *argv, "--secure-version", "6")
    assert code == 2 and "secure_version 5" in err
    code, _, err = _run(capsys, *argv, "--version", "2.2.0")
    assert code == 2 and "version" in err
    code, out, _ = _run(capsys, *argv, "--version", "2.1.0", "--chip", "nrf52840")
    assert code == 0
    assert (out["version"], out["secure_version"], out["chip"], out["format"]) == ("2.1.0", 5, "nrf52840", "mcuboot")
    # a format medfw cannot read needs every field
    code, _, err = _run(capsys, *_publish(repo, str(image), "--format", "raw", "--name", "x.bin", "--version", "1"))
    assert code == 2 and "--secure-version" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(repo: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[dict[str, str]]:
    db = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    code, out, _ = _run(capsys, "ota", "token", "create", "--db", db, "--name", "ops", "--role", "admin", "--json")
    assert code == 0
    port = _free_port()
    # simulated units use shared-secret credentials: their reports count only when the server allows them
    app = build_app(ServerSettings(db=db, repo=repo["repo"], allow_shared_secret_devices=True))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    try:
        token_file = tmp_path / "ops.token"
        token_file.write_text(out["token"])
        token_file.chmod(0o600)
        yield {"url": f"http://127.0.0.1:{port}", "token": out["token"], "token_file": str(token_file)}
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def _device_reports(server: dict[str, str], device: str, credential: str, body: dict[str, Any]) -> None:
    import httpx

    r = httpx.post(
        f"{server['url']}/api/v1/devices/{device}/reports", json=body, headers={"Authorization": f"Device {credential}"}
    )
    assert r.status_code == 200, r.text


def test_reports_reasons_device_commands_and_phases(
    repo: dict[str, str], server: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = ["--server", server["url"], "--token-file", server["token_file"], "--json"]
    creds = {}
    for i in range(4):
        code, out, _ = _run(capsys, "ota", "device", "add", "--id", f"p{i}", "--model", "pump", *srv)
        creds[f"p{i}"] = out["credential"]
    assert _run(capsys, *_publish(repo, _esp(repo, tmp_path, "1.1.0", 2)))[0] == 0
    assert _run(capsys, "ota", "release", "list", "--sync", *srv)[0] == 0
    code, ro, _ = _run(
        capsys, "ota", "rollout", "create", "--release", "pump/pump-1.1.0.bin", "--phases", "1,100%", *srv
    )
    assert code == 0 and ro["current_phase"] == 1 and [p["phase"] for p in ro["phases"]] == [1, 2]
    for status in ("downloading", "installed", "booted", "confirmed"):
        _device_reports(server, "p0", creds["p0"], {"status": status, "rollout": ro["id"], "version": "1.1.0"})
    for dev in ("p1", "p2"):
        body = {"status": "rejected", "reason": "untrusted_key", "rollout": ro["id"]}
        _device_reports(server, dev, creds[dev], body)
    code, st, _ = _run(capsys, "ota", "rollout", "status", str(ro["id"]), *srv)
    assert st["current_phase"] == 2 and st["state"] == "paused"
    assert st["reasons"] == [{"state": "rejected", "reason": "untrusted_key", "devices": 2}]
    code, human, _ = _run(
        capsys,
        "ota",
        "rollout",
        "status",
        str(ro["id"]),
        "--server",
        server["url"],
        "--token-file",
        server["token_file"],
    )
    assert "untrusted_key" in human and "phase 2/2" in human

    code, rows, _ = _run(capsys, "ota", "reports", "--device", "p1", *srv)
    assert code == 0 and [(r["status"], r["reason"]) for r in rows] == [("rejected", "untrusted_key")]
    code, rows, _ = _run(capsys, "ota", "reports", "--rollout", str(ro["id"]), *srv)
    assert len(rows) == 6 and {r["device"] for r in rows} == {"p0", "p1", "p2"}
    code, rows, _ = _run(capsys, "ota", "reports", "--rollout", "999", *srv)
    assert code == 0 and rows == []

    code, row, _ = _run(capsys, "ota", "device", "set-group", "p3", "icu", *srv)
    assert code == 0 and row["group"] == "icu"
    code, _, err = _run(capsys, "ota", "device", "set-group", "nope", "icu", *srv)
    assert code == 2 and "no device nope" in err
    code, out, _ = _run(capsys, "ota", "device", "remove", "p3", *srv)
    assert code == 0 and out == {"id": "p3", "removed": True}
    code, rows, _ = _run(capsys, "ota", "device", "list", *srv)
    assert {d["id"]: d["active"] for d in rows}["p3"] is False


def test_nothing_to_do_and_secure_version_warning(
    repo: dict[str, str],
    server: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import httpx

    srv = ["--server", server["url"], "--token-file", server["token_file"], "--json"]
    code, out, _ = _run(capsys, "ota", "device", "add", "--id", "u1", "--model", "pump", *srv)
    cred = out["credential"]
    r = httpx.get(
        f"{server['url']}/api/v1/devices/u1/poll",
        params={"version": "2.0.0", "secure_version": 4},
        headers={"Authorization": f"Device {cred}"},
    )
    assert r.status_code == 200
    monkeypatch.setenv("MEDFW_OTA_SERVER", server["url"])
    monkeypatch.setenv("MEDFW_OTA_TOKEN", server["token"])
    code, out, err = _run(capsys, *_publish(repo, _esp(repo, tmp_path, "1.5.0", 3)))
    assert code == 0
    assert "secure_version 3 is below 4" in err and out["warnings"] == [err.split("warning: ", 1)[1].strip()]
    code, out, err = _run(capsys, *_publish(repo, _esp(repo, tmp_path, "2.1.0", 4)))
    assert code == 0 and out["warnings"] == [] and "warning" not in err

    assert _run(capsys, "ota", "release", "list", "--sync", *srv)[0] == 0
    code, ro, _ = _run(capsys, "ota", "rollout", "create", "--release", "pump/pump-1.5.0.bin", "--phases", "100%", *srv)
    assert code == 0 and ro["state"] == "nothing_to_do"
    assert ro["reasons"] == [{"state": "skipped", "reason": "secure_version_lower", "devices": 1}]


def test_rollout_controls_release_documents_and_enrolment_groups(
    repo: dict[str, str], server: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator commands not exercised above, with their ``--json`` results (checked against docs/json/)."""
    srv = ["--server", server["url"], "--token-file", server["token_file"], "--json"]
    for i in range(2):
        assert _run(capsys, "ota", "device", "add", "--id", f"q{i}", "--model", "pump", *srv)[0] == 0
    assert _run(capsys, *_publish(repo, _esp(repo, tmp_path, "1.1.0", 2)))[0] == 0
    code, releases, _ = _run(capsys, "ota", "release", "list", "--sync", *srv)
    assert code == 0
    code, ro, _ = _run(capsys, "ota", "rollout", "create", "--release", "pump/pump-1.1.0.bin", "--phases", "100%", *srv)
    rid = str(ro["id"])
    code, out, _ = _run(capsys, "ota", "rollout", "pause", rid, *srv)
    assert code == 0 and out["state"] == "paused"
    code, out, _ = _run(capsys, "ota", "rollout", "resume", rid, *srv)
    assert code == 0 and out["state"] == "running"
    code, out, _ = _run(capsys, "ota", "rollout", "cancel", rid, *srv)
    assert code == 0 and out["state"] == "cancelled"
    release_id = str(next(r["id"] for r in releases if r["target_path"] == "pump/pump-1.1.0.bin"))
    vex = Path(__file__).resolve().parents[1] / "vectors" / "release-documents" / "vex.openvex.json"
    code, attached, _ = _run(capsys, "ota", "release", "attach", release_id, "--vex", str(vex), *srv)
    assert code == 0, attached
    code, docs, _ = _run(capsys, "ota", "release", "documents", release_id, *srv)
    assert code == 0 and [d["kind"] for d in docs] == ["vex-openvex"]
    code, out, _ = _run(capsys, "ota", "enroll", "model-group", "pump", "icu", *srv)
    assert code == 0
