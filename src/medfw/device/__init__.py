"""The device model: an ESP32-class unit with eFuses, flash, otadata, a verifying bootloader and A/B updates.

Public entry points: :class:`Device` (a unit kept in a directory or in memory), :class:`BootResult`,
:class:`InstallResult`, :class:`DeviceStatus`, and :func:`medfw.device.policy.check_summary` for checking a
real unit's ``espefuse summary --format json`` against a security policy.
"""

from medfw.device.bootloader import BootResult
from medfw.device.device import Device, DeviceStatus, PowerLossError
from medfw.device.errors import (
    BootFailedError,
    DeviceStateError,
    EfuseWriteError,
    RevocationRefusedError,
    UpdateRejectedError,
)
from medfw.device.ota import InstallResult

__all__ = [
    "BootFailedError",
    "BootResult",
    "Device",
    "DeviceStateError",
    "DeviceStatus",
    "EfuseWriteError",
    "InstallResult",
    "PowerLossError",
    "RevocationRefusedError",
    "UpdateRejectedError",
]
