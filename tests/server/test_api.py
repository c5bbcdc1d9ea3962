"""The fleet server API, run against SQLite and PostgreSQL: device API, management API, refusals."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select

from medfw.server.models import Device, Report, Rollout

from .conftest import Api


def _count(api: Api, model: type) -> int:
    with api.service.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_register_poll_etag_and_assignment(api: Api) -> None:
    dev = api.device("pump-1")
    q = {"version": "1.0.0", "secure_version": 1, "slot": "ota_0"}
    r = api.client.get("/api/v1/devices/pump-1/poll", params=q, headers=dev)
    assert r.status_code == 200 and r.json()["assignment"] is None
    etag = r.headers["etag"]
    r = api.client.get("/api/v1/devices/pump-1/poll", params=q, headers={**dev, "If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    api.client.post(
        "/api/v1/rollouts", json={"release": api.release.target_path, "phases": ["100%"]}, headers=api.h("operator")
    )
    r = api.client.get("/api/v1/devices/pump-1/poll", params=q, headers={**dev, "If-None-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    a = r.json()["assignment"]
    assert (a["target_path"], a["version"], a["secure_version"], a["sha256"]) == (
        api.release.target_path,
        "1.1.0",
        2,
        api.release.sha256,
    )
    devices = api.client.get("/api/v1/devices", headers=api.h("read-only")).json()
    assert devices[0]["version"] == "1.0.0" and devices[0]["slot"] == "ota_0"


def test_artifact_download_with_range(api: Api) -> None:
    dev = api.device("pump-1")
    api.client.post("/api/v1/rollouts", json={"release": 1, "phases": ["100%"]}, headers=api.h("operator"))
    full = api.repo.target_file(api.release.target_path).read_bytes()
    r = api.client.get("/api/v1/devices/pump-1/artifact", headers=dev)
    assert r.status_code == 200 and r.content == full
    r = api.client.get("/api/v1/devices/pump-1/artifact", headers={**dev, "Range": "bytes=7000-"})
    assert r.status_code == 206
    assert r.content == full[7000:]
    assert r.headers["content-range"] == f"bytes 7000-{len(full) - 1}/{len(full)}"


def test_reports_move_the_rollout(api: Api) -> None:
    devs = {f"pump-{i}": api.device(f"pump-{i}") for i in range(4)}
    ro = api.client.post(
        "/api/v1/rollouts",
        json={"release": 1, "phases": ["1", "100%"], "success_threshold": 100, "error_threshold": 50},
        headers=api.h("operator"),
    ).json()
    assert [p["counts"] for p in ro["phases"]] == [{"pending": 1}, {"waiting": 3}]
    for status in ("downloading", "installed", "booted", "confirmed"):
        r = api.client.post(
            "/api/v1/devices/pump-0/reports",
            json={"status": status, "rollout": ro["id"], "version": "1.1.0"},
            headers=devs["pump-0"],
        )
        assert r.status_code == 200, r.text
    st = api.client.get(f"/api/v1/rollouts/{ro['id']}", headers=api.h("read-only")).json()
    assert st["current_phase"] == 2 and st["phases"][1]["counts"] == {"pending": 3}
    for d in ("pump-1", "pump-2"):
        r = api.client.post(
            f"/api/v1/devices/{d}/reports",
            json={"status": "rejected", "reason": "hash_mismatch", "rollout": ro["id"]},
            headers=devs[d],
        )
    st = api.client.get(f"/api/v1/rollouts/{ro['id']}", headers=api.h("read-only")).json()
    assert st["state"] == "paused" and "error_threshold" in st["state_reason"]
    reports = api.client.get("/api/v1/reports", params={"device": "pump-1"}, headers=api.h("read-only")).json()
    assert reports[0]["reason"] == "hash_mismatch"
    assert any(e.type == "rollout.change" and e.reason == "error_threshold" for e in api.sink.events)
    assert sum(e.type == "ota.report" for e in api.sink.events) == 6


def test_manual_pause_resume_cancel(api: Api) -> None:
    api.device("pump-1")
    dev2 = api.device("pump-2")
    ro = api.client.post("/api/v1/rollouts", json={"release": 1, "phases": ["100%"]}, headers=api.h("operator")).json()
    op = api.h("operator")
    assert api.client.post(f"/api/v1/rollouts/{ro['id']}/pause", headers=op).json()["state"] == "paused"
    r = api.client.get("/api/v1/devices/pump-2/poll", headers=dev2)
    assert r.json()["assignment"] is None
    assert api.client.post(f"/api/v1/rollouts/{ro['id']}/pause", headers=op).status_code == 409
    assert api.client.post(f"/api/v1/rollouts/{ro['id']}/resume", headers=op).json()["state"] == "running"
    assert api.client.get("/api/v1/devices/pump-2/poll", headers=dev2).json()["assignment"] is not None
    st = api.client.post(f"/api/v1/rollouts/{ro['id']}/cancel", headers=op).json()
    assert st["state"] == "cancelled" and st["phases"][0]["counts"] == {"cancelled": 2}
    assert api.client.post(f"/api/v1/rollouts/{ro['id']}/explode", headers=op).status_code == 404
    actions = [e.data.get("action") for e in api.sink.of_type("rollout.change")]
    assert actions == ["create", "pause", "resume", "cancel"]


def test_never_assigns_lower_secure_version_or_other_model(api: Api) -> None:
    api.device("pump-new")
    dev_new = api.device("pump-newer")
    api.device("vent-1", model="ventilator")
    # pump-newer reports secure_version 3, above the release's 2
    api.client.get("/api/v1/devices/pump-newer/poll", params={"version": "2.0", "secure_version": 3}, headers=dev_new)
    ro = api.client.post("/api/v1/rollouts", json={"release": 1, "phases": ["100%"]}, headers=api.h("operator")).json()
    assert ro["phases"][0]["counts"] == {"pending": 1, "skipped": 1}  # the ventilator is never targeted
    assert api.client.get("/api/v1/devices/pump-newer/poll", headers=dev_new).json()["assignment"] is None
    # a device that reports a higher secure_version after assignment is dropped at poll time
    dev = {"Authorization": "x"}
    del dev
    r = api.client.post("/api/v1/rollouts", json={"release": 1, "devices": ["vent-1"]}, headers=api.h("operator"))
    assert r.status_code == 422 and "no registered device" in r.json()["detail"]


def test_secure_version_raised_after_assignment(api: Api) -> None:
    dev = api.device("pump-1")
    api.client.post("/api/v1/rollouts", json={"release": 1, "phases": ["100%"]}, headers=api.h("operator"))
    assert api.client.get("/api/v1/devices/pump-1/poll", params={"secure_version": 1}, headers=dev).json()["assignment"]
    r = api.client.get("/api/v1/devices/pump-1/poll", params={"secure_version": 5}, headers=dev)
    assert r.json()["assignment"] is None


def test_auth_refusals_store_nothing(api: Api) -> None:
    dev1 = api.device("pump-1")
    api.device("pump-2")
    reports_before = _count(api, Report)
    body = {"status": "confirmed"}
    # missing, malformed and wrong device credentials
    assert api.client.post("/api/v1/devices/pump-1/reports", json=body).status_code == 401
    assert (
        api.client.post(
            "/api/v1/devices/pump-1/reports", json=body, headers={"Authorization": "Device nonsense"}
        ).status_code
        == 401
    )
    wrong = {"Authorization": "Device pump-1:" + "B" * 43}
    r = api.client.post("/api/v1/devices/pump-1/reports", json=body, headers=wrong)
    assert r.status_code == 401 and r.json() == {"detail": "invalid device credential"}
    # a device reporting for another
    r = api.client.post("/api/v1/devices/pump-2/reports", json=body, headers=dev1)
    assert r.status_code == 403 and r.json()["detail"] == "device pump-1 cannot act for device pump-2"
    assert _count(api, Report) == reports_before
    # tokens: none, bad, operator on an admin route, read-only on an operator route
    assert api.client.get("/api/v1/devices").status_code == 401
    assert api.client.get("/api/v1/devices", headers={"Authorization": "Bearer mft_nope"}).status_code == 401
    r = api.client.delete("/api/v1/devices/pump-1", headers=api.h("operator"))
    assert r.status_code == 403 and "needs admin" in r.json()["detail"]
    r = api.client.post("/api/v1/devices", json={"id": "x", "model": "pump"}, headers=api.h("read-only"))
    assert r.status_code == 403
    r = api.client.post("/api/v1/rollouts", json={"release": 1}, headers=api.h("read-only"))
    assert r.status_code == 403
    assert _count(api, Rollout) == 0 and _count(api, Device) == 2
    api.service.flush_denied()  # refusals are audited aggregated, per source and reason
    denied = [e for e in api.sink.events if e.outcome == "denied"]
    assert {e.reason for e in denied} >= {
        "missing_credential",
        "bad_credential",
        "other_device",
        "missing_token",
        "bad_token",
        "role",
    }
    # admin may decommission; the credential then stops working
    assert api.client.delete("/api/v1/devices/pump-1", headers=api.h("admin")).status_code == 204
    assert api.client.get("/api/v1/devices/pump-1/poll", headers=dev1).status_code == 401


def test_malformed_and_oversized_requests(api: Api) -> None:
    dev = api.device("pump-1")
    op = api.h("operator")
    n_devices = _count(api, Device)
    for bad in (
        {"id": "../etc", "model": "pump"},
        {"id": "ok", "model": ""},
        {"id": "ok", "model": "pump", "extra": 1},
        {"model": "pump"},
    ):
        r = api.client.post("/api/v1/devices", json=bad, headers=op)
        assert r.status_code == 422 and r.json()["detail"].startswith("invalid request"), bad
    r = api.client.post("/api/v1/devices", content=b"{not json", headers={**op, "content-type": "application/json"})
    assert r.status_code == 422
    r = api.client.post(
        "/api/v1/devices", content=b"{" + b" " * 70_000 + b"}", headers={**op, "content-type": "application/json"}
    )
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
        yield b'{"id": "big", "model": "pump", "chip": "'
        for _ in range(80):
            yield b"a" * 1000
        yield b'"}'

    r = api.client.post("/api/v1/devices", content=chunked(), headers={**op, "content-type": "application/json"})
    assert r.status_code == 413
    r = api.client.post("/api/v1/devices/pump-1/reports", json={"status": "exploded"}, headers=dev)
    assert r.status_code == 422
    r = api.client.post("/api/v1/devices/pump-1/reports", json={"status": "rejected"}, headers=dev)
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    r = api.client.post("/api/v1/devices/pump-1/reports", json={"status": "confirmed", "rollout": 999}, headers=dev)
    assert r.status_code == 404
    r = api.client.get("/api/v1/devices/pump-1/poll", params={"secure_version": -1}, headers=dev)
    assert r.status_code == 422
    for phases in (["0%"], ["abc"], [], ["101%"]):
        r = api.client.post("/api/v1/rollouts", json={"release": 1, "phases": phases}, headers=op)
        assert r.status_code == 422, phases
    assert api.client.post("/api/v1/rollouts", json={"release": "nope/x.bin"}, headers=op).status_code == 404
    assert api.client.post("/api/v1/devices", json={"id": "pump-1", "model": "pump"}, headers=op).status_code == 409
    assert _count(api, Device) == n_devices and _count(api, Rollout) == 0 and _count(api, Report) == 0


def test_tuf_routes(api: Api) -> None:
    assert api.client.get("/tuf/metadata/1.root.json").json()["signed"]["_type"] == "root"
    assert api.client.get("/tuf/metadata/timestamp.json").status_code == 200
    assert api.client.get("/tuf/metadata/2.root.json").status_code == 404
    assert api.client.get("/tuf/metadata/..%2Fonline-keys%2Fsnapshot.pem").status_code == 404
    assert api.client.get("/tuf/targets/../online-keys/snapshot.pem").status_code == 404
    name = f"pump/{api.release.sha256}.pump-1.1.0.bin"
    assert api.client.get(f"/tuf/targets/{name}").content == api.repo.target_file(api.release.target_path).read_bytes()


def test_groups_fleet_tokens_openapi(api: Api) -> None:
    dev = api.device("a", group="ward-1")
    api.device("b", group="ward-1")
    api.device("c", group="ward-2")
    api.client.get("/api/v1/devices/a/poll", params={"version": "1.0.0", "secure_version": 1}, headers=dev)
    assert api.client.get("/api/v1/groups", headers=api.h("read-only")).json() == [
        {"name": "ward-1", "devices": 2},
        {"name": "ward-2", "devices": 1},
    ]
    fleet = api.client.get("/api/v1/fleet", headers=api.h("read-only")).json()
    assert {"model": "pump", "version": "1.0.0", "secure_version": 1, "devices": 1} in fleet
    r = api.client.put("/api/v1/devices/b/group", json={"group": "ward-2"}, headers=api.h("operator"))
    assert r.status_code == 200 and r.json()["group"] == "ward-2"
    assert api.client.put("/api/v1/devices/b/group", json={"group": "x"}, headers=api.h("read-only")).status_code == 403
    assert api.client.put("/api/v1/devices/zz/group", json={"group": "x"}, headers=api.h("operator")).status_code == 404
    ro = api.client.post("/api/v1/rollouts", json={"release": 1, "group": "ward-2"}, headers=api.h("operator")).json()
    assert sum(sum(p["counts"].values()) for p in ro["phases"]) == 2
    r = api.client.post("/api/v1/tokens", json={"name": "ci", "role": "operator"}, headers=api.h("admin"))
    assert r.status_code == 201 and r.json()["token"].startswith("mft_")
    assert (
        api.client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers=api.h("operator")).status_code
        == 403
    )
    spec = api.client.get("/openapi.json").json()
    assert "/api/v1/devices/{device_id}/poll" in spec["paths"]
    assert "PollOut" in spec["components"]["schemas"]


def test_fast_poll_path_answers_like_the_documented_route(api: Api) -> None:
    dev = api.device("pump-1")
    api.client.post("/api/v1/rollouts", json={"release": 1, "phases": ["100%"]}, headers=api.h("operator"))
    q = {"version": "1.0.0", "secure_version": "1", "slot": "ota_0"}
    fast = api.client.get("/api/v1/devices/pump-1/poll", params=q, headers=dev)
    # an extra query parameter makes the request take the FastAPI route, which ignores it
    slow = api.client.get("/api/v1/devices/pump-1/poll", params={**q, "x": "1"}, headers=dev)
    assert fast.status_code == slow.status_code == 200
    assert fast.json() == slow.json() and fast.headers["etag"] == slow.headers["etag"]
    assert (
        api.client.get(
            "/api/v1/devices/pump-1/poll",
            params={**q, "x": "1"},
            headers={**dev, "If-None-Match": fast.headers["etag"]},
        ).status_code
        == 304
    )


def test_poll_query_fuzz_never_500(api: Api) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    dev = api.device("pump-1")
    names = st.sampled_from(["version", "secure_version", "slot", "x", ""])
    values = st.one_of(st.text(max_size=80), st.integers(-5, 2**33).map(str))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(names, values), max_size=4))
    def run(params: list[tuple[str, str]]) -> None:
        r = api.client.get("/api/v1/devices/pump-1/poll", params=params, headers=dev)
        assert r.status_code in (200, 422), (params, r.status_code, r.text)
        assert "Traceback" not in r.text

    run()


def test_rollout_filter_by_reported_version(api: Api) -> None:
    old = api.device("pump-old")
    api.device("pump-never-polled")
    new = api.device("pump-new")
    api.client.get("/api/v1/devices/pump-old/poll", params={"version": "0.9.0", "secure_version": 1}, headers=old)
    api.client.get("/api/v1/devices/pump-new/poll", params={"version": "1.0.0", "secure_version": 1}, headers=new)
    ro = api.client.post("/api/v1/rollouts", json={"release": 1, "version": "0.9.0"}, headers=api.h("operator")).json()
    assert sum(sum(p["counts"].values()) for p in ro["phases"]) == 1
    assert api.client.get("/api/v1/devices/pump-old/poll", headers=old).json()["assignment"] is not None
    assert api.client.get("/api/v1/devices/pump-new/poll", headers=new).json()["assignment"] is None
    # a device already in an active rollout cannot be put into a second one
    r = api.client.post("/api/v1/rollouts", json={"release": 1, "devices": ["pump-old"]}, headers=api.h("operator"))
    assert r.status_code == 409
