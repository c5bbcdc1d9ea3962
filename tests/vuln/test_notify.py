"""Rescan notifications delivered to real local receivers: a signed webhook (with retries) and SMTP mail."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import hmac
import ipaddress
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from medfw.errors import TransportError, UsageError
from medfw.vuln import add_release, import_feeds, open_index, rescan
from medfw.vuln.index import VulnIndex
from medfw.vuln.notify import SIGNATURE_HEADER, notify_all
from medfw.vuln.postmarket import RescanReport

from ._receivers import smtp_receiver, webhook_receiver

V = Path(__file__).parent.parent / "vectors" / "vuln"
OPENSSL = {"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}


@pytest.fixture
def kev_report(tmp_path: Path, sbom_factory: Callable[..., bytes]) -> RescanReport:
    """A rescan that opened a KEV alert (Heartbleed on openssl 1.0.1f)."""
    index: VulnIndex = open_index(str(tmp_path / "n.db"))
    import_feeds(index, nvd=[str(V / "custom/heartbleed-nvd-api-2.0.json")])
    add_release(index, sbom_factory([OPENSSL], name="pump"))
    import_feeds(index, kev=[str(V / "kev/known_exploited_vulnerabilities.json")])
    report = rescan(index)
    index.close()
    return report


def test_webhook_signed_and_retried(kev_report: RescanReport, tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    with webhook_receiver([503, 429]) as (url, got):
        assert notify_all([f"webhook={url}"], kev_report, key_file=str(key)) == 1
    assert len(got.items) == 3  # 503 and 429 retried, third delivered
    last = got.items[-1]
    body = last["body"]
    assert isinstance(body, bytes)
    expected = "sha256=" + hmac.new(b"0123456789abcdef0123456789abcdef", body, hashlib.sha256).hexdigest()
    headers = {k.lower(): v for k, v in last["headers"].items()}  # type: ignore[attr-defined]
    assert hmac.compare_digest(headers[SIGNATURE_HEADER.lower()], expected)
    doc = json.loads(body)
    assert doc["type"] == "medfw.vuln.alerts/1" and doc["opened"] == 1
    (alert,) = doc["releases"][0]["open"]
    assert (alert["vuln_id"], alert["kind"], alert["detail"]["due_date"]) == ("CVE-2014-0160", "kev", "2022-05-25")


def test_webhook_failure_is_an_error_naming_the_url(kev_report: RescanReport, tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    key.write_bytes(b"k" * 32)
    with webhook_receiver([500, 500, 500]) as (url, got), pytest.raises(TransportError) as e:
        notify_all([f"webhook={url}"], kev_report, key_file=str(key))
    assert len(got.items) == 3 and e.value.path == url and "HTTP 500" in e.value.message
    with webhook_receiver([404]) as (url, got), pytest.raises(TransportError, match="HTTP 404"):
        notify_all([f"webhook={url}"], kev_report, key_file=str(key))
    assert len(got.items) == 1  # a 404 is not retried
    with pytest.raises(UsageError, match="notify-key-file"):
        notify_all(["webhook=http://127.0.0.1:9/x"], kev_report, key_file=None)


def test_smtp_mail(kev_report: RescanReport) -> None:
    with smtp_receiver() as (hostport, got):
        notify_all([f"smtp={hostport}"], kev_report, key_file=None, mail_to=["psirt@example.org"])
    (mail,) = got.items
    msg = email.message_from_bytes(mail["data"])  # type: ignore[arg-type]
    assert msg["To"] == "psirt@example.org" and "1 open vulnerability alert" in msg["Subject"]
    parts = {p.get_content_type(): p for p in msg.walk()}
    doc = json.loads(parts["application/json"].get_payload(decode=True))
    assert doc["releases"][0]["open"][0]["vuln_id"] == "CVE-2014-0160"
    assert "[kev] CVE-2014-0160 on o" in parts["text/plain"].get_payload(decode=True).decode()
    with pytest.raises(UsageError, match="mail-to"):
        notify_all([f"smtp={hostport}"], kev_report, key_file=None)
    with pytest.raises(TransportError, match="mail delivery failed"):
        notify_all([f"smtp={hostport}"], kev_report, key_file=None, mail_to=["a@b.c"])  # receiver is gone


def _self_signed(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = tmp_path / "smtp.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pem


def test_smtp_uses_starttls_when_offered(kev_report: RescanReport, tmp_path: Path) -> None:
    pem = _self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pem)
    with smtp_receiver(tls=server) as (hostport, got):
        with pytest.raises(TransportError, match="mail delivery failed"):  # an unknown certificate is refused
            notify_all([f"smtp={hostport}"], kev_report, key_file=None, mail_to=["a@b.c"])
        trusted = ssl.create_default_context(cafile=str(pem))
        notify_all([f"smtp={hostport}"], kev_report, key_file=None, mail_to=["a@b.c"], mail_tls=trusted)
    (mail,) = got.items
    assert mail["tls"] is True and b"medfw-alerts.json" in mail["data"]  # type: ignore[operator]
