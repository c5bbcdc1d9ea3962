"""Mutual TLS for the fleet server: hand the verified client certificate to the application, and the TLS
contexts of both ends.

uvicorn verifies a client certificate when it runs with ``ssl_ca_certs`` and ``ssl_cert_reqs`` (the handshake fails
for a certificate of another CA, an expired one or a broken chain), but it does not put the certificate into the
ASGI scope. :class:`ClientCertHttpToolsProtocol` / :class:`ClientCertH11Protocol` are uvicorn's own HTTP protocols
with one addition: when a connection is made, they read the peer certificate the TLS layer verified
(``ssl_object.getpeercert(binary_form=True)``) and add it to every request scope of that connection as the ASGI TLS
extension (``scope["extensions"]["tls"]["client_cert_chain"]``, PEM). Only what the TLS layer verified can get there:
a header set by a client never can. The application still re-checks the certificate against the device CA, the
revocation list and the validity dates (:func:`medfw.identity.certs.verify_device_certificate`), so a certificate
revoked while the server runs is refused with 401 on its next request.

``ssl_cert_reqs`` is ``CERT_OPTIONAL``: a client without a certificate (an operator, a shared-secret simulator unit)
still connects; a client *with* a certificate must present one the device CA issued.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "ClientCertH11Protocol",
    "ClientCertHttpToolsProtocol",
    "client_certificate",
    "client_ssl_context",
    "uvicorn_tls_options",
]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def _with_tls_extension(app: ASGIApp, transport: Any) -> ASGIApp:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return app
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    if der:
        chain = [x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode("ascii")]
    cipher = ssl_object.cipher()
    tls = {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": ssl_object.version(),
        "cipher_suite": cipher[0] if cipher else None,
    }

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
        await app(scope, receive, send)

    return wrapped


class ClientCertHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, passing the verified client certificate to the app (ASGI TLS extension)."""

    def connection_made(self, transport: Any) -> None:
        """Set up the connection, then wrap the app of this connection with its TLS facts."""
        super().connection_made(transport)
        self.app = _with_tls_extension(self.app, transport)


class ClientCertH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, passing the verified client certificate to the app (ASGI TLS extension)."""

    def connection_made(self, transport: Any) -> None:
        """Set up the connection, then wrap the app of this connection with its TLS facts."""
        super().connection_made(transport)
        self.app = _with_tls_extension(self.app, transport)


def client_certificate(scope: Scope) -> x509.Certificate | None:
    """The client certificate the TLS layer verified for this request, if any."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    return x509.load_pem_x509_certificate(str(chain[0]).encode("ascii"))


def uvicorn_tls_options(*, cert: str | Path, key: str | Path, device_ca: str | Path | None) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run``: server certificate and, with ``device_ca``,
    optional client certificates verified against the device CA (passed to the app by the protocol above)."""
    options: dict[str, Any] = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    if device_ca is not None:
        options |= {
            "ssl_ca_certs": str(device_ca),
            "ssl_cert_reqs": int(ssl.CERT_OPTIONAL),
            "http": ClientCertHttpToolsProtocol,
        }
    return options


def client_ssl_context(
    *, server_ca: str | Path | None, cert: str | Path | None = None, key: str | Path | None = None
) -> ssl.SSLContext:
    """The unit's TLS context: trust ``server_ca`` (system roots when ``None``), present ``cert``/``key`` if given."""
    ctx = ssl.create_default_context(cafile=str(server_ca) if server_ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx
