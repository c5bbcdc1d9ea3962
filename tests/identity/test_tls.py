"""mTLS on a real uvicorn server on 127.0.0.1: the verified client certificate reaches the app, and only that."""

from __future__ import annotations

import datetime as dt
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from medfw.identity.tls import ClientCertH11Protocol, client_certificate, client_ssl_context, uvicorn_tls_options

from .pki import device_ca, serve, server_tls, unit_files


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    cert = client_certificate(scope)
    body = json.dumps({"device": cert.subject.rfc4514_string() if cert else None}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("protocol", ["httptools", "h11"])
def test_verified_client_certificate_reaches_the_app(tmp_path: Path, protocol: str) -> None:
    tls = server_tls(tmp_path / "tls")
    ca = device_ca()
    ca_pem = tmp_path / "device-ca.crt"
    ca_pem.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    options = uvicorn_tls_options(cert=tls.cert, key=tls.key, device_ca=ca_pem)
    if protocol == "h11":
        options["http"] = ClientCertH11Protocol
    good_cert, good_key = unit_files(tmp_path, ca, "pump-1")
    other_cert, other_key = unit_files(tmp_path / "other", device_ca(), "pump-1")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    expired_cert, expired_key = unit_files(tmp_path / "expired", ca, "pump-2", days=1, now=old)
    with serve(_echo, **options) as url:
        ctx = client_ssl_context(server_ca=tls.ca, cert=good_cert, key=good_key)
        r = httpx.get(url + "/", verify=ctx)
        assert "2.5.4.5=pump-1" in r.json()["device"] or "serialNumber=pump-1" in r.json()["device"]
        # no certificate: connects (operators, shared-secret simulator units), the app sees none
        assert httpx.get(url + "/", verify=client_ssl_context(server_ca=tls.ca)).json() == {"device": None}
        # a certificate from another CA, and an expired one: refused by the TLS layer
        for cert, key in ((other_cert, other_key), (expired_cert, expired_key)):
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, ssl.SSLError)):
                httpx.get(url + "/", verify=client_ssl_context(server_ca=tls.ca, cert=cert, key=key))
        # a header cannot inject a certificate
        spoof = {"x-client-cert": good_cert.read_text().replace("\n", "")}
        assert httpx.get(url + "/", verify=client_ssl_context(server_ca=tls.ca), headers=spoof).json() == {
            "device": None
        }


def test_client_certificate_is_absent_without_tls() -> None:
    assert client_certificate({"type": "http", "extensions": {}}) is None
    assert client_certificate({"type": "http"}) is None
