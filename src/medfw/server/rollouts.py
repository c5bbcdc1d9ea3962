"""Rollout operations inside a unit of work: create, pause/resume/cancel, and advance/finish/pause on counts.

The pure rules are in :mod:`medfw.server.rollout`; the SQL in :mod:`medfw.server.store_rollouts`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from medfw.errors import UsageError
from medfw.server import rollout as rules
from medfw.server import store_rollouts as sql
from medfw.server.errors import Conflict, Invalid, NotFound
from medfw.server.models import Release, Rollout
from medfw.server.store import Store
from medfw.server.work import Work, now

__all__ = ["RolloutSpec", "control", "create", "decision", "evaluate"]


@dataclass(frozen=True)
class RolloutSpec:
    """What to roll out and to whom."""

    release: str | int
    name: str | None = None
    group: str | None = None
    devices: Sequence[str] | None = None
    version: str | None = None
    phases: Sequence[str] = ("10%", "100%")
    success_threshold: int = 90
    error_threshold: int = 10


def create(w: Work, spec: RolloutSpec, *, actor: str) -> int:
    """Create and start a rollout; return its id.

    Raises:
        Invalid: bad phases or thresholds, or no device matches.
        NotFound: unknown release.
        Conflict: a targeted device is in another active rollout.
    """
    try:
        specs = rules.parse_phases(list(spec.phases))
    except UsageError as e:
        raise Invalid(e.message, field="phases") from None
    for what, value in (("success_threshold", spec.success_threshold), ("error_threshold", spec.error_threshold)):
        if not 1 <= value <= 100:
            raise Invalid(f"{what} must be 1..100", field=what)
    s = w.session
    sql.lock_rollout_creation(s)  # one creation at a time: the busy check below then sees every other rollout
    rel = Store.release(s, spec.release)
    if rel is None:
        raise NotFound(f"no release {spec.release}", field="release")
    devices = sql.targets(s, model=rel.model, group=spec.group, devices=spec.devices, version=spec.version)
    if not devices:
        raise Invalid("no registered device of this model matches the rollout target", field="target")
    busy = sql.busy_devices(s, [d.id for d in devices])
    if busy:
        raise Conflict(f"{len(busy)} device(s) are in another active rollout", field="target")
    when = now()
    ro = Rollout(
        name=spec.name or rel.target_path,
        release_id=rel.id,
        target={"group": spec.group, "devices": list(spec.devices or []), "version": spec.version, "model": rel.model},
        phases=specs,
        success_threshold=spec.success_threshold,
        error_threshold=spec.error_threshold,
        state=rules.RolloutState.RUNNING.value,
        current_phase=0,
        created=when,
        updated=when,
    )
    s.add(ro)
    s.flush()
    rows = []
    start = 0
    for phase, size in enumerate(rules.phase_sizes(specs, len(devices))):
        for dev in devices[start : start + size]:
            why = _ineligible(dev.model, dev.secure_version, rel)
            state = "skipped" if why else ("pending" if phase == 0 else "waiting")
            row = {"rollout_id": ro.id, "device_id": dev.id, "phase": phase, "state": state, "reason": why}
            rows.append({**row, "updated": when})
        start += size
    sql.add_assignments(s, rows)
    evaluate(w, ro)
    w.moved = True
    w.audit(
        "rollout.change",
        "success",
        actor,
        objects={"rollout": str(ro.id), "release": rel.target_path, "release_sha256": rel.sha256},
        data={
            "action": "create",
            "devices": len(devices),
            "phases": specs,
            "success": spec.success_threshold,
            "error": spec.error_threshold,
        },
    )
    return ro.id


def _ineligible(device_model: str, device_secure_version: int, rel: Release) -> str | None:
    return rules.ineligibility(
        device_model=device_model,
        device_secure_version=device_secure_version,
        release_model=rel.model,
        release_secure_version=rel.secure_version,
    )


_ACTIONS = {
    "pause": ({rules.RolloutState.RUNNING}, rules.RolloutState.PAUSED),
    "resume": ({rules.RolloutState.PAUSED}, rules.RolloutState.RUNNING),
    "cancel": ({rules.RolloutState.RUNNING, rules.RolloutState.PAUSED}, rules.RolloutState.CANCELLED),
}


def control(w: Work, rollout_id: int, action: str, *, actor: str) -> None:
    """``pause``, ``resume`` or ``cancel`` a rollout.

    Raises:
        NotFound: unknown action or rollout.
        Conflict: the rollout is not in a state the action applies to.
    """
    if action not in _ACTIONS:
        raise NotFound(f"unknown rollout action {action!r}")
    sources, target = _ACTIONS[action]
    s = w.session
    ro = sql.rollout(s, rollout_id, lock=True)
    if ro is None:
        raise NotFound(f"no rollout {rollout_id}")
    if ro.state not in sources:
        raise Conflict(f"cannot {action} a {ro.state} rollout", field="state")
    data: dict[str, object] = {"action": action}
    if target is rules.RolloutState.RUNNING and (ro.state_reason or "").startswith("error_threshold"):
        # resuming after an automatic pause acknowledges the failures so far: they stop counting toward the
        # thresholds (otherwise the rollout would pause again at once)
        ro.acknowledged_failures = sql.phase_counts(s, ro).failed
        data["acknowledged_failures"] = ro.acknowledged_failures
    ro.state = target.value
    ro.state_reason = f"{action}d by {actor}" if action != "cancel" else f"cancelled by {actor}"
    ro.updated = now()
    if target is rules.RolloutState.CANCELLED:
        sql.cancel_unstarted(s, rollout_id, ro.updated)
    w.moved = True
    w.audit("rollout.change", "success", actor, objects={"rollout": str(rollout_id)}, data=data)
    if target is rules.RolloutState.RUNNING:
        evaluate(w, ro)


def _acknowledged(counts: rules.PhaseCounts, acknowledged: int) -> rules.PhaseCounts:
    """Counts without the failures an operator acknowledged by resuming (they count like skipped devices)."""
    n = min(acknowledged, counts.failed)
    return replace(counts, failed=counts.failed - n, skipped=counts.skipped + n)


def decision(ro: Any, counts: rules.PhaseCounts) -> rules.Decision:
    """What a rollout's counts call for (``ro``: a rollout row or anything with its thresholds, phases, current
    phase and acknowledged failures); :attr:`~rules.Decision.WAIT` unless it is running."""
    if ro.state != rules.RolloutState.RUNNING:
        return rules.Decision.WAIT
    return rules.decide(
        _acknowledged(counts, ro.acknowledged_failures or 0),
        success_threshold=ro.success_threshold,
        error_threshold=ro.error_threshold,
        last_phase=ro.current_phase >= len(ro.phases) - 1,
    )


def evaluate(w: Work, ro: Rollout) -> None:
    """Advance, finish or pause a running rollout according to its counts (inside the unit of work)."""
    s = w.session
    while ro.state == rules.RolloutState.RUNNING:
        found = sql.phase_counts(s, ro)
        step = decision(ro, found)
        counts = _acknowledged(found, ro.acknowledged_failures or 0)
        if step is rules.Decision.WAIT:
            return
        ro.updated = now()
        w.moved = True
        objects = {"rollout": str(ro.id)}
        if step is rules.Decision.PAUSE:
            ro.state = rules.RolloutState.PAUSED.value
            ro.state_reason = f"error_threshold: {counts.failed}/{counts.considered} devices failed"
            data = {"action": "pause", "failed": counts.failed, "considered": counts.considered}
            w.audit(
                "rollout.change",
                "denied",
                "server",
                reason="error_threshold",
                objects=objects,
                data={**data, "phase": ro.current_phase + 1},
            )
            return
        if step is rules.Decision.FINISH:
            if sql.updated_devices(s, ro.id):
                ro.state = rules.RolloutState.FINISHED.value
                ro.state_reason = "success_threshold reached in the last phase"
            else:
                ro.state = rules.RolloutState.NOTHING_TO_DO.value
                ro.state_reason = "no device needed this release (all skipped or already on it)"
            data = {"action": "finish", "state": ro.state}
            w.audit("rollout.change", "success", "server", objects=objects, data=data)
            return
        ro.current_phase += 1
        sql.start_phase(s, ro.id, ro.current_phase, ro.updated)
        data = {"action": "advance", "phase": ro.current_phase + 1}
        w.audit("rollout.change", "success", "server", objects=objects, data=data)
