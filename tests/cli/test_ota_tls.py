"""``ota serve --tls-cert/--tls-key``: HTTPS with TLS 1.2 or newer, the agent and the operator CLI over it with a
test CA, and trusted-proxy headers only from configured addresses."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medfw.cli import main
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.image.sbv2 import public_key_digest
from medfw.server.tls import server_context_factory

from .test_ota import _free_port, _image, _init_argv, _run, keys  # noqa: F401 - keys is a fixture


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _test_ca(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 issued by it (PEM files: ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("medfw test CA"))
        .issuer_name(_name("medfw test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (d / "ca.pem", d / "server.pem", d / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def test_agent_and_operator_over_tls_with_a_test_ca(
    tmp_path: Path,
    keys: dict[str, str],  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    ca, cert, key = _test_ca(tmp_path)
    repo = str(tmp_path / "repo")
    assert main(_init_argv(repo, keys)) == 0
    capsys.readouterr()
    db = f"sqlite:///{tmp_path / 'fleet.sqlite'}"
    code, out = _run(capsys, "ota", "token", "create", "--db", db, "--name", "admin", "--role", "admin", "--json")
    token = out["token"]
    key.chmod(0o644)
    assert main(["ota", "serve", "--repo", repo, "--db", db, "--tls-cert", str(cert), "--tls-key", str(key)]) == 2
    assert "readable by other users" in capsys.readouterr().err
    key.chmod(0o600)
    port = _free_port()
    argv = [
        "ota",
        "serve",
        "--repo",
        repo,
        "--db",
        db,
        "--port",
        str(port),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from medfw.cli import run; run()", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"https://127.0.0.1:{port}"
    verify = ssl.create_default_context(cafile=str(ca))
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                time.sleep(0.05)
        with pytest.raises(httpx.HTTPError):  # a client without the CA does not trust the server
            httpx.get(f"{url}/healthz", timeout=5)
        old = ssl.create_default_context(cafile=str(ca))
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):  # TLS 1.1 is refused
            httpx.get(f"{url}/healthz", verify=old, timeout=5)
        # the operator CLI (MEDFW_OTA_CA) and the agent (--ca-file)
        os.environ["MEDFW_OTA_CA"] = str(ca)
        try:
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
            os.environ["MEDFW_OTA_TOKEN"] = token
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
                "--provision",
                str(dev_dir),
                "--repo",
                repo,
                "--server",
                url,
                "--json",
            )
            assert code == 0, out
        finally:
            os.environ.pop("MEDFW_OTA_CA", None)
            os.environ.pop("MEDFW_OTA_TOKEN", None)
        code, out = _run(capsys, "device", "agent", str(dev_dir), "--once", "--ca-file", str(ca), "--json")
        assert code == 0 and out["outcome"] == "idle", out
        code, out = _run(capsys, "device", "agent", str(dev_dir), "--once", "--json")
        assert code == 2 and out  # without the CA: unreachable (certificate not trusted)
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_server_context_floor_is_tls_1_2() -> None:
    ctx = server_context_factory(None, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
