"""``--artifact-base-url``: devices fetch TUF metadata and images from a static host (TUF makes it untrusted);
the API server streams no firmware and the static host never sees a device credential."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medfw.update.agent import UpdateAgent

from .fleet import Fleet


class _Recorder(http.server.SimpleHTTPRequestHandler):
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        super().do_GET()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def static_host(fleet: Fleet) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = functools.partial(type("H", (_Recorder,), {"seen": seen}), directory=str(fleet.repo.path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_devices_download_from_the_static_host(
    fleet: Fleet, static_host: tuple[str, list[tuple[str, str | None]]]
) -> None:
    base, seen = static_host
    fleet.service.artifact_base_url = base
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    api = fleet.client
    client = httpx.Client(
        base_url=str(api.base_url),
        transport=api._transport,  # the API in process
        mounts={base: httpx.HTTPTransport()},  # the static host over loopback
    )
    agent = UpdateAgent(dev.dir, dev.port, client, config=dev.agent.config, sink=dev.sink, sleep=lambda _s: None)
    result = agent.run_once()
    assert (result.outcome, result.version) == ("confirmed", "1.1.0"), result
    paths = [p for p, _ in seen]
    assert any(p.startswith("/metadata/") for p in paths)
    assert f"/targets/pump/{rel.sha256}.pump-1.1.0.bin" in paths
    assert all(auth is None for _, auth in seen)  # the device credential never leaves for the static host
    poll = api.get("/api/v1/devices/pump-1/poll", headers={"Authorization": f"Device {dev.agent.config.credential}"})
    assert poll.json()["metadata"] == f"{base}/metadata/"


def test_a_tampering_static_host_is_caught_by_tuf(
    fleet: Fleet, static_host: tuple[str, list[tuple[str, str | None]]]
) -> None:
    base, _ = static_host
    fleet.service.artifact_base_url = base
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    target = Path(fleet.repo.path, "targets", "pump", f"{rel.sha256}.pump-1.1.0.bin")
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF
    target.write_bytes(bytes(data))  # the CDN serves a modified image
    api = fleet.client
    client = httpx.Client(
        base_url=str(api.base_url),
        transport=api._transport,
        mounts={base: httpx.HTTPTransport()},
    )
    agent = UpdateAgent(dev.dir, dev.port, client, config=dev.agent.config, sink=dev.sink, sleep=lambda _s: None)
    result = agent.run_once()
    assert (result.outcome, result.reason) == ("rejected", "hash_mismatch"), result
    assert dev.state().version == "1.0.0"
