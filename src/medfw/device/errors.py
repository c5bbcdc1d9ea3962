"""Errors of the device model. Each carries a machine-readable ``reason`` code (also used in audit events)."""

from __future__ import annotations

from medfw.audit.sink import AuditEvent
from medfw.errors import DeviceError, VerificationError

__all__ = [
    "BootFailedError",
    "DeviceStateError",
    "EfuseWriteError",
    "RevocationRefusedError",
    "UpdateRejectedError",
]


class EfuseWriteError(DeviceError):
    """An eFuse write is impossible: it would clear a burned bit, or the field is write-protected."""

    def __init__(self, message: str, *, field: str, reason: str = "efuse_write_refused") -> None:
        super().__init__(message, field=field)
        self.reason = reason


class DeviceStateError(DeviceError):
    """The operation is not allowed in the device's current state (not flashed, app not running, …)."""

    def __init__(self, message: str, *, reason: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.reason = reason


class UpdateRejectedError(VerificationError):
    """An update image was refused before activation; the running slot is untouched."""

    def __init__(self, message: str, *, reason: str, path: str | None = None, offset: int | None = None) -> None:
        super().__init__(message, path=path, offset=offset)
        self.reason = reason


class BootFailedError(VerificationError):
    """No slot holds an image the bootloader may run: the device does not boot."""

    def __init__(self, message: str, *, reason: str, events: tuple[AuditEvent, ...] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.events = events


class RevocationRefusedError(VerificationError):
    """A key revocation was refused because it could leave the device without a verifiable image."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="slot")
        self.reason = reason
