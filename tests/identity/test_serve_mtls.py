"""``medfw ota serve`` with TLS and a device CA, and a unit provisioned and run through the CLI (``device
provision-identity``, ``device agent``): mutual TLS end to end through the real commands."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.identity.tls import client_ssl_context
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image

from .pki import free_port, server_tls


def _result(capsys: pytest.CaptureFixture[str]) -> Any:
    out = capsys.readouterr().out
    doc = json.loads(out)
    return doc.get("result", doc) if isinstance(doc, dict) else doc


@contextlib.contextmanager
def _serve(argv: list[str], url: str, ca: Path, log: Path) -> Iterator[None]:
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "medfw", "ota", "serve", *argv], stdout=fh, stderr=fh)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", verify=client_ssl_context(server_ca=ca)).status_code == 200:
                        break
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def test_serve_with_device_ca_and_a_cli_provisioned_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys"
    root, targets, boot, ca_key = (keys / f"{n}.pem" for n in ("root", "targets", "boot", "ca"))
    for k in (root, targets, boot, ca_key):
        write_private_key(generate_private_key(KeyType.ECDSA_P256), k)
    repo, db = tmp_path / "repo", f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    assert (
        main(["ota", "repo", "init", "--repo", str(repo), "--root-key", str(root), "--targets-key", str(targets)]) == 0
    )
    capsys.readouterr()
    assert main(["ota", "token", "create", "--db", db, "--name", "admin", "--role", "admin", "--json"]) == 0
    token = _result(capsys)["token"]
    master = tmp_path / "audit.master"
    assert main(["device", "ca-init", "--key", str(ca_key), "--out", str(tmp_path / "ca.crt"), "--org", "Acme",
                 "--audit-master-out", str(master)]) == 0  # fmt: skip
    tls = server_tls(tmp_path / "tls")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    signer = FileSigner.from_file(str(boot))
    unit = tmp_path / "unit"
    dev = Device.init(unit, chip="esp32c6", key_digests=[public_key_digest(signer.public_key())],
                      slot_size=0x10000, flash_size=0x40000)  # fmt: skip
    bootloader = build_app_image(chip="esp32c6", version="bl", secure_version=0, project_name="bootloader")
    dev.flash(sign_image(bootloader, [signer]), sign_image(build_app_image(chip="esp32c6", version="1.0.0",
                                                                           secure_version=1, size=8192), [signer]))  # fmt: skip
    assert main(["device", "provision-identity", str(unit), "--ca", str(tmp_path / "ca.crt"), "--ca-key", str(ca_key),
                 "--id", "pump-1", "--model", "pump", "--chip", "esp32c6", "--audit-master", str(master),
                 "--tuf-root", str(repo / "metadata" / "root.json"), "--server", url]) == 0  # fmt: skip
    serve = ["--db", db, "--repo", str(repo), "--host", "127.0.0.1", "--port", str(port), "--tls-cert", str(tls.cert),
             "--tls-key", str(tls.key), "--device-ca", str(tmp_path / "ca.crt"), "--device-audit-master", str(master)]  # fmt: skip
    env = {"MEDFW_OTA_SERVER": url, "MEDFW_OTA_TOKEN": token, "SSL_CERT_FILE": str(tls.ca)}
    with _serve(serve, url, tls.ca, tmp_path / "server.log"), _env(env):
        serials = tmp_path / "serials.csv"
        serials.write_text("pump-1,pump\n")
        assert main(["ota", "enroll", "preauthorize", str(serials)]) == 0
        capsys.readouterr()
        agent = ["device", "agent", str(unit), "--once", "--ca-file", str(tls.ca), "--json"]
        assert main(agent) == 0
        assert _result(capsys)["outcome"] == "idle"
        image = tmp_path / "app-1.1.0.bin"
        image.write_bytes(sign_image(build_app_image(chip="esp32c6", version="1.1.0", secure_version=2, size=8192),
                                     [signer]))  # fmt: skip
        assert main(["ota", "release", "publish", "--repo", str(repo), "--image", str(image), "--model", "pump",
                     "--targets-key", str(targets)]) == 0  # fmt: skip
        capsys.readouterr()
        assert main(["ota", "release", "list", "--sync", "--json"]) == 0
        (release,) = _result(capsys)
        assert (
            main(["ota", "rollout", "create", "--release", release["target_path"], "--phases", "100%", "--json"]) == 0
        )
        capsys.readouterr()
        assert main(agent) == 0
        assert _result(capsys)["outcome"] == "confirmed"
        assert main(["ota", "device", "audit", "pump-1", "--verify", "--json"]) == 0
        trail = _result(capsys)
        assert trail["verification"]["ok"] and "ota.confirm" in {e["type"] for e in trail["entries"]}
        assert main(["ota", "device", "revoke-cert", "pump-1"]) == 0
        capsys.readouterr()
        assert main(agent) == 2  # refused with 401 on the next connection: unreachable
        assert "poll_http_401" in json.dumps(_result(capsys))


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
