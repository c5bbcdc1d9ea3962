"""The agent's view of a :class:`medfw.device.Device`: running state, install, reboot, confirm, watchdog reset."""

from __future__ import annotations

from medfw.device import Device, UpdateRejectedError
from medfw.device.device import POWER_RUNNING
from medfw.update.agent import DeviceState

__all__ = ["ModelDevice"]


class ModelDevice:
    """Adapts the device model to :class:`medfw.update.agent.DevicePort`.

    A unit that is powered off (or whose app crashed) is booted before its state is read, as a real unit's agent
    only runs once the app is up.
    """

    def __init__(self, device: Device) -> None:
        self.device = device

    def _running(self) -> None:
        if self.device.power != POWER_RUNNING or self.device.running_slot is None:
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
            raise UpdateRejectedError("the update was not activated (interrupted)", reason="install_interrupted")

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
