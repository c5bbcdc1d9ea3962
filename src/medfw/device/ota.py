"""The app side of an A/B update, as ESP-IDF's ``esp_ota_ops.c`` does it: install, confirm, revert, revoke.

* :func:`install` checks the new image (signature against the eFuse digests, chip, secure_version ≥ counter)
  before touching flash, writes it into the inactive slot sector by sector, reads it back and checks it again,
  and only then activates it: one otadata write of a NEW entry with the next ``ota_seq`` into the copy that is
  not active. A refusal or a power cut before that write leaves the running slot selected.
* :func:`confirm` marks the running entry VALID and only then burns the anti-rollback counter
  (``esp_ota_mark_app_valid_cancel_rollback``); a power loss between the two is repaired by the bootloader.
* :func:`mark_invalid` marks the running entry INVALID when a rollback target exists
  (``esp_ota_mark_app_invalid_rollback``).
* :func:`revoke_key` is ESP-IDF's conservative revocation (``esp_ota_revoke_secure_boot_public_key``): only from
  a VALID running app, and only if the running app and the bootloader still verify without that key.

Events are appended to the ``events`` list given; errors carry a reason code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medfw.audit.sink import AuditEvent
from medfw.device.bootloader import BootConfig, read_otadata, write_otadata
from medfw.device.efuse import Efuses
from medfw.device.errors import DeviceStateError, RevocationRefusedError, UpdateRejectedError
from medfw.device.flash import Flash
from medfw.device.otadata import OtaEntry, OtaState, active_copy, next_seq
from medfw.device.partitions import PARTITION_TABLE_OFFSET
from medfw.device.verify import CheckReason, ImageCheck, check_image

__all__ = ["InstallResult", "confirm", "install", "mark_invalid", "revoke_key", "running_entry"]

ACTOR = "app"


@dataclass(frozen=True)
class InstallResult:
    """The outcome of :func:`medfw.device.Device.install_update`.

    Attributes:
        slot: the slot written (the inactive one).
        version / secure_version: of the new image.
        image_sha256: SHA-256 of the signed image.
        sector_writes: flash sector writes done by this install (image sectors + the otadata write).
        activated: otadata now selects the new slot (state NEW: the next boot is a trial boot).
        interrupted: power was cut; ``torn`` tells whether the last sector write was left half done.
        seq: the ``ota_seq`` written when activated.
    """

    slot: int
    version: str | None
    secure_version: int | None
    image_sha256: str | None
    sector_writes: int
    activated: bool
    interrupted: bool = False
    torn: bool = False
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "slot": self.slot,
            "partition": f"ota_{self.slot}",
            "version": self.version,
            "secure_version": self.secure_version,
            "image_sha256": self.image_sha256,
            "sector_writes": self.sector_writes,
            "activated": self.activated,
            "interrupted": self.interrupted,
            "torn": self.torn,
            "seq": self.seq,
        }


def _event(
    events: list[AuditEvent], type_: str, outcome: str, reason: str, objects: dict[str, str], **data: Any
) -> None:
    events.append(AuditEvent(type_, outcome, reason, ACTOR, objects, data))


def running_entry(flash: Flash, cfg: BootConfig, running_slot: int) -> tuple[int, OtaEntry]:
    """Return (copy, entry) of the active otadata entry, which must select the running slot.

    Raises:
        DeviceStateError: otadata does not select the running slot.
    """
    entries = read_otadata(flash, cfg.table)
    copy = active_copy(entries)
    if copy is None or entries[copy].slot != running_slot:
        raise DeviceStateError("otadata does not select the running slot", reason="otadata_mismatch")
    return copy, entries[copy]


def _check_slot(flash: Flash, efuses: Efuses, cfg: BootConfig, slot: int, *, counter: int | None) -> ImageCheck:
    part = cfg.table.app_slot(slot)
    return check_image(
        flash.read(part.offset, part.size), chip=cfg.chip, efuses=efuses, counter=counter, counter_bits=cfg.counter_bits
    )


def install(
    flash: Flash, efuses: Efuses, cfg: BootConfig, running_slot: int, image: bytes, *, events: list[AuditEvent]
) -> InstallResult:
    """Write ``image`` into the inactive slot and activate it.

    Raises:
        DeviceStateError: the running app is still PENDING_VERIFY (confirm or revert it first).
        UpdateRejectedError: the image is refused (reason ``too_large``, ``bad_signature``, ``rollback``, …);
            the running slot stays selected.
        PowerLoss: an armed power cut fired (the caller reports it).
    """
    copy, current = running_entry(flash, cfg, running_slot)
    if current.state == OtaState.PENDING_VERIFY:
        raise DeviceStateError(
            "the running app is still on its trial boot: confirm or revert it before installing",
            reason="running_image_unconfirmed",
        )
    target = 1 - running_slot
    part = cfg.table.app_slot(target)
    counter = efuses.secure_version(cfg.counter_bits)

    def reject(check: ImageCheck, stage: str) -> UpdateRejectedError:
        objects = {"image_sha256": check.sha256} if check.sha256 else {}
        _event(events, "ota.install.rejected", "denied", check.reason, objects, stage=stage, message=check.message)
        return UpdateRejectedError(
            f"update refused ({stage}): {check.message}", reason=check.reason, offset=check.offset
        )

    if len(image) > part.size:
        too_large = ImageCheck(
            False, CheckReason.TOO_LARGE, f"image of {len(image)} bytes exceeds the {part.size}-byte slot"
        )
        raise reject(too_large, "before_write")
    pre = check_image(image, chip=cfg.chip, efuses=efuses, counter=counter, counter_bits=cfg.counter_bits)
    if not pre.ok:
        raise reject(pre, "before_write")
    start = flash.sector_writes
    flash.write(part.offset, image[: pre.length])
    post = _check_slot(flash, efuses, cfg, target, counter=counter)
    if not post.ok or post.sha256 != pre.sha256:
        raise reject(
            post if not post.ok else ImageCheck(False, CheckReason.READBACK_MISMATCH, "flash read-back differs"),
            "after_write",
        )
    entries = read_otadata(flash, cfg.table)
    new_copy = copy ^ 1
    entry = OtaEntry.make(next_seq(current.seq, target), OtaState.NEW, entries[new_copy].label)
    write_otadata(flash, cfg.table, new_copy, entry)
    objects = {"image_sha256": pre.sha256} if pre.sha256 else {}
    _event(
        events,
        "ota.install",
        "success",
        "activated",
        objects,
        slot=target,
        seq=entry.seq,
        version=pre.version,
        secure_version=pre.secure_version,
    )
    return InstallResult(
        slot=target,
        version=pre.version,
        secure_version=pre.secure_version,
        image_sha256=pre.sha256,
        sector_writes=flash.sector_writes - start,
        activated=True,
        seq=entry.seq,
    )


def confirm(
    flash: Flash, efuses: Efuses, cfg: BootConfig, running_slot: int, *, events: list[AuditEvent], burn: bool = True
) -> int:
    """Mark the running app VALID, then advance the anti-rollback counter to its secure_version.

    Args:
        burn: False models a power loss after the otadata write and before the eFuse burn.

    Returns:
        The counter afterwards.
    """
    copy, entry = running_entry(flash, cfg, running_slot)
    check = _check_slot(flash, efuses, cfg, running_slot, counter=None)
    objects = {"image_sha256": check.sha256} if check.sha256 else {}
    if entry.state != OtaState.VALID:
        write_otadata(flash, cfg.table, copy, entry.with_state(OtaState.VALID))
        _event(events, "ota.confirm", "success", "app_confirmed", objects, slot=running_slot, seq=entry.seq)
    if burn and check.secure_version is not None:
        before = efuses.secure_version(cfg.counter_bits)
        if efuses.burn_secure_version(check.secure_version, cfg.counter_bits):
            after = efuses.secure_version(cfg.counter_bits)
            _event(events, "security.svn.increment", "success", "confirmed", objects, before=before, after=after)
    return efuses.secure_version(cfg.counter_bits)


def mark_invalid(flash: Flash, efuses: Efuses, cfg: BootConfig, running_slot: int, *, events: list[AuditEvent]) -> None:
    """Mark the running entry INVALID so the next boot rolls back.

    Raises:
        DeviceStateError: no rollback target (the other slot has no valid otadata entry or image).
    """
    copy, entry = running_entry(flash, cfg, running_slot)
    other = read_otadata(flash, cfg.table)[copy ^ 1]
    check = _check_slot(flash, efuses, cfg, 1 - running_slot, counter=efuses.secure_version(cfg.counter_bits))
    if not (other.valid and other.slot != running_slot and check.ok):
        _event(events, "ota.revert", "denied", "rollback_impossible", {}, slot=running_slot)
        raise DeviceStateError(
            "no rollback target: the other slot has no valid, bootable image", reason="rollback_impossible"
        )
    write_otadata(flash, cfg.table, copy, entry.with_state(OtaState.INVALID))
    _event(events, "ota.revert", "success", "app_request", {}, slot=running_slot, seq=entry.seq)


def revoke_key(
    flash: Flash, efuses: Efuses, cfg: BootConfig, running_slot: int, index: int, *, events: list[AuditEvent]
) -> None:
    """Burn ``SECURE_BOOT_KEY_REVOKE<index>`` if the device still boots without that key.

    Raises:
        RevocationRefusedError: not supported on the chip, secure boot off, running app not VALID, slot empty
            or out of range, or the running app or bootloader verifies only with that key.
    """

    def refuse(message: str, reason: str) -> RevocationRefusedError:
        _event(events, "key.revoke", "denied", reason, {}, slot=index)
        return RevocationRefusedError(message, reason=reason)

    if not cfg.chip.can_revoke:
        raise refuse(f"{cfg.chip.name} has no key revocation eFuses", "not_supported")
    if not efuses.secure_boot_enabled:
        raise refuse("secure boot is not enabled", "secure_boot_disabled")
    slots = efuses.key_slots()
    if not 0 <= index < len(slots) or slots[index].digest is None:
        raise refuse(f"key slot {index} holds no digest", "empty_slot")
    if slots[index].revoked:
        raise refuse(f"key slot {index} is already revoked", "already_revoked")
    _copy, entry = running_entry(flash, cfg, running_slot)
    if entry.state != OtaState.VALID:
        raise refuse("the running app must be confirmed (VALID) before a key is revoked", "running_image_not_valid")
    trial = efuses.copy()
    trial.revoke_digest(index)
    app = _check_slot(flash, trial, cfg, running_slot, counter=None)
    start = cfg.chip.bootloader_offset
    boot = check_image(flash.read(start, PARTITION_TABLE_OFFSET - start), chip=cfg.chip, efuses=trial, counter=None)
    for name, check in (("running app", app), ("bootloader", boot)):
        if not check.ok:
            raise refuse(f"the {name} does not verify without key slot {index}: {check.message}", "no_other_key")
    efuses.revoke_digest(index)
    digest = slots[index].digest
    _event(events, "key.revoke", "success", "conservative", {"key_digest": digest.hex() if digest else ""}, slot=index)
