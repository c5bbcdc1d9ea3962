"""The fast path of device reports answers exactly as the route does, and leaves everything else to the route."""

from __future__ import annotations

from typing import Any

import pytest

from medfw.server import fast_report

from .conftest import Api


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The devices whose reports the fast path stored."""
    served: list[str] = []
    serve = fast_report.FastReport._serve

    async def counting(self: Any, who: str, *args: Any) -> None:
        served.append(who)
        await serve(self, who, *args)

    monkeypatch.setattr(fast_report.FastReport, "_serve", counting)
    return served


def _warm(api: Api, device_id: str, headers: dict[str, str]) -> None:
    """Read the device's credential into the cache (after the last fleet change): a poll does."""
    assert api.client.get(f"/api/v1/devices/{device_id}/poll", headers=headers).status_code == 200


def _both(api: Api, path: str, headers: dict[str, str], body: Any) -> tuple[Any, Any]:
    """The same report through the fast path and through the route (a query string sends it to the route)."""
    a = api.client.post(path, json=body, headers=headers)
    b = api.client.post(path + "?via=route", json=body, headers=headers)
    return a, b


def test_a_report_is_stored_and_answered_as_the_route_does(api: Api, fast: list[str]) -> None:
    dev = api.device("pump-1")
    _warm(api, "pump-1", dev)
    a, b = _both(api, "/api/v1/devices/pump-1/reports", dev, {"status": "downloading", "version": "1.0.0"})
    assert fast == ["pump-1"]  # the first through the fast path, the second through the route
    assert a.status_code == b.status_code == 200 and a.json() == b.json()
    assert a.json() == {"device": "pump-1", "status": "downloading", "accepted": True}
    reports = api.client.get("/api/v1/reports", params={"device": "pump-1"}, headers=api.h("read-only")).json()
    assert [r["status"] for r in reports] == ["downloading", "downloading"]
    assert sum(e.type == "ota.report" and e.outcome == "success" for e in api.sink.events) == 2


def test_refusals_after_validation_are_mapped_like_the_route(api: Api, fast: list[str]) -> None:
    dev = api.device("pump-1")
    _warm(api, "pump-1", dev)
    a, b = _both(api, "/api/v1/devices/pump-1/reports", dev, {"status": "downloading", "rollout": 77})
    assert fast == ["pump-1"] and a.status_code == b.status_code == 404 and a.json() == b.json()
    assert "rollout" in a.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/v1/devices/pump-1/reports", {"status": "exploded"}, None),  # 422 naming the field
        ("/api/v1/devices/pump-1/reports", {"status": "downloading", "extra": 1}, None),
        ("/api/v1/devices/pump-2/reports", {"status": "downloading"}, None),  # acting for another device
        ("/api/v1/devices/pump-1/reports", {"status": "downloading"}, {"Authorization": "Device pump-1:" + "A" * 43}),
        ("/api/v1/devices/pump-1/reports", {"status": "downloading"}, {}),
    ],
)
def test_everything_else_falls_through_to_the_route(
    api: Api, fast: list[str], path: str, body: Any, headers: dict[str, str] | None
) -> None:
    dev = api.device("pump-1")
    api.device("pump-2")
    _warm(api, "pump-1", dev)
    a, b = _both(api, path, dev if headers is None else headers, body)
    assert fast == [] and a.status_code == b.status_code and a.status_code in (401, 403, 422)
    assert a.json() == b.json()
