"""The agent's view of a :class:`medfw.device.Device`: running state, install, reboot, confirm, watchdog reset."""

from __future__ import annotations

from pathlib import Path

from medfw.device import Device, UpdateRejectedError
from medfw.device.clinical import Permission
from medfw.device.state import PowerState
from medfw.update.agent import DeviceState, RejectReason

__all__ = ["ModelDevice", "TrustedModelDevice"]


class ModelDevice:
    """Adapts the device model to :class:`medfw.update.agent.DevicePort`.

    A unit that is powered off (or whose app crashed) is booted before its state is read, as a real unit's agent
    only runs once the app is up.
    """

    def __init__(self, device: Device) -> None:
        self.device = device

    def _running(self) -> None:
        if self.device.power is not PowerState.RUNNING or self.device.running_slot is None:
            self.device.boot()

    def state(self) -> DeviceState:
        """Version, secure_version and slot of the running app."""
        self._running()
        slot = self.device.running_slot
        assert slot is not None
        info = self.device.status().slots[slot]
        version = info.get("version")
        svn = info.get("secure_version")
        return DeviceState(
            version=str(version) if version is not None else None,
            secure_version=int(svn) if isinstance(svn, int) else 0,
            slot=f"ota_{slot}",
        )

    def install(self, image: bytes) -> None:
        """Verify and write into the inactive slot; refusals raise with the device's reason."""
        self._running()
        result = self.device.install_update(image)
        if not result.activated:
            raise UpdateRejectedError(
                "the update was not activated (interrupted)", reason=RejectReason.INSTALL_INTERRUPTED
            )

    def reboot(self) -> DeviceState:
        """Reset; the bootloader picks the slot (a freshly installed image boots on trial)."""
        self.device.boot()
        return self.state()

    def confirm(self) -> DeviceState:
        """The new app is healthy: mark it valid (the anti-rollback counter advances)."""
        self.device.confirm()
        return self.state()

    def watchdog_reset(self) -> DeviceState:
        """The new app never confirmed: the watchdog resets and the bootloader reverts the trial image."""
        self.device.boot()
        return self.state()


class TrustedModelDevice(ModelDevice):
    """The device model's port with the hooks of a trusted unit: install permission (busy / on-device approval),
    eFuse key slots and counter (for signed claims), key rotation steps, and its own audit log."""

    def install_permission(self, target: str, *, approval_required: bool) -> str | None:
        """``None`` when the install may go ahead, else the deferral reason (``device_busy``, ``awaiting_approval``)."""
        perm = self.device.install_permission(target, approval_required=approval_required)
        return None if perm is Permission.GRANTED else perm.value

    def key_slots(self) -> list[dict[str, object]]:
        """The Secure Boot digest slots: index, digest (hex) and whether revoked."""
        return [
            {"slot": s.index, "digest": s.digest.hex() if s.digest else None, "revoked": s.revoked}
            for s in self.device.efuse.key_slots()
        ]

    def efuse_counter(self) -> int:
        """The anti-rollback counter."""
        return self.device.efuse.secure_version(self.device.counter_bits)

    def add_key_digest(self, digest: bytes) -> int:
        """Burn a new key digest into a free slot (the running app must be up)."""
        self._running()
        return self.device.add_key_digest(digest)

    #: fault injection for tests and demos: ``before_burn`` / ``after_burn`` cuts the power at the next revocation
    power_cut_on_revoke: str | None = None

    def revoke_key(self, slot: int) -> None:
        """Revoke a digest slot the conservative way (the unit refuses when it would not boot without it)."""
        self._running()
        cut, self.power_cut_on_revoke = self.power_cut_on_revoke, None
        self.device.revoke_key(slot, power_cut=cut)

    def own_log_path(self) -> Path | None:
        """The unit's own audit log."""
        return self.device.own_log_path
