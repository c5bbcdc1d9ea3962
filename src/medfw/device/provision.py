"""Factory provisioning of a simulated unit: key digests burned and write-protected, unused digest slots
revoked, Secure Boot v2 on, JTAG and ROM download off, optionally flash encryption and the SHA-384 enable bit;
a blank flash holding only the partition table. Pure: returns the eFuses, flash and the audit events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medfw.audit.sink import AuditEvent
from medfw.device.chips import ChipSpec
from medfw.device.efuse import Efuses
from medfw.device.flash import SECTOR_SIZE, Flash
from medfw.device.partitions import PARTITION_TABLE_OFFSET, PartitionTable
from medfw.errors import DeviceError

__all__ = ["Provisioned", "factory_program", "provision"]


@dataclass(frozen=True)
class Provisioned:
    """A freshly provisioned unit's eFuses and flash, its counter width, and what was burned."""

    efuses: Efuses
    flash: Flash
    counter_bits: int
    events: tuple[AuditEvent, ...]


def _counter_bits(spec: ChipSpec, secure_version_bits: int | None) -> int:
    if secure_version_bits is None:  # ESP-IDF's default width, or the whole field where it is narrower
        secure_version_bits = min(16, spec.secure_version_field_bits)
    if not 1 <= secure_version_bits <= spec.secure_version_field_bits:
        raise DeviceError(
            f"secure_version_bits must be 1..{spec.secure_version_field_bits} on {spec.name}",
            field="secure_version_bits",
        )
    return secure_version_bits


def provision(
    spec: ChipSpec,
    key_digests: Sequence[bytes],
    *,
    secure_version_bits: int | None,
    flash_size: int,
    slot_size: int,
    flash_encryption: bool,
    revoke_unused_slots: bool,
    sha384: bool,
) -> Provisioned:
    """Provision a unit of chip ``spec`` (see :meth:`medfw.device.Device.init` for the arguments).

    Raises:
        DeviceError: bad counter width, no or too many key digests, or a flash too small for the table.
    """
    counter_bits = _counter_bits(spec, secure_version_bits)
    if not key_digests:
        raise DeviceError("at least one secure boot key digest is required", field="key_digest")
    if len(key_digests) > spec.digest_slots:
        raise DeviceError(f"{spec.name} holds at most {spec.digest_slots} key digests", field="key_digest")
    table = PartitionTable.default(slot_size)
    if table.end > flash_size or flash_size % SECTOR_SIZE:
        raise DeviceError(f"flash of {flash_size} bytes cannot hold the partition table", field="flash_size")
    efuses = Efuses(spec)
    events: list[AuditEvent] = []
    for digest in key_digests:
        index = efuses.burn_key_digest(bytes(digest))
        events.append(
            AuditEvent(
                "efuse.burn", "success", "key_digest", "provisioning", {"key_digest": digest.hex()}, {"slot": index}
            )
        )
    if revoke_unused_slots and spec.can_revoke:
        for slot in efuses.key_slots():
            if slot.digest is None:
                efuses.revoke_digest(slot.index)
                events.append(
                    AuditEvent("efuse.burn", "success", "revoke_unused_slot", "provisioning", {}, {"slot": slot.index})
                )
    if sha384:
        efuses.enable_sha384()
        events.append(AuditEvent("efuse.burn", "success", "sha384_enable", "provisioning"))
    efuses.enable_secure_boot()
    efuses.disable_jtag()
    efuses.disable_download_mode()
    locks = ["secure_boot", "jtag_disable", "download_mode_disable"]
    if flash_encryption:
        efuses.enable_flash_encryption()
        locks.append("flash_encryption")
    events.extend(AuditEvent("efuse.burn", "success", lock, "provisioning") for lock in locks)
    flash = Flash.erased(flash_size)
    flash.write(PARTITION_TABLE_OFFSET, table.to_bytes())
    return Provisioned(efuses, flash, counter_bits, tuple(events))


def factory_program(flash: Flash, table: PartitionTable, bootloader_offset: int, bootloader: bytes, app: bytes) -> None:
    """Write the bootloader at ``bootloader_offset`` and ``app`` into ota_0; erase otadata and ota_1.

    Raises:
        DeviceError: an image does not fit its region.
    """
    start = bootloader_offset
    if len(bootloader) > PARTITION_TABLE_OFFSET - start:
        raise DeviceError(
            f"bootloader of {len(bootloader)} bytes exceeds the {PARTITION_TABLE_OFFSET - start}-byte region",
            field="bootloader",
        )
    slot0, slot1 = table.app_slot(0), table.app_slot(1)
    if len(app) > slot0.size:
        raise DeviceError(f"app of {len(app)} bytes exceeds the {slot0.size}-byte slot", field="app")
    flash.data[start:PARTITION_TABLE_OFFSET] = b"\xff" * (PARTITION_TABLE_OFFSET - start)
    flash.data[slot0.offset : slot1.end] = b"\xff" * (slot1.end - slot0.offset)
    otadata = table.otadata
    flash.data[otadata.offset : otadata.end] = b"\xff" * otadata.size
    flash.data[start : start + len(bootloader)] = bootloader
    flash.data[slot0.offset : slot0.offset + len(app)] = app
    flash.dirty = True
