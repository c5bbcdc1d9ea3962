"""The anti-rollback and update-path scenario run on the device model at bundle build time.

Pure: bytes in, a JSON-ready result out (the device lives in memory). Given the release's key digests, its
signed bootloader and app image (and optionally the image it replaces), :func:`run_update_path`:

1. provisions a unit with the key digests (unused digest slots and the release's revoked slots revoked,
   Secure Boot, JTAG and ROM-download locks burned), factory-flashes the previous image (or the app itself)
   and boots and confirms it;
2. installs the app into the inactive slot, boots it (trial boot), confirms it, and checks that the eFuse
   anti-rollback counter then equals the app's ``secure_version``;
3. with a previous image: offers it again after the confirm and checks it is refused as a downgrade;
4. on a copy of the unit from before the update, installs the app, lets the app fail before confirming, and
   checks the next boot reverts to the old slot with the counter unchanged;
5. sweeps a deterministic sample of power cuts over the install (each cut point once clean and, alternately,
   with the interrupted sector write torn), and checks every unit boots a verified image afterwards.

Every step's numbers are recorded; ``ok`` is true only when every expectation holds. A failure of the model
itself (a step raising) is recorded as a failed step, never swallowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medfw.audit.sink import MemorySink
from medfw.device import BootFailedError, Device, UpdateRejectedError
from medfw.errors import MedfwError

__all__ = ["DEFAULT_POWER_CUT_SAMPLES", "UpdatePathRun", "run_update_path", "sample_points"]

DEFAULT_POWER_CUT_SAMPLES = 24


@dataclass(frozen=True)
class UpdatePathRun:
    """What :func:`run_update_path` produced.

    Attributes:
        result: the JSON-ready scenario record (``ok``, ``steps``, ``power_cut``, …).
        efuse_summary: the simulated unit's eFuses after the update was confirmed, in the shape of
            ``espefuse summary --format json`` (empty when provisioning itself failed).
    """

    result: dict[str, Any]
    efuse_summary: dict[str, Any] = field(default_factory=dict)


def sample_points(total: int, samples: int) -> list[int]:
    """Return up to ``samples`` distinct cut points in ``0..total-1``, evenly spread, always with both ends."""
    if total <= 0 or samples <= 0:
        return []
    if samples >= total:
        return list(range(total))
    if samples == 1:
        return [0]
    step = (total - 1) / (samples - 1)
    return sorted({round(i * step) for i in range(samples)})


def _step(steps: list[dict[str, Any]], name: str, ok: bool, **data: Any) -> bool:
    steps.append({"step": name, "ok": ok, **data})
    return ok


def run_update_path(
    *,
    chip: str,
    key_digests: Sequence[bytes],
    bootloader: bytes,
    app: bytes,
    app_secure_version: int,
    previous: bytes | None = None,
    revoked_slots: Sequence[int] = (),
    secure_version_bits: int = 16,
    flash_encryption: bool = True,
    power_cut_samples: int = DEFAULT_POWER_CUT_SAMPLES,
) -> UpdatePathRun:
    """Run the update-path scenario (see the module docstring).

    Args:
        flash_encryption: provision the unit with flash encryption on, as a production unit is.
    """
    steps: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "chip": chip,
        "secure_version_bits": secure_version_bits,
        "app_secure_version": app_secure_version,
        "previous_image": previous is not None,
        "steps": steps,
    }
    sink = MemorySink()
    summary: dict[str, Any] = {}
    try:
        device = Device.in_memory(
            chip=chip,
            key_digests=list(key_digests),
            secure_version_bits=secure_version_bits,
            flash_encryption=flash_encryption,
            audit=sink,
        )
        for slot in revoked_slots:
            if not device.efuse.key_slots()[slot].revoked:
                device.efuse.revoke_digest(slot)
        device.flash(bootloader, previous if previous is not None else app)
        factory = device.boot(confirm=True)
        _step(
            steps,
            "factory_boot",
            True,
            slot=factory.slot,
            version=factory.version,
            secure_version=factory.secure_version,
            counter=factory.counter,
        )
        before_update = device.clone()

        install = device.install_update(app)
        _step(steps, "install", install.activated, **install.to_dict())
        trial = device.boot()
        _step(
            steps,
            "trial_boot",
            trial.slot == install.slot and trial.reason == "trial_boot",
            slot=trial.slot,
            reason=trial.reason,
            state=trial.state,
            version=trial.version,
            counter_before_confirm=trial.counter,
        )
        counter = device.confirm()
        _step(
            steps,
            "confirm",
            counter == app_secure_version,
            counter=counter,
            expected=app_secure_version,
            running_slot=device.running_slot,
        )
        result["counter_after_confirm"] = counter
        summary = device.efuse.to_espefuse_summary()

        if previous is not None:
            try:
                device.install_update(previous)
            except UpdateRejectedError as e:
                refused = e.reason == "rollback"
                _step(steps, "downgrade_refused", refused, reason=e.reason, message=e.message, counter=counter)
                result["downgrade_refused"] = refused
            else:
                _step(steps, "downgrade_refused", False, reason="installed", counter=counter)
                result["downgrade_refused"] = False

        revert = before_update.clone(audit=sink)
        old_slot = revert.running_slot
        old_counter = revert.efuse.secure_version(secure_version_bits)
        tried = revert.install_update(app)
        failed_boot = revert.boot(app_fails=True)
        after = revert.boot()
        _step(
            steps,
            "unconfirmed_boot_reverts",
            failed_boot.slot == tried.slot and after.slot == old_slot and after.counter == old_counter,
            trial_slot=failed_boot.slot,
            slot_after_reboot=after.slot,
            reason=after.reason,
            reverted=after.reverted,
            counter_before=old_counter,
            counter_after=after.counter,
        )

        result["power_cut"] = _power_cut_sweep(before_update, app, install.sector_writes, power_cut_samples)
        _step(
            steps,
            "power_cut_sweep",
            result["power_cut"]["bootable"] == result["power_cut"]["tried"],
            tried=result["power_cut"]["tried"],
            bootable=result["power_cut"]["bootable"],
            of_sector_writes=install.sector_writes,
        )
    except MedfwError as e:
        _step(steps, "model_error", False, error=e.diagnostics(), reason=getattr(e, "reason", None))
    result["ok"] = bool(steps) and all(s["ok"] for s in steps)
    result["audit_events"] = len(sink.events)
    return UpdatePathRun(result, summary)


def _power_cut_sweep(base: Device, app: bytes, total: int, samples: int) -> dict[str, Any]:
    points = sample_points(total, samples)
    outcomes: list[dict[str, Any]] = []
    bootable = 0
    for i, after in enumerate(points):
        torn = i % 2 == 1
        unit = base.clone()
        res = unit.install_update(app, power_cut_after=after, torn=torn)
        entry: dict[str, Any] = {"cut_after": after, "torn": torn, "interrupted": res.interrupted}
        try:
            boot = unit.boot()
        except BootFailedError as e:
            entry.update(boots=False, reason=e.reason)
        else:
            bootable += 1
            entry.update(boots=True, slot=boot.slot, version=boot.version, reason=boot.reason)
        outcomes.append(entry)
    return {"sector_writes": total, "tried": len(points), "bootable": bootable, "points": outcomes}
