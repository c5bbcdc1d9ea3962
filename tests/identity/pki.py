"""Test PKI: a server TLS certificate for 127.0.0.1, a device CA and provisioned units (all generated per test)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medfw.crypto.keys import KeyType, generate_private_key, private_key_pem
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import DeviceCA, build_csr, create_ca, issue_device_certificate


@dataclass(frozen=True)
class ServerTls:
    """A server certificate for 127.0.0.1 and the CA that issued it."""

    ca: Path
    cert: Path
    key: Path


def server_tls(tmp: Path) -> ServerTls:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test server CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    tmp.mkdir(parents=True, exist_ok=True)
    out = ServerTls(tmp / "server-ca.crt", tmp / "server.crt", tmp / "server.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(private_key_pem(key))
    out.key.chmod(0o600)
    return out


def device_ca() -> DeviceCA:
    return create_ca(FileSigner(generate_private_key(KeyType.ECDSA_P256)), organisation="Acme Medical")


def unit_files(
    tmp: Path, ca: DeviceCA, device_id: str, *, days: int = 365, now: dt.datetime | None = None
) -> tuple[Path, Path]:
    """A unit certificate and key written to ``tmp`` (for TLS clients that are not device directories)."""
    key = generate_private_key(KeyType.ECDSA_P256)
    csr = build_csr(key, device_id=device_id, model="pump", chip="esp32c6")
    cert = issue_device_certificate(ca, csr, device_id=device_id, model="pump", chip="esp32c6", days=days, now=now)
    tmp.mkdir(parents=True, exist_ok=True)
    c, k = tmp / f"{device_id}.crt", tmp / f"{device_id}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(private_key_pem(key))
    k.chmod(0o600)
    return c, k


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1, handed to uvicorn (no race for the port)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    return s


def run_server(app: Any, **options: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start uvicorn for ``app`` on its own pre-bound socket in a thread; return it once it serves."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **options))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    return srv, thread, port


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    srv, thread, port = run_server(app, **options)
    try:
        yield f"https://127.0.0.1:{port}" if "ssl_certfile" in options else f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
