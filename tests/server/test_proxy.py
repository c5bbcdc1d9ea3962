"""Behind a reverse proxy: ``X-Forwarded-For`` is believed only from the configured ``--trusted-proxy`` addresses
(the address refusals are counted and rate-limited under), through the same uvicorn options ``ota serve`` uses."""

from __future__ import annotations

import argparse
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from medfw.cli._ota_serve import _transport_options
from medfw.server.app import create_app

from .conftest import Api


def _refusal_source(api: Api, trusted: list[str] | None) -> str:
    """Serve the app with ``--trusted-proxy`` = ``trusted``, send a refused request through a "proxy" that says
    the client is 203.0.113.9, and return the source address the refusal was counted under."""
    options = _transport_options(argparse.Namespace(trusted_proxy=trusted, tls_cert=None, tls_key=None))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(api.service, api.repo, maintenance_interval=3600)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1/devices"
        headers = {"Authorization": "Bearer mft_wrong", "X-Forwarded-For": "203.0.113.9"}
        assert httpx.get(url, headers=headers, timeout=30).status_code == 401
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    (event,) = api.service.denials.take()
    return str(event.data["source"])


@pytest.mark.parametrize(
    ("trusted", "source"),
    [(["127.0.0.1"], "203.0.113.9"), (None, "127.0.0.1"), (["10.9.9.9"], "127.0.0.1")],
)
def test_forwarded_addresses_only_from_trusted_proxies(api: Api, trusted: list[str] | None, source: str) -> None:
    api.service.denials.take()
    assert _refusal_source(api, trusted) == source
