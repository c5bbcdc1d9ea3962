"""The unit's clinical state, new key digests and its own audit log — the part of the device model the trusted
fleet needs (mixed into :class:`medfw.device.Device`)."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING

from medfw.audit.sink import AuditEvent, AuditSink
from medfw.device import ota
from medfw.device.clinical import ClinicalState, Permission
from medfw.device.errors import EfuseWriteError
from medfw.device.trail import TeeSink, open_own_log

if TYPE_CHECKING:
    from collections.abc import Iterable

    from medfw.device.efuse import Efuses

__all__ = ["UnitMixin"]


class UnitMixin(abc.ABC):
    """Busy/approve state, adding a key digest, and the unit's own audit log.

    The class that mixes it in provides the attributes below and the two persistence hooks.
    """

    audit: AuditSink
    clinical: ClinicalState
    directory: Path | None
    efuse: Efuses

    @abc.abstractmethod
    def _record(self, events: Iterable[AuditEvent]) -> None:
        """Send ``events`` to the unit's audit sink."""

    @abc.abstractmethod
    def _save(self) -> None:
        """Persist the unit's state (a no-op for an in-memory unit)."""

    def attach_own_log(self, path: str | Path) -> None:
        """Record every later event also in the unit's own audit log at ``path`` (in-memory units)."""
        if not isinstance(self.audit, TeeSink):
            self.audit = open_own_log(Path(path), self.audit)

    @property
    def own_log_path(self) -> Path | None:
        """The unit's own audit log, when it has one."""
        if isinstance(self.audit, TeeSink):
            return Path(self.audit.own.location)
        return None

    def close(self) -> None:
        """Close the unit's own audit log (if any)."""
        if isinstance(self.audit, TeeSink):
            self.audit.close()
            self.audit = self.audit.other

    # -- clinical state and key slots -----------------------------------------------------------------------

    def set_busy(self, busy: bool) -> None:
        """Therapy starts (``True``) or ends: a busy unit defers every install."""
        self.clinical.set_busy(busy, self.audit)
        self.clinical.save(self.directory)

    def approve(self, target: str) -> None:
        """The user approves installing release ``target`` (TUF target path) on this unit."""
        self.clinical.approve(target, self.audit)
        self.clinical.save(self.directory)

    def install_permission(self, target: str, *, approval_required: bool = False) -> Permission:
        """The install-permission hook: may ``target`` be installed now?"""
        return self.clinical.install_permission(target, approval_required=approval_required)

    def add_key_digest(self, digest: bytes) -> int:
        """Burn a new Secure Boot key digest into a free slot (key rotation); return its slot.

        A digest already burned and not revoked is not burned again (its slot is returned).

        Raises:
            EfuseWriteError: no free, writable digest slot on this unit (``no_free_slot``).
        """
        for s in self.efuse.key_slots():
            if s.digest == digest and not s.revoked:
                return s.index
        try:
            index = self.efuse.burn_key_digest(digest)
        except EfuseWriteError as e:
            self._record([AuditEvent("efuse.burn", "denied", "no_free_slot", ota.ACTOR, {"key_digest": digest.hex()})])
            self._save()
            raise EfuseWriteError(e.message, field=e.field or "KEY_PURPOSE", reason="no_free_slot") from None
        self._record(
            [
                AuditEvent(
                    "efuse.burn",
                    "success",
                    "key_digest_added",
                    ota.ACTOR,
                    {"key_digest": digest.hex()},
                    {"slot": index},
                )
            ]
        )
        self._save()
        return index
