"""The agent against a hostile server (findings 5 and 6): poll_interval is clamped, downloads and metadata fetches
have an overall deadline, and withheld updates (expired metadata, no assignment) are detected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from medfw.update.agent import POLL_INTERVAL_RANGE, UpdateAgent, clamp_poll_interval

from .evil import EvilTransport, evil_client
from .fleet import Fleet, SimDevice
from .test_attacks import _resign


def _evil_agent(fleet: Fleet, dev: SimDevice, **kwargs: Any) -> tuple[UpdateAgent, EvilTransport, list[float]]:
    client, transport = evil_client(fleet.client)  # type: ignore[arg-type]
    slept: list[float] = []
    agent = UpdateAgent(dev.dir, dev.port, client, config=dev.agent.config, sink=dev.sink, sleep=slept.append, **kwargs)
    agent.retry = dev.agent.retry
    return agent, transport, slept


@pytest.mark.parametrize(
    ("asked", "waits"),
    [(-1, 1), (0, 1), (0.2, 1), (1e12, POLL_INTERVAL_RANGE[1]), ("soon", 60), (None, 60), (True, 60), (30, 30)],
)
def test_poll_interval_is_clamped(fleet: Fleet, asked: object, waits: int) -> None:
    dev = fleet.add_device("pump-1")
    agent, transport, slept = _evil_agent(fleet, dev)
    transport.rewrite_poll = lambda body: {**body, "poll_interval": asked}
    result = agent.run(cycles=3)
    assert result.outcome == "idle" and slept == [waits, waits]


def test_clamp_poll_interval() -> None:
    assert clamp_poll_interval(float("nan"), 7) == 7 and clamp_poll_interval(float("inf"), 7) == 7
    assert clamp_poll_interval(2.9, 7) == 2


def _ticking(step: float) -> Iterator[float]:
    t = 0.0
    while True:
        t += step
        yield t


def test_slow_drip_download_stops_at_the_deadline_and_resumes(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    ticks = _ticking(2.0)  # every chunk "arrives" 2 s after the previous one
    agent, transport, _ = _evil_agent(fleet, dev, deadline=60, clock=lambda: next(ticks))
    transport.drip = lambda r: r.url.path.endswith("/artifact")
    result = agent.run_once()
    assert (result.outcome, result.reason) == ("deferred", "download_deadline"), result
    part = next((dev.dir / "ota" / "download").glob("*.part"))
    assert 0 < part.stat().st_size < rel.length  # what arrived is kept for the resume
    transport.drip = lambda _r: False
    assert agent.run_once().outcome == "confirmed"


def test_slow_drip_metadata_stops_at_the_deadline(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    ticks = _ticking(2.0)
    agent, transport, _ = _evil_agent(fleet, dev, deadline=30, clock=lambda: next(ticks))
    transport.drip = lambda r: "/tuf/metadata/" in r.url.path
    result = agent.run_once()
    assert (result.outcome, result.reason) == ("deferred", "metadata_unavailable"), result
    assert "deadline" in (result.detail or "")


def test_withheld_updates_are_detected_without_an_assignment(fleet: Fleet) -> None:
    """Finding 6: with expired metadata and no assignment the agent said ``idle``: the freeze went unnoticed."""
    dev = fleet.add_device("pump-1")
    assert dev.agent.run_once().outcome == "idle"  # fresh metadata: nothing to report

    def expire(signed: Any) -> None:
        signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    _resign(fleet, "timestamp", expire)  # the server keeps serving an expired timestamp
    dev.agent.metadata_refresh = 0  # the refresh is due
    result = dev.agent.run_once()
    assert (result.outcome, result.reason) == ("rejected", "metadata_expired"), result
    assert any(e.type == "ota.manifest.rejected" and e.reason == "metadata_expired" for e in dev.sink.events)
    last = fleet.client.get("/api/v1/reports", params={"device": dev.id, "limit": 1}, headers=fleet.h).json()[0]
    assert (last["status"], last["reason"]) == ("rejected", "metadata_expired")


def test_idle_refresh_happens_on_schedule_only(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    now = [0.0]
    agent, transport, _ = _evil_agent(fleet, dev, metadata_refresh=3600, clock=lambda: now[0])
    agent.run_once()
    fetched = sum("/tuf/metadata/" in r.url.path for r in transport.requests)
    now[0] = 1800
    agent.run_once()
    assert sum("/tuf/metadata/" in r.url.path for r in transport.requests) == fetched  # not due yet
    now[0] = 3601
    agent.run_once()
    assert sum("/tuf/metadata/" in r.url.path for r in transport.requests) > fetched
