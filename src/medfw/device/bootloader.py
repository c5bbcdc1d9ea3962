"""The second-stage bootloader: verify the chain, pick the slot from otadata, roll back, advance anti-rollback.

It follows ESP-IDF's ``bootloader_utility.c`` with ``CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE`` and
``CONFIG_BOOTLOADER_APP_ANTI_ROLLBACK``, in this order:

1. The bootloader image must verify (SBv2 against a burned, non-revoked eFuse digest, right chip); otherwise the
   device does not boot (:class:`BootFailedError`, reason from :mod:`medfw.device.verify`).
2. Every otadata copy still in PENDING_VERIFY is rewritten ABORTED: the app booted last time and never
   confirmed (crash, watchdog or power loss), so it is rolled back (``boot.revert``, ``not_confirmed``).
3. Valid copies are tried by descending ``ota_seq``; each candidate slot's app must verify and have
   ``secure_version`` ≥ the eFuse counter, else it is skipped (``boot.refused`` with the reason).
4. If no copy selects a bootable slot, every slot is tried in index order (``fallback``). When otadata held no
   valid entry at all (a factory-fresh unit) the booted slot is recorded as ``seq = slot + 1``, VALID, in copy 0
   (ESP-IDF's ``set_actual_ota_seq``).
5. The chosen entry in state NEW becomes PENDING_VERIFY (a trial boot); one already VALID advances the counter
   to the app's secure_version (ESP-IDF's ``update_anti_rollback``: this also repairs a power loss between the
   app's confirm and its eFuse burn).
6. If nothing verifies the device does not boot (:class:`BootFailedError`, ``no_bootable_image``).

Each step emits an :class:`~medfw.audit.sink.AuditEvent`; the caller records them. Flash writes go through
:class:`~medfw.device.flash.Flash`, so a power cut can interrupt any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medfw.audit.sink import AuditEvent
from medfw.device.chips import ChipSpec
from medfw.device.efuse import Efuses
from medfw.device.errors import BootFailedError
from medfw.device.flash import Flash
from medfw.device.otadata import COPY_OFFSETS, OtaEntry, OtaState, parse_copies, state_name
from medfw.device.partitions import PARTITION_TABLE_OFFSET, PartitionTable
from medfw.device.verify import ImageCheck, check_image

__all__ = ["BootConfig", "BootResult", "read_otadata", "run_bootloader", "write_otadata"]

ACTOR = "bootloader"


@dataclass(frozen=True)
class BootConfig:
    """What the bootloader is built with: the chip, the partition table and the counter field width."""

    chip: ChipSpec
    table: PartitionTable
    counter_bits: int


@dataclass(frozen=True)
class BootResult:
    """The outcome of one boot.

    Attributes:
        slot: the app slot that runs (0 = ota_0, 1 = ota_1).
        version / project / secure_version: from the running app's description.
        reason: why this slot: ``highest_valid_seq``, ``trial_boot``, ``rollback``, ``fallback`` or
            ``initial_otadata``.
        state: the otadata state of the running entry after the bootloader ran.
        seq: its ``ota_seq``.
        counter: the eFuse anti-rollback counter after the boot.
        key_slot: the eFuse digest slot whose key verified the app.
        image_sha256: SHA-256 of the running signed image.
        reverted: a PENDING_VERIFY entry was aborted on this boot.
        app_failed: the app crashed before it could confirm (set by the device, not the bootloader).
        events: the audit events of this boot, in order.
    """

    slot: int
    version: str | None
    project: str | None
    secure_version: int | None
    reason: str
    state: str
    seq: int
    counter: int
    key_slot: int | None
    image_sha256: str | None
    reverted: bool
    events: tuple[AuditEvent, ...] = field(default=())
    app_failed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (events as type/outcome/reason)."""
        return {
            "slot": self.slot,
            "partition": f"ota_{self.slot}",
            "version": self.version,
            "project": self.project,
            "secure_version": self.secure_version,
            "reason": self.reason,
            "state": self.state,
            "seq": self.seq,
            "counter": self.counter,
            "key_slot": self.key_slot,
            "image_sha256": self.image_sha256,
            "reverted": self.reverted,
            "app_failed": self.app_failed,
            "events": [{"type": e.type, "outcome": e.outcome, "reason": e.reason} for e in self.events],
        }


def read_otadata(flash: Flash, table: PartitionTable) -> tuple[OtaEntry, OtaEntry]:
    """Read both otadata copies."""
    part = table.otadata
    return parse_copies(flash.read(part.offset, part.size))


def write_otadata(flash: Flash, table: PartitionTable, copy: int, entry: OtaEntry) -> None:
    """Erase copy ``copy``'s sector and write ``entry`` (one sector write, as ESP-IDF's ``write_otadata``)."""
    flash.write_sector(table.otadata.offset + COPY_OFFSETS[copy], entry.to_bytes())


class _Boot:
    """One run of the bootloader (keeps the event list)."""

    def __init__(self, flash: Flash, efuses: Efuses, cfg: BootConfig) -> None:
        self.flash = flash
        self.efuses = efuses
        self.cfg = cfg
        self.events: list[AuditEvent] = []

    def event(
        self,
        type_: str,
        outcome: str,
        reason: str,
        objects: Mapping[str, str] | None = None,
        **data: Any,
    ) -> None:
        self.events.append(AuditEvent(type_, outcome, reason, ACTOR, dict(objects or {}), data))

    def fail(self, message: str, reason: str) -> BootFailedError:
        return BootFailedError(message, reason=reason, events=tuple(self.events))

    @property
    def counter(self) -> int:
        return self.efuses.secure_version(self.cfg.counter_bits)

    def check_slot(self, slot: int) -> ImageCheck:
        part = self.cfg.table.app_slot(slot)
        return check_image(
            self.flash.read(part.offset, part.size),
            chip=self.cfg.chip,
            efuses=self.efuses,
            counter=self.counter,
            counter_bits=self.cfg.counter_bits,
        )

    def verify_bootloader(self) -> None:
        start = self.cfg.chip.bootloader_offset
        result = check_image(
            self.flash.read(start, PARTITION_TABLE_OFFSET - start), chip=self.cfg.chip, efuses=self.efuses, counter=None
        )
        objects = {"bootloader_sha256": result.sha256} if result.sha256 else {}
        if not result.ok:
            self.event("boot.refused", "denied", result.reason, objects, image="bootloader", message=result.message)
            raise self.fail(f"bootloader image refused: {result.message}", result.reason)
        self.event("boot.verify", "success", "signature_ok", objects, image="bootloader", key_slot=result.key_slot)

    def abort_pending(self, entries: list[OtaEntry]) -> bool:
        reverted = False
        for copy, entry in enumerate(entries):
            if entry.state == OtaState.PENDING_VERIFY:
                # ESP-IDF rewrites every PENDING_VERIFY copy, valid or not; only a valid one was a trial boot
                entries[copy] = entry.with_state(OtaState.ABORTED)
                write_otadata(self.flash, self.cfg.table, copy, entries[copy])
                if entry.valid:
                    self.event("boot.revert", "success", "not_confirmed", copy=copy, seq=entry.seq, slot=entry.slot)
                    reverted = True
        return reverted

    def accept(self, slot: int, result: ImageCheck) -> None:
        objects = {"image_sha256": result.sha256} if result.sha256 else {}
        self.event(
            "boot.verify",
            "success",
            "signature_ok",
            objects,
            image=f"ota_{slot}",
            key_slot=result.key_slot,
            secure_version=result.secure_version,
        )

    def refuse(self, slot: int, result: ImageCheck) -> None:
        objects = {"image_sha256": result.sha256} if result.sha256 else {}
        self.event("boot.refused", "denied", result.reason, objects, image=f"ota_{slot}", message=result.message)

    def burn_counter(self, secure_version: int | None, reason: str) -> None:
        if secure_version is None:
            return
        before = self.counter
        if self.efuses.burn_secure_version(secure_version, self.cfg.counter_bits):
            self.event("security.svn.increment", "success", reason, before=before, after=self.counter)

    def run(self) -> BootResult:
        self.verify_bootloader()
        entries = list(read_otadata(self.flash, self.cfg.table))
        reverted = self.abort_pending(entries)
        order = sorted((c for c in (0, 1) if entries[c].valid), key=lambda c: (-entries[c].seq, c))
        tried: set[int] = set()
        for copy in order:
            entry = entries[copy]
            if entry.slot in tried:
                continue
            tried.add(entry.slot)
            result = self.check_slot(entry.slot)
            if not result.ok:
                self.refuse(entry.slot, result)
                continue
            self.accept(entry.slot, result)
            return self.selected(copy, entry, result, reverted, first=copy == order[0])
        for slot in (0, 1):
            if slot in tried:
                continue
            result = self.check_slot(slot)
            if not result.ok:
                self.refuse(slot, result)
                continue
            self.accept(slot, result)
            return self.fallback(slot, result, reverted, initial=not order)
        self.event("boot.refused", "denied", "no_bootable_image")
        raise self.fail("no slot holds an image this device may boot", "no_bootable_image")

    def selected(self, copy: int, entry: OtaEntry, result: ImageCheck, reverted: bool, *, first: bool) -> BootResult:
        reason = "rollback" if reverted or not first else "highest_valid_seq"
        if entry.state == OtaState.NEW:
            entry = entry.with_state(OtaState.PENDING_VERIFY)
            write_otadata(self.flash, self.cfg.table, copy, entry)
            reason = "trial_boot"
        elif entry.state == OtaState.VALID:
            self.burn_counter(result.secure_version, "image_valid")
        self.event("boot.select", "success", reason, copy=copy, seq=entry.seq, slot=entry.slot)
        return self.result(entry.slot, entry, result, reason, reverted)

    def fallback(self, slot: int, result: ImageCheck, reverted: bool, *, initial: bool) -> BootResult:
        entry = OtaEntry.make(slot + 1, OtaState.VALID)
        reason = "initial_otadata" if initial else "fallback"
        write_otadata(self.flash, self.cfg.table, 0, entry)
        self.burn_counter(result.secure_version, "image_valid")
        self.event("boot.select", "success", reason, copy=0, seq=entry.seq, slot=slot)
        return self.result(slot, entry, result, reason, reverted)

    def result(self, slot: int, entry: OtaEntry, check: ImageCheck, reason: str, reverted: bool) -> BootResult:
        return BootResult(
            slot=slot,
            version=check.version,
            project=check.project,
            secure_version=check.secure_version,
            reason=reason,
            state=state_name(entry.state),
            seq=entry.seq,
            counter=self.counter,
            key_slot=check.key_slot,
            image_sha256=check.sha256,
            reverted=reverted,
            events=tuple(self.events),
        )


def run_bootloader(flash: Flash, efuses: Efuses, cfg: BootConfig) -> BootResult:
    """Run the bootloader once over ``flash`` and ``efuses`` (both may be modified).

    Raises:
        BootFailedError: the bootloader or every app slot is refused (``events`` attribute holds the events).
        PowerLoss: an armed power cut fired during an otadata write.
    """
    return _Boot(flash, efuses, cfg).run()
