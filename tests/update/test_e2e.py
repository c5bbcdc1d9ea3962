"""End to end: publish, roll out to 50 simulated devices in two phases, error threshold, fleet view."""

from __future__ import annotations

from .fleet import Fleet


def _run_all(fleet: Fleet) -> dict[str, str]:
    return {d.id: d.agent.run_once().outcome for d in fleet.devices.values()}


def test_rollout_to_50_devices_in_two_phases(fleet: Fleet) -> None:
    for i in range(50):
        fleet.add_device(f"pump-{i:03d}")
    rel = fleet.publish("1.1.0", 2)
    ro = fleet.rollout(rel.target_path, phases=["5", "100%"], success_threshold=100, error_threshold=10)
    assert [p["counts"] for p in ro["phases"]] == [{"pending": 5}, {"waiting": 45}]

    # phase 2 devices get nothing while the canary phase runs
    assert fleet.devices["pump-049"].agent.run_once().outcome == "idle"
    canary = [fleet.devices[f"pump-{i:03d}"] for i in range(5)]
    assert [d.agent.run_once().outcome for d in canary] == ["confirmed"] * 5
    st = fleet.status(ro["id"])
    assert st["current_phase"] == 2 and st["phases"][0]["counts"] == {"confirmed": 5}

    second = _run_all(fleet)
    assert sum(v == "confirmed" for v in second.values()) == 45
    assert {v for k, v in second.items() if k < "pump-005"} == {"idle"}
    st = fleet.status(ro["id"])
    assert st["state"] == "finished"
    assert st["phases"][1]["counts"] == {"confirmed": 45}
    for d in fleet.devices.values():
        assert d.state().version == "1.1.0"
        assert d.device.status().counter == 2  # anti-rollback advanced only after confirm

    fleet_view = fleet.client.get("/api/v1/fleet", headers=fleet.h).json()
    assert fleet_view == [{"model": "pump", "version": "1.1.0", "secure_version": 2, "devices": 50}]
    # every device report is in the server's audit trail
    confirmed = [e for e in fleet.server_sink.of_type("ota.report") if e.data.get("status") == "confirmed"]
    assert len(confirmed) == 50


def test_error_threshold_pauses_and_failed_devices_revert(fleet: Fleet) -> None:
    for i in range(50):
        fleet.add_device(f"pump-{i:03d}", healthy=i % 5 != 0)  # 20% of apps never confirm
    rel = fleet.publish("1.1.0", 2)
    ro = fleet.rollout(rel.target_path, phases=["100%"], success_threshold=95, error_threshold=15)

    outcomes = _run_all(fleet)
    st = fleet.status(ro["id"])
    assert st["state"] == "paused"
    assert st["state_reason"].startswith("error_threshold")
    reverted = [k for k, v in outcomes.items() if v == "reverted"]
    assert reverted, outcomes
    assert all(int(k[-3:]) % 5 == 0 for k in reverted)
    for k in reverted:
        d = fleet.devices[k]
        assert d.state().version == "1.0.0" and d.state().slot == "ota_0"
        assert d.device.status().counter == 1
        assert any(e.type == "ota.revert" and e.reason == "app_not_confirmed" for e in d.sink.events)
    # paused: devices that did not start yet get no assignment
    not_started = [k for k, v in outcomes.items() if v == "idle"]
    for k in not_started:
        assert fleet.devices[k].agent.run_once().outcome == "idle"
    pause_events = [e for e in fleet.server_sink.of_type("rollout.change") if e.reason == "error_threshold"]
    assert len(pause_events) == 1
