"""``medfw ota`` and ``medfw device agent`` end to end: keys on disk, a real server on loopback, a device dir."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import uvicorn

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.errors import MedfwError
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image
from medfw.server.asgi import ServerSettings, build_app

from ._json import envelope, schema
from ._json import result as cli_result


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    if not out.strip().startswith("{"):
        return code, out
    doc = envelope(out)
    assert doc["exit_code"] == code
    return code, doc["result"] if "result" in doc else doc["error"]


def _key(path: Path, kind: KeyType = KeyType.ECDSA_P256) -> str:
    write_private_key(generate_private_key(kind), path)
    return str(path)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "keys"
    return {"root": _key(d / "root.pem"), "targets": _key(d / "targets.pem"), "boot": _key(d / "boot.pem")}


def _image(keys: dict[str, str], version: str, svn: int, path: Path) -> str:
    signer = FileSigner.from_file(keys["boot"])
    path.write_bytes(
        sign_image(build_app_image(chip="esp32c6", version=version, secure_version=svn, size=8192), [signer])
    )
    return str(path)


def _init_argv(repo: str, keys: dict[str, str], *extra: str) -> list[str]:
    return ["ota", "repo", "init", "--repo", repo, "--root-key", keys["root"], "--targets-key", keys["targets"], *extra]


def _publish_argv(repo: str, image: str, targets_key: str, *extra: str) -> list[str]:
    return [
        "ota",
        "release",
        "publish",
        "--repo",
        repo,
        "--image",
        image,
        "--model",
        "pump",
        "--targets-key",
        targets_key,
        *extra,
    ]


def _rotate_argv(repo: str, role: str, root_key: str, *extra: str) -> list[str]:
    return ["ota", "repo", "rotate", "--repo", repo, "--role", role, "--root-key", root_key, *extra]


def test_repo_init_publish_rotate(tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    repo = str(tmp_path / "repo")
    code, out = _run(capsys, *_init_argv(repo, keys, "--json"))
    assert code == 0 and out["root_version"] == 1
    assert (Path(repo) / "online-keys" / "timestamp.pem").stat().st_mode & 0o777 == 0o600
    img = _image(keys, "1.2.0", 3, tmp_path / "app.bin")
    sbom = tmp_path / "sbom.json"
    manifest = tmp_path / "medfw-sbom.yml"
    manifest.write_text("name: pump-fw\nversion: 1.2.0\nlicense: LicenseRef-Proprietary\n")
    assert main(["sbom", "generate", "--manifest", str(manifest), "--binary", img, "--out", str(sbom)]) == 0
    capsys.readouterr()
    code, out = _run(capsys, *_publish_argv(repo, img, keys["targets"], "--sbom", str(sbom), "--json"))
    assert code == 0
    assert (out["version"], out["secure_version"], out["chip"], out["target_path"]) == (
        "1.2.0",
        3,
        "esp32c6",
        "pump/pump-1.2.0.bin",
    )
    assert out["sbom"]["ref"] == "sbom.json" and out["online_signed"]
    # a wrong --version is refused (exit 2), nothing published
    code, _ = _run(capsys, *_publish_argv(repo, img, keys["targets"], "--version", "9.9"))
    assert code == 2
    # publishing with the root key instead of the targets key fails verification (exit 1)
    img2 = _image(keys, "1.3.0", 3, tmp_path / "app2.bin")
    code, _ = _run(capsys, *_publish_argv(repo, img2, keys["root"]))
    assert code == 1
    new_root = _key(tmp_path / "keys" / "root2.pem")
    code, out = _run(capsys, *_rotate_argv(repo, "root", keys["root"], "--new-key", new_root, "--json"))
    assert code == 0 and out["root_version"] == 2
    code, out = _run(capsys, *_rotate_argv(repo, "timestamp", new_root, "--json"))
    assert code == 0 and out["root_version"] == 3
    new_targets = _key(tmp_path / "keys" / "targets2.pem", KeyType.ED25519)
    code, out = _run(capsys, *_rotate_argv(repo, "targets", new_root, "--new-key", new_targets, "--json"))
    assert code == 0 and out["root_version"] == 4
    code, out = _run(capsys, *_publish_argv(repo, img2, new_targets, "--json"))
    assert code == 0 and out["version"] == "1.3.0"
    code, out = _run(capsys, "ota", "repo", "refresh", "--repo", repo, "--force", "--json")
    assert code == 0 and out == {"changed": True}
    # bad input: not a repository, missing image
    code, _ = _run(capsys, "ota", "repo", "refresh", "--repo", str(tmp_path))
    assert code == 2
    code, _ = _run(capsys, *_publish_argv(repo, str(tmp_path / "nope.bin"), new_targets))
    assert code == 2


PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _token_file(path: Path, token: str) -> str:
    path.write_text(token + "\n")
    path.chmod(0o600)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh fleet database: an SQLite file, or a PostgreSQL database of its own on the local server."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fleet.sqlite'}"
        return
    import psycopg

    name = f"medfw_cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def server(
    request: pytest.FixtureRequest, tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> Iterator[dict[str, str]]:
    with _database(getattr(request, "param", "sqlite"), tmp_path) as db:
        yield from _server(db, tmp_path, keys, capsys)


def _server(
    db: str, tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> Iterator[dict[str, str]]:
    repo = str(tmp_path / "repo")
    assert main(_init_argv(repo, keys)) == 0
    capsys.readouterr()
    code, out = _run(capsys, "ota", "token", "create", "--db", db, "--name", "admin", "--role", "admin", "--json")
    assert code == 0
    port = _free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            build_app(ServerSettings(db=db, repo=repo, allow_shared_secret_devices=True)),
            host="127.0.0.1",
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "token": out["token"],
            "token_file": _token_file(tmp_path / "fixture-admin.token", out["token"]),
            "repo": repo,
            "db": db,
        }
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def _agent(*argv: str) -> int:
    return main(["device", "agent", *argv])


def test_operator_flow_with_agent(
    tmp_path: Path, keys: dict[str, str], server: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    srv = ["--server", server["url"], "--token-file", server["token_file"], "--json"]
    boot = FileSigner.from_file(keys["boot"])
    dev_dir = tmp_path / "unit1"
    dev = Device.init(
        dev_dir,
        chip="esp32c6",
        key_digests=[public_key_digest(boot.public_key())],
        slot_size=0x10000,
        flash_size=0x40000,
    )
    dev.flash(
        Path(_image(keys, "bootloader", 0, tmp_path / "bl.bin")).read_bytes(),
        Path(_image(keys, "1.0.0", 1, tmp_path / "a1.bin")).read_bytes(),
    )

    code, out = _run(
        capsys,
        "ota",
        "device",
        "add",
        "--id",
        "unit1",
        "--model",
        "pump",
        "--chip",
        "esp32c6",
        "--group",
        "icu",
        "--provision",
        str(dev_dir),
        "--repo",
        server["repo"],
        *srv,
    )
    assert code == 0 and out["provisioned"] == str(dev_dir) and "credential" not in out
    code, out = _run(capsys, "ota", "device", "add", "--id", "unit2", "--model", "pump", *srv)
    assert code == 0 and out["credential"].startswith("unit2:")
    assert _agent(str(dev_dir), "--once", "--json") == 0
    assert cli_result(capsys.readouterr().out)["outcome"] == "idle"

    img = _image(keys, "1.1.0", 2, tmp_path / "a2.bin")
    assert main(_publish_argv(server["repo"], img, keys["targets"])) == 0
    capsys.readouterr()
    code, out = _run(capsys, "ota", "release", "list", "--sync", *srv)
    assert code == 0 and [r["version"] for r in out] == ["1.1.0"]
    code, out = _run(
        capsys,
        "ota",
        "rollout",
        "create",
        "--release",
        "pump/pump-1.1.0.bin",
        "--group",
        "icu",
        "--phases",
        "100%",
        *srv,
    )
    assert code == 0 and out["state"] == "running"
    rid = str(out["id"])
    from medfw.audit import init_log, verify_log

    log, log_key = tmp_path / "unit1-audit.db", tmp_path / "unit1-audit.key"
    init_log(log, key_out=log_key)
    assert _agent(str(dev_dir), "--once", "--json", "--audit-log", str(log)) == 0
    result = cli_result(capsys.readouterr().out)
    assert (result["outcome"], result["version"]) == ("confirmed", "1.1.0")
    assert verify_log(log, log_key.read_bytes()).ok  # the agent's and the device's events, sealed
    code, out = _run(capsys, "ota", "rollout", "status", rid, *srv)
    assert out["state"] == "finished"
    code, out = _run(capsys, "ota", "fleet", *srv)
    assert {"model": "pump", "version": "1.1.0", "secure_version": 2, "devices": 1} in out
    code, out = _run(capsys, "ota", "device", "list", "--group", "icu", *srv)
    assert [d["version"] for d in out] == ["1.1.0"]
    # human output renders tables
    assert main(["ota", "fleet", "--server", server["url"], "--token-file", server["token_file"]]) == 0
    assert "1.1.0" in capsys.readouterr().out
    # pause / resume / cancel and refusals
    code, out = _run(capsys, "ota", "rollout", "pause", rid, *srv)
    assert code == 2  # a finished rollout cannot be paused (409)
    code, _ = _run(
        capsys,
        "ota",
        "fleet",
        "--server",
        server["url"],
        "--token-file",
        _token_file(tmp_path / "wrong.token", "mft_wrong"),
        "--json",
    )
    assert code == 1
    code, _ = _run(
        capsys,
        "ota",
        "fleet",
        "--server",
        "http://127.0.0.1:9",
        "--token-file",
        _token_file(tmp_path / "x.token", "x"),
        "--json",
    )
    assert code == 2
    code, _ = _run(capsys, "ota", "fleet", "--json")
    assert code == 2


def test_agent_without_provisioning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _agent(str(tmp_path), "--once") == 2
    assert "not provisioned for OTA" in capsys.readouterr().err


def test_serve_command_starts_and_answers(
    tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys
    import urllib.request

    repo = str(tmp_path / "repo")
    assert main(_init_argv(repo, keys)) == 0
    capsys.readouterr()
    port = _free_port()
    argv = ["ota", "serve", "--repo", repo, "--port", str(port), "--log-format", "json", "--json"]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from medfw.cli import run; run()", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        body = b""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/tuf/metadata/1.root.json", timeout=1) as r:
                    body = r.read()
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                time.sleep(0.1)
        assert json.loads(body)["signed"]["_type"] == "root"
        assert (tmp_path / "repo" / "fleet.sqlite").exists()  # default database next to the repository
        # a second server on the same port: a clear refusal, exit 2
        assert main(["ota", "serve", "--repo", repo, "--port", str(port)]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    envelope = json.loads(out)
    started = envelope["result"]
    assert envelope["ok"] is True
    assert started["listening"] == f"http://127.0.0.1:{port}" and started["backend"] == "sqlite"
    assert started["version"] and started["workers"] == 1
    serve_schema = schema("ota.serve.schema.json")  # the server runs in a subprocess: checked here
    jsonschema.validate(started, serve_schema, cls=jsonschema.Draft202012Validator)
    assert set(started) <= set(serve_schema["properties"]), sorted(set(started) - set(serve_schema["properties"]))
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert any(x.get("path") == "/tuf/metadata/1.root.json" and x.get("status") == 200 for x in lines), err


def test_serve_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ota", "serve", "--repo", str(tmp_path)]) == 2
    assert main(["ota", "serve", "--db", "mysql://x/y"]) == 2
    assert main(["ota", "serve", "--workers", "0", "--audit-log", str(tmp_path / "a.db")]) == 2
    assert "database URL" in capsys.readouterr().err


def test_explicit_online_keys_sign_later_snapshots(
    tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    snap, ts = _key(tmp_path / "snapshot.pem"), _key(tmp_path / "timestamp.pem")
    code, _ = _run(capsys, *_init_argv(str(repo), keys, "--snapshot-key", snap, "--timestamp-key", ts))
    assert code == 0
    installed = repo / "online-keys" / "snapshot.pem"
    assert installed.stat().st_mode & 0o777 == 0o600
    img = _image(keys, "1.0.0", 1, tmp_path / "app.bin")
    code, _ = _run(capsys, *_publish_argv(str(repo), img, keys["targets"]))
    assert code == 0
    snapshot = json.loads((repo / "metadata" / "snapshot.json").read_text())["signed"]
    timestamp = json.loads((repo / "metadata" / "timestamp.json").read_text())["signed"]
    # the release is reachable: snapshot names the new targets version, timestamp the new snapshot
    assert snapshot["meta"]["targets.json"]["version"] == 2
    assert timestamp["meta"]["snapshot.json"]["version"] == snapshot["version"] == 2


@pytest.mark.parametrize("server", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_tables_print_device_reported_strings_as_text(
    server: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Finding 8: a device reporting version ``[/x]`` (rich markup) crashed ``ota device list`` and ``ota fleet``
    (on either backend)."""
    import httpx

    srv = ["--server", server["url"], "--token-file", server["token_file"]]
    code, out = _run(capsys, "ota", "device", "add", "--id", "evil1", "--model", "pump", *srv, "--json")
    assert code == 0
    auth = {"Authorization": f"Device {out['credential']}"}
    for version in ("[/x]", "[b]1[/b]"):
        r = httpx.get(f"{server['url']}/api/v1/devices/evil1/poll", params={"version": version}, headers=auth)
        assert r.status_code == 200, r.text
        for command in (["device", "list"], ["fleet"]):
            assert main(["ota", *command, *srv]) == 0
            assert version[:4] in capsys.readouterr().out  # shown as text (a narrow table may wrap the rest)


def test_tokens_and_credentials_from_the_cli_without_secrets_in_argv(
    tmp_path: Path, server: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(server["token"] + "\n")
    token_file.chmod(0o644)
    srv = ["--server", server["url"], "--token-file", str(token_file)]
    code, _ = _run(capsys, "ota", "token", "list", *srv, "--json")
    assert code == 2  # a token file other users can read is refused
    token_file.chmod(0o600)
    code, out = _run(
        capsys,
        "ota",
        "token",
        "create",
        "--db",
        server["db"],
        "--name",
        "ci",
        "--role",
        "operator",
        "--expires-in",
        "10m",
        "--json",
    )
    assert code == 0 and out["expires"] is not None
    code, out = _run(
        capsys,
        "ota",
        "token",
        "create",
        "--db",
        server["db"],
        "--name",
        "x",
        "--role",
        "admin",
        "--expires-in",
        "10y",
        "--json",
    )
    assert code == 2
    code, out = _run(capsys, "ota", "token", "list", *srv, "--json")
    assert code == 0 and {t["name"] for t in out} == {"admin", "ci"}
    code, out = _run(capsys, "ota", "token", "revoke", "ci", *srv, "--json")
    assert code == 0 and out["active"] is False
    # device credential rotation and re-provisioning
    dev_dir = tmp_path / "unit9"
    code, out = _run(
        capsys,
        "ota",
        "device",
        "add",
        "--id",
        "unit9",
        "--model",
        "pump",
        "--provision",
        str(dev_dir),
        "--repo",
        server["repo"],
        *srv,
        "--json",
    )
    assert code == 0
    before = (dev_dir / "ota" / "agent.json").read_text()
    code, out = _run(capsys, "ota", "device", "rotate", "--id", "unit9", "--provision", str(dev_dir), *srv, "--json")
    assert code == 0 and "credential" not in out
    assert (dev_dir / "ota" / "agent.json").read_text() != before
    assert (dev_dir / "ota" / "agent.json").stat().st_mode & 0o077 == 0
    import httpx

    cred = json.loads((dev_dir / "ota" / "agent.json").read_text())["credential"]
    r = httpx.get(f"{server['url']}/api/v1/devices/unit9/poll", headers={"Authorization": f"Device {cred}"})
    assert r.status_code == 200  # the device directory holds the new, working credential
    assert main(["ota", "device", "add", "--id", "unit9", "--model", "pump", *srv]) == 2  # 409: exists
    capsys.readouterr()
    # a token is never an argument: --token is unknown; the environment works
    with pytest.raises(SystemExit) as exc:
        main(["ota", "fleet", "--server", server["url"], "--token", server["token"]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--token-file" in err and server["token"] not in err
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDFW_OTA_TOKEN", server["token"])
        code, _ = _run(capsys, "ota", "fleet", "--server", server["url"], "--json")
        assert code == 0


def test_publish_is_a_release_point_of_the_audit_log(
    tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from medfw.audit import init_log, open_log, verify_log

    repo = str(tmp_path / "repo")
    log = tmp_path / "release-audit.db"
    res = init_log(log)
    assert _run(capsys, *_init_argv(repo, keys))[0] == 0
    img = _image(keys, "2.0.0", 4, tmp_path / "app.bin")
    code, _ = _run(capsys, *_publish_argv(repo, img, keys["targets"], "--audit-log", str(log)))
    assert code == 0
    with open_log(log) as w:
        cp, size = w.latest_checkpoint(), w.size
    assert cp is not None and cp.checkpoint.reason == "release"
    assert cp.checkpoint.size == size  # the checkpoint covers the release.publish record
    assert verify_log(log, res.verification_key, checkpoint=cp).ok


def test_transport_and_secret_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from medfw.cli._ota_client import db_url
    from medfw.cli._ota_serve import _transport_options

    base = {"trusted_proxy": None, "tls_cert": None, "tls_key": None}
    assert _transport_options(argparse.Namespace(**base)) == {"proxy_headers": False}
    opts = _transport_options(argparse.Namespace(**{**base, "trusted_proxy": ["10.0.0.1", "10.0.0.2"]}))
    assert opts == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.1,10.0.0.2"}
    secret = tmp_path / "pg.pass"
    secret.write_text("s3cret\n")
    secret.chmod(0o640)
    ns = argparse.Namespace(db_password_file=str(secret))
    with pytest.raises(MedfwError, match="readable by other users"):
        db_url(ns, "postgresql://fleet@db.example/fleet")
    secret.chmod(0o600)
    assert db_url(ns, "postgresql://fleet@db.example/fleet") == "postgresql+psycopg://fleet:s3cret@db.example/fleet"
    with pytest.raises(MedfwError, match="process list"):  # a password in argv is refused
        db_url(argparse.Namespace(db_password_file=None), "postgresql://fleet:pw@db.example/fleet")
    code, _ = _run(capsys, "ota", "token", "create", "--db", "postgresql://u:pw@127.0.0.1:9/x", "--name", "n",
                   "--role", "admin", "--json")  # fmt: skip
    assert code == 2


@pytest.mark.parametrize(("kind", "scheme"), [(KeyType.ECDSA_P384, "nistp384"), (KeyType.RSA3072, "rsassa-pss")])
def test_rotating_a_role_to_p384_or_rsa_warns_about_clients(
    tmp_path: Path, keys: dict[str, str], capsys: pytest.CaptureFixture[str], kind: KeyType, scheme: str
) -> None:
    repo = str(tmp_path / "repo")
    assert main(_init_argv(repo, keys)) == 0
    capsys.readouterr()
    new = _key(tmp_path / "targets-new.pem", kind)
    assert main(_rotate_argv(repo, "targets", keys["root"], "--new-key", new, "--json")) == 0
    captured = capsys.readouterr()
    warnings = envelope(captured.out)["result"]["warnings"]
    assert len(warnings) == 1 and "targets role" in warnings[0] and scheme in warnings[0]
    assert "warning: targets role" in captured.err
    # a P-256 key warns about nothing
    assert main(_rotate_argv(repo, "targets", keys["root"], "--new-key", _key(tmp_path / "p256.pem"), "--json")) == 0
    assert envelope(capsys.readouterr().out)["result"]["warnings"] == []
