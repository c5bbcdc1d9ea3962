"""The fleet side of the demo: units in the field, exposure, the staged rollout, the refused downgrade."""

from __future__ import annotations

from typing import Any

from medfw.demo.firmware import CHIP, MODEL
from medfw.demo.runner import Demo, DemoError
from medfw.demo.story import FLEET

__all__ = ["downgrade_refused", "exposure", "provision_fleet", "staged_rollout"]


def _unit(demo: Demo, unit: str) -> str:
    return str(demo.path("fleet", unit))


def provision_fleet(demo: Demo) -> None:
    """Six units: provisioned (key digest, secure boot, flash encryption), running 1.0.0, registered, polling."""
    demo.stage(f"5. The fleet: {len(FLEET)} units in the field running 1.0.0")
    audit = str(demo.path("audit.db"))
    for i, unit in enumerate(FLEET):
        dev, quiet = _unit(demo, unit), i > 0
        init = ["device", "init", dev, "--key-digest", demo.facts["key_digest"], "--chip", CHIP, "--flash-encryption"]
        demo.run([*init, "--audit-log", audit], quiet=quiet)
        boot, app = str(demo.path("build", "bootloader.signed.bin")), str(demo.path("build", "app-1.0.0.signed.bin"))
        demo.run(["device", "flash", dev, "--bootloader", boot, "--app", app, "--audit-log", audit], quiet=quiet)
        demo.run(["device", "boot", dev, "--audit-log", audit], quiet=quiet)
        demo.run(["device", "confirm", dev, "--audit-log", audit], quiet=quiet)
        add = ["ota", "device", "add", "--id", unit, "--model", MODEL, "--chip", CHIP, "--group", "field"]
        demo.run([*add, "--provision", dev, "--repo", str(demo.path("tuf-repo"))], quiet=quiet)
        demo.run(["device", "agent", dev, "--once", "--audit-log", audit], quiet=quiet)
    demo.say(f"{len(FLEET)} units provisioned and reporting 1.0.0 (commands of units 2-{len(FLEET)} in logs/)")
    summary = str(demo.path("device-efuse.json"))
    demo.run(["device", "efuse-summary", _unit(demo, FLEET[0]), "--out", summary])
    demo.run(["efuse", "check", summary], label="eFuse lock-down policy of unit-0001: all rules pass")


def _devices(demo: Demo) -> dict[str, str]:
    rows = demo.run_json(["ota", "device", "list"], quiet=True)
    return {str(r["id"]): str(r.get("version") or "") for r in rows}


def exposure(demo: Demo, vuln_id: str, *, stage: str) -> dict[str, Any]:
    """``medfw vuln exposure``: the units running a release that carries ``vuln_id`` open, and the fix's rollout."""
    demo.stage(stage)
    running = _devices(demo)
    argv = ["vuln", "exposure", vuln_id, "--fleet-db", f"sqlite:///{demo.path('ota.db')}"]
    doc = demo.run_json([*argv, "--db", str(demo.path("vuln.db"))])
    found = [v for v in doc.get("vulnerabilities", []) if v.get("vuln_id") == vuln_id]
    exposed = sorted({d for v in found for r in v.get("releases", []) for d in r.get("device_ids", [])})
    demo.say(
        f"{vuln_id}: {len(exposed)} of {len(running)} units exposed"
        + (f" ({', '.join(f'{u} runs {running.get(u)}' for u in exposed)})" if exposed else "")
    )
    if found and found[0].get("alert"):
        demo.say(str(found[0]["alert"]))
    return {"vuln_id": vuln_id, "running": running, "exposed": exposed, "report": found}


def _release_id(demo: Demo, version: str) -> str:
    releases = demo.run_json(["ota", "release", "list", "--sync"])
    items = releases if isinstance(releases, list) else releases.get("releases", [])
    for r in items:
        if str(r.get("version")) == version:
            return str(r.get("id") or r.get("target") or r.get("name"))
    raise DemoError(f"release {version} not found on the server: {releases}")


def _poll(demo: Demo, unit: str, *, fails: bool = False, quiet: bool = False) -> dict[str, Any]:
    """One poll-and-update cycle of ``unit``; a failing app reverts and the agent exits 1 after reporting it."""
    argv = ["device", "agent", _unit(demo, unit), "--once", "--audit-log", str(demo.path("audit.db"))]
    result: dict[str, Any] = demo.run_json([*argv, "--app-fails"] if fails else argv, quiet=quiet, expect=int(fails))
    return result


def staged_rollout(demo: Demo) -> dict[str, Any]:
    """1.1.0 to the field group: one canary first, then the rest; the last unit's app fails and reverts."""
    demo.stage("9. Staged rollout of 1.1.0: canary first, then the rest")
    rid = _release_id(demo, "1.1.0")
    create = ["ota", "rollout", "create", "--release", rid, "--group", "field", "--phases", "1,100%"]
    rollout = demo.run_json([*create, "--success-threshold", "80", "--error-threshold", "34"])
    canary, second = FLEET[0], FLEET[1]
    before = _poll(demo, second)
    demo.say(
        f"{second} polls during the canary phase: {before.get('outcome') or 'no update'} on {before.get('version')}"
    )
    results: dict[str, Any] = {canary: _poll(demo, canary)}
    demo.say(f"canary {canary}: {results[canary].get('outcome')} on {results[canary].get('version')}")
    after_canary = demo.run_json(["ota", "rollout", "status", str(rollout["id"])])
    phase = int(after_canary.get("current_phase", 1))  # 1-based, as the API reports it
    demo.say(f"rollout after the canary: {after_canary.get('state')}, phase {phase} of {len(after_canary['phases'])}")
    for unit in FLEET[1:]:
        results[unit] = _poll(demo, unit, fails=unit == FLEET[-1], quiet=unit not in (second, FLEET[-1]))
    last = results[FLEET[-1]]
    demo.say(f"{FLEET[-1]}: the new app never confirmed: {last.get('outcome')}, back on {last.get('version')}")
    final = demo.run_json(["ota", "rollout", "status", str(rollout["id"])])
    demo.run(["ota", "fleet"], label="fleet: versions across the units")
    return {
        "id": rollout["id"],
        "phases": ["1", "100%"],
        "canary": canary,
        "before_canary": {second: before},
        "results": results,
        "after_canary": after_canary,
        "final": final,
    }


def downgrade_refused(demo: Demo) -> str:
    """Installing 1.0.0 again on an updated unit is refused by the anti-rollback counter."""
    demo.stage("11. A downgrade to 1.0.0 is refused")
    dev = _unit(demo, FLEET[0])
    app = str(demo.path("build", "app-1.0.0.signed.bin"))
    demo.run(
        ["device", "update", dev, app, "--audit-log", str(demo.path("audit.db"))],
        expect=1,
        label="refused: secure_version 1 is below the unit's anti-rollback counter (2)",
    )
    if "(reason rollback)" not in demo.last_output:
        raise DemoError(f"the downgrade was refused for another reason: {demo.last_output.strip()}")
    return demo.last_output.strip()
