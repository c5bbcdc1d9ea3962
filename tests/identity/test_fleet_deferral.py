"""Proof: a rollout respects a maintenance window and a busy unit (deferred, then installed when free), and waits
for the user's approval on the unit; all of it visible in rollout status."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from medfw.device.clinical import Permission

from .trusted import trusted_fleet


def _window_excluding_now() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    start = now + dt.timedelta(hours=2)
    end = now + dt.timedelta(hours=3)
    return start.strftime("%H:%M"), end.strftime("%H:%M")


def test_window_then_busy_then_installed(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path) as fleet:
        fleet.admin.put("/api/v1/models/pump/group", json={"group": "icu"})
        unit = fleet.unit("pump-0100")
        assert unit.cycle() == "idle"
        start, end = _window_excluding_now()
        days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        r = fleet.admin.put(
            "/api/v1/groups/icu/window", json={"timezone": "Europe/Berlin", "days": days, "start": start, "end": end}
        )
        assert r.status_code == 200, r.text
        target = fleet.publish("1.1.0", 2)
        ro = fleet.rollout(target, phases=["100%"])
        # outside the window: nothing is assigned, the poll says when it opens
        assert unit.cycle() == "idle"
        poll = unit.client.get(
            "/api/v1/devices/pump-0100/poll",
            params={"version": "1.0.0", "secure_version": 1, "slot": "ota_0"},
            headers=unit.agent.trust.poll_headers(unit.state()),
        )
        assert poll.json()["assignment"] is None
        assert poll.json()["deferred"]["reason"] == "maintenance_window"
        status = fleet.status(ro["id"])
        assert status["trust"]["outside_window"] == {"icu": 1}
        assert status["trust"]["windows"]["icu"]["open"] is False
        assert unit.state().version == "1.0.0"
        # the window opens (set to the whole day), but therapy is running: deferred, not failed
        r = fleet.admin.put(
            "/api/v1/groups/icu/window",
            json={"timezone": "Europe/Berlin", "days": days, "start": "00:00", "end": "23:59"},
        )
        assert r.status_code == 200
        if not fleet.service.windows()[0]["open"]:  # the one minute 23:59-00:00 local time
            fleet.admin.put(
                "/api/v1/groups/icu/window",
                json={"timezone": "Europe/Berlin", "days": days, "start": "00:01", "end": "00:00"},
            )
        unit.device.set_busy(True)
        assert unit.device.install_permission(target) is Permission.DEVICE_BUSY
        assert unit.cycle() == "deferred"
        status = fleet.status(ro["id"])
        assert status["trust"]["deferred"] == {"device_busy": 1}
        assert fleet.counts(ro["id"]) == {"deferred": 1}
        assert status["state"] == "running"
        assert unit.state().version == "1.0.0"
        # therapy ends: installed on the next cycle
        unit.device.set_busy(False)
        assert unit.cycle() == "confirmed"
        assert fleet.status(ro["id"])["state"] == "finished"
        assert fleet.counts(ro["id"]) == {"confirmed": 1}


def test_rollout_requiring_approval_on_the_unit(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path) as fleet:
        unit = fleet.unit("pump-0200")
        assert unit.cycle() == "idle"
        target = fleet.publish("1.2.0", 2)
        ro = fleet.rollout(target, phases=["100%"], require_approval=True)
        assert fleet.status(ro["id"])["trust"]["require_approval"] is True
        assert unit.cycle() == "deferred"
        assert fleet.status(ro["id"])["trust"]["deferred"] == {"awaiting_approval": 1}
        unit.device.approve(target)
        assert unit.cycle() == "confirmed"
        trail = fleet.admin.get("/api/v1/devices/pump-0200/audit", params={"limit": 1000}).json()
        assert any(e["reason"] == "user_approval" for e in trail["entries"])


def test_a_window_that_never_opens_is_refused(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path) as fleet:
        for body in (
            {"timezone": "Europe/Berlin", "days": [], "start": "01:00", "end": "02:00"},
            {"timezone": "Europe/Berlin", "days": ["mon"], "start": "01:00", "end": "01:00"},
            {"timezone": "Mars/Olympus", "days": ["mon"], "start": "01:00", "end": "02:00"},
            {"timezone": "UTC", "days": ["someday"], "start": "01:00", "end": "02:00"},
            {"timezone": "UTC", "days": ["mon"], "start": "25:00", "end": "02:00"},
        ):
            r = fleet.admin.put("/api/v1/groups/icu/window", json=body)
            assert r.status_code == 422, (body, r.text)
        assert fleet.admin.get("/api/v1/windows").json() == []
        assert any(e.reason == "window_refused" for e in fleet.sink.of_type("config.change"))
