"""The device agent: resumable downloads, server outages, report outbox, configuration, version order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from medfw.errors import DeviceError
from medfw.update.agent import load_config, provision
from medfw.update.repository import ReleaseInfo

from .evil import EvilTransport, evil_client
from .fleet import Fleet, SimDevice, make_fleet, signed_app


def _update_through_evil_transport(fleet: Fleet) -> tuple[SimDevice, ReleaseInfo, dict[str, Any], EvilTransport]:
    """A device at 1.0.0, a 1.1.0 release rolled out to all, and the device talking through an evil transport."""
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    ro = fleet.rollout(rel.target_path, phases=["100%"])
    client, transport = evil_client(fleet.client)
    dev.agent.client = client
    return dev, rel, ro, transport


def test_interrupted_download_resumes_from_the_last_byte(fleet: Fleet) -> None:
    dev, rel, _ro, transport = _update_through_evil_transport(fleet)
    dev.agent.retry = type(dev.agent.retry)(attempts=1, base=0.0)
    cut = 5000
    transport.cut_artifact_at = cut

    first = dev.agent.run_once()
    assert (first.outcome, first.reason) == ("deferred", "download_interrupted")
    part = dev.dir / "ota" / "download" / f"{rel.sha256}.part"
    assert part.stat().st_size == cut
    assert dev.state().version == "1.0.0"

    transport.requests.clear()
    second = dev.agent.run_once()
    assert second.outcome == "confirmed", second
    artifact = [r for r in transport.requests if r.url.path.endswith("/artifact")]
    assert len(artifact) == 1 and artifact[0].headers["Range"] == f"bytes={cut}-"
    assert not part.exists()
    assert dev.state().version == "1.1.0"


def test_resume_within_one_cycle_with_retries(fleet: Fleet) -> None:
    dev, _rel, _ro, transport = _update_through_evil_transport(fleet)
    transport.cut_artifact_at = 1234
    assert dev.agent.run_once().outcome == "confirmed"
    ranges = [r.headers.get("Range") for r in transport.requests if r.url.path.endswith("/artifact")]
    assert ranges == [None, "bytes=1234-"]


def test_server_down_then_back(fleet: Fleet) -> None:
    dev, _rel, _ro, transport = _update_through_evil_transport(fleet)
    slept: list[float] = []
    dev.agent.sleep = slept.append
    transport.fail = lambda _r: True
    result = dev.agent.run_once()
    assert (result.outcome, result.reason) == ("unreachable", "server_unreachable")
    assert slept == [dev.agent.retry.delay(0), dev.agent.retry.delay(1)]  # bounded retries with backoff
    assert dev.state().version == "1.0.0"
    transport.fail = lambda _r: False
    assert dev.agent.run_once().outcome == "confirmed"


def test_reports_are_queued_while_the_server_is_down(fleet: Fleet) -> None:
    dev, _rel, ro, transport = _update_through_evil_transport(fleet)
    transport.fail = lambda r: r.url.path.endswith("/reports")
    assert dev.agent.run_once().outcome == "confirmed"  # updates even though no report got through
    outbox = json.loads((dev.dir / "ota" / "outbox.json").read_text())
    assert [b["status"] for b in outbox] == ["downloading", "installed", "booted", "confirmed"]
    assert fleet.status(ro["id"])["state"] == "running"
    transport.fail = lambda _r: False
    assert dev.agent.run_once().outcome == "idle"
    assert not (dev.dir / "ota" / "outbox.json").exists()
    assert fleet.status(ro["id"])["state"] == "finished"


def test_real_network_error_is_unreachable(tmp_path: Path, fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    dev.agent.client = httpx.Client(base_url="http://127.0.0.1:9", timeout=0.5)
    dev.agent._base = "http://127.0.0.1:9"
    assert dev.agent.run_once().outcome == "unreachable"


def test_idle_polls_use_etag(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    client, transport = evil_client(fleet.client)
    dev.agent.client = client
    assert dev.agent.run_once().outcome == "idle"
    assert dev.agent.run_once().outcome == "idle"
    polls = [r for r in transport.requests if r.url.path.endswith("/poll")]
    assert "If-None-Match" not in polls[0].headers and polls[1].headers["If-None-Match"].startswith('"')


def test_wrong_credential_is_reported_as_unreachable_not_crash(fleet: Fleet) -> None:
    from dataclasses import replace

    dev = fleet.add_device("pump-1")
    dev.agent.config = replace(dev.agent.config, credential="pump-1:" + "A" * 43)
    result = dev.agent.run_once()
    assert (result.outcome, result.reason) == ("unreachable", "poll_http_401")


def test_provision_and_load_config(tmp_path: Path) -> None:
    cfg = provision(tmp_path, device_id="d1", model="pump", chip="esp32c3", credential="d1:secret", root=b"{}")
    assert load_config(tmp_path) == cfg
    assert (tmp_path / "ota" / "agent.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ota" / "tuf" / "root.json").read_bytes() == b"{}"


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="not provisioned"):
        load_config(tmp_path)
    (tmp_path / "ota").mkdir()
    (tmp_path / "ota" / "agent.json").write_text("{not json")
    with pytest.raises(DeviceError, match="malformed"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("running", "release"),
    [("1.0.0-rc1", "1.0.0"), ("v1.2", "1.3"), ("1.9.9", "1.10.0")],
)
def test_agent_orders_versions_with_the_one_comparator(tmp_path: Path, running: str, release: str) -> None:
    """The agent used its own comparator: 1.0.0-rc1 → 1.0.0 was a "downgrade" and v1.2 sorted above 1.3."""
    fleet = make_fleet(tmp_path)
    try:
        fleet.base_image = signed_app(fleet.boot_signer, running, 1)
        dev = fleet.add_device("pump-1")
        fleet.publish(release, 1)
        fleet.rollout(f"pump/pump-{release}.bin", phases=["100%"])
        result = dev.agent.run_once()
        assert (result.outcome, result.version) == ("confirmed", release), result
        # and the other way round is a downgrade
        fleet.base_image = signed_app(fleet.boot_signer, release, 1)
        dev2 = fleet.add_device("pump-2")
        fleet.publish(running, 1)
        fleet.rollout(f"pump/pump-{running}.bin", devices=["pump-2"], phases=["100%"])
        result = dev2.agent.run_once()
        assert (result.outcome, result.reason) == ("rejected", "downgrade"), result
    finally:
        fleet.close()


def test_run_loop_waits_the_poll_interval(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    slept: list[float] = []
    dev.agent.sleep = slept.append
    result = dev.agent.run(cycles=3)
    assert result.outcome == "idle"
    assert slept == [60, 60]  # the server's poll_interval, between cycles only
