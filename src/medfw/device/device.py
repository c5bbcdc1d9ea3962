"""A simulated ESP32-class unit kept in a directory: eFuses, flash, and whether its app is running.

Files in the device directory (each replaced atomically on every change):

* ``device.json`` — chip, anti-rollback field width, flash size, and the run state (off / running / crashed,
  running slot);
* ``efuse.json`` — the eFuse bank (:mod:`medfw.device.efuse`);
* ``flash.bin`` — the whole flash image: bootloader, partition table at 0x8000, nvs, otadata (two 4 KiB copies),
  phy_init, ota_0, ota_1.

A :class:`Device` can also live only in memory (:meth:`Device.in_memory`, :meth:`Device.clone`) so that
exhaustive power-cut runs need no disk I/O. Every boot decision and update step is recorded through the
:class:`~medfw.audit.sink.AuditSink` given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.chips import DEFAULT_CHIP
from medfw.device import ota
from medfw.device import state as _state
from medfw.device.bootloader import BootConfig, BootResult, run_bootloader
from medfw.device.chips import ChipSpec, get_chip
from medfw.device.clinical import ClinicalState
from medfw.device.efuse import Efuses
from medfw.device.errors import BootFailedError, DeviceStateError
from medfw.device.flash import SECTOR_SIZE, Flash, PowerCut, PowerLoss
from medfw.device.partitions import PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, PartitionTable
from medfw.device.provision import factory_program, provision
from medfw.device.state import DeviceStatus, PowerLossError, PowerState, RevokeCut
from medfw.device.trail import OWN_LOG, open_own_log
from medfw.device.unit import UnitMixin
from medfw.device.verify import check_image
from medfw.errors import DeviceError

__all__ = ["DEFAULT_FLASH_SIZE", "DEFAULT_SLOT_SIZE", "Device", "DeviceStatus", "PowerLossError"]

DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
DEFAULT_SLOT_SIZE = 0x180000


class Device(UnitMixin):
    """One simulated unit. Create with :meth:`init` / :meth:`in_memory`, reopen with :meth:`open`."""

    def __init__(
        self,
        *,
        chip: ChipSpec,
        efuses: Efuses,
        flash: Flash,
        counter_bits: int,
        power: PowerState = PowerState.OFF,
        running_slot: int | None = None,
        directory: Path | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self.chip = chip
        self.efuse = efuses
        self.flash_memory = flash
        self.counter_bits = counter_bits
        self.power = power
        self.running_slot = running_slot
        self.directory = directory
        self.audit: AuditSink = audit if audit is not None else NullSink()
        if directory is not None and (directory / OWN_LOG).exists():
            self.audit = open_own_log(directory / OWN_LOG, self.audit)
        self.clinical = ClinicalState.load(directory)
        table_bytes = flash.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE)
        path = str(directory / "flash.bin") if directory else None
        self.table = PartitionTable.from_bytes(table_bytes, path=path)
        self.boot_config = BootConfig(chip=chip, table=self.table, counter_bits=counter_bits)

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def in_memory(
        cls,
        *,
        chip: str = DEFAULT_CHIP,
        key_digests: Sequence[bytes],
        secure_version_bits: int | None = None,
        audit: AuditSink | None = None,
        flash_size: int = DEFAULT_FLASH_SIZE,
        slot_size: int = DEFAULT_SLOT_SIZE,
        flash_encryption: bool = False,
        revoke_unused_slots: bool = True,
        sha384: bool = False,
    ) -> Device:
        """Provision a unit that lives only in memory (see :meth:`init` for the arguments)."""
        made = provision(
            get_chip(chip),
            key_digests,
            secure_version_bits=secure_version_bits,
            flash_size=flash_size,
            slot_size=slot_size,
            flash_encryption=flash_encryption,
            revoke_unused_slots=revoke_unused_slots,
            sha384=sha384,
        )
        device = cls(
            chip=made.efuses.chip, efuses=made.efuses, flash=made.flash, counter_bits=made.counter_bits, audit=audit
        )
        device._record(made.events)
        return device

    @classmethod
    def init(
        cls,
        directory: str | Path,
        *,
        chip: str = DEFAULT_CHIP,
        key_digests: Sequence[bytes],
        secure_version_bits: int | None = None,
        audit: AuditSink | None = None,
        flash_size: int = DEFAULT_FLASH_SIZE,
        slot_size: int = DEFAULT_SLOT_SIZE,
        flash_encryption: bool = False,
        revoke_unused_slots: bool = True,
        sha384: bool = False,
    ) -> Device:
        """Provision a new unit in ``directory`` (which must not already hold one).

        Burns the key digests (write-protected), revokes the unused digest slots (unless
        ``revoke_unused_slots`` is false), enables Secure Boot v2, disables JTAG and ROM download mode, and
        optionally sets the flash-encryption counter. ``sha384`` burns the chip's SHA-384 secure boot enable bit
        (ESP32-C5: needed for ECDSA P-384 keys). The flash is blank except for the partition table.

        Raises:
            DeviceError: bad arguments, or ``directory`` already holds a device.
        """
        path = Path(directory)
        if (path / "device.json").exists():
            raise DeviceError("a device already exists here", path=str(path / "device.json"))
        device = cls.in_memory(
            chip=chip,
            key_digests=key_digests,
            secure_version_bits=secure_version_bits,
            audit=audit,
            flash_size=flash_size,
            slot_size=slot_size,
            flash_encryption=flash_encryption,
            revoke_unused_slots=revoke_unused_slots,
            sha384=sha384,
        )
        device.directory = path
        device._save()
        return device

    @classmethod
    def open(cls, directory: str | Path, *, audit: AuditSink | None = None) -> Device:
        """Load the unit kept in ``directory``.

        Raises:
            DeviceError: a state file is missing or malformed (naming the file and field).
        """
        path = Path(directory)
        st = _state.load_state(path)
        return cls(
            chip=st.chip,
            efuses=st.efuses,
            flash=st.flash,
            counter_bits=st.counter_bits,
            power=st.power,
            running_slot=st.running_slot,
            directory=path,
            audit=audit,
        )

    def clone(self, *, audit: AuditSink | None = None) -> Device:
        """An independent in-memory copy of this unit (flash, eFuses, run state)."""
        return Device(
            chip=self.chip,
            efuses=self.efuse.copy(),
            flash=Flash(bytearray(self.flash_memory.data)),
            counter_bits=self.counter_bits,
            power=self.power,
            running_slot=self.running_slot,
            audit=audit,
        )

    # -- persistence --------------------------------------------------------------------------------------

    def _stored(self) -> _state.StoredState:
        return _state.StoredState(
            self.chip, self.efuse, self.flash_memory, self.counter_bits, self.power, self.running_slot
        )

    def _save(self) -> None:
        if self.directory is not None:
            _state.save_state(self.directory, self._stored())

    def _record(self, events: Iterable[AuditEvent]) -> None:
        for event in events:
            self.audit.record(event)

    def _power_off(self) -> None:
        self.power = PowerState.OFF
        self.running_slot = None

    def _require_running(self, what: str) -> int:
        if self.power != PowerState.RUNNING or self.running_slot is None:
            state = "its app crashed" if self.power == PowerState.CRASHED else "it is not running"
            raise DeviceStateError(f"cannot {what}: {state} (boot it first)", reason="not_running")
        return self.running_slot

    def arm_power_cut(self, after: int, *, torn: bool = False, torn_bytes: int = SECTOR_SIZE // 2) -> None:
        """Cut power after ``after`` more sector writes.

        Args:
            torn: the next write is interrupted after erasing its sector and programming ``torn_bytes`` bytes.
        """
        cut = PowerCut(after=self.flash_memory.sector_writes + after, torn=torn, torn_bytes=torn_bytes)
        self.flash_memory.power_cut = cut

    # -- factory ------------------------------------------------------------------------------------------

    def flash(self, bootloader: bytes, app: bytes) -> None:
        """Factory programming: write the bootloader and ``app`` into ota_0, erase otadata and ota_1.

        Nothing is verified here; the bootloader verifies at boot. The unit is left powered off.

        Raises:
            DeviceError: an image does not fit its region.
        """
        factory_program(self.flash_memory, self.table, self.chip.bootloader_offset, bootloader, app)
        self._power_off()
        self._record([AuditEvent("ota.install", "success", "factory_programming", "factory", {}, {"slot": 0})])
        self._save()

    # -- boot and the app's calls -------------------------------------------------------------------------

    def boot(self, *, app_fails: bool = False, confirm: bool = False) -> BootResult:
        """Reset the unit and run the bootloader; then the app runs.

        Args:
            app_fails: the app crashes (or the watchdog fires) before it can confirm itself; the next boot
                rolls a trial image back.
            confirm: the app confirms itself right after booting (``confirm()``), unless it fails.

        Raises:
            BootFailedError: nothing may boot (reason and events attached); the unit stays off.
            PowerLossError: an armed power cut fired during an otadata write.
        """
        self._power_off()
        try:
            result = run_bootloader(self.flash_memory, self.efuse, self.boot_config)
        except BootFailedError as e:
            self._record(e.events)
            self._save()
            raise
        except PowerLoss as loss:
            self._save()
            raise PowerLossError(loss) from None
        self._record(result.events)
        self.running_slot = result.slot
        self.power = PowerState.CRASHED if app_fails else PowerState.RUNNING
        if app_fails:
            result = replace(result, app_failed=True)
        self._save()
        if confirm and not app_fails:
            self.confirm()
            return replace(result, state="VALID", counter=self.efuse.secure_version(self.counter_bits))
        return result

    def confirm(self, *, power_cut_before_burn: bool = False) -> int:
        """The running app declares itself good: otadata VALID, then the counter is advanced.

        Args:
            power_cut_before_burn: model a power loss after the otadata write, before the eFuse burn.

        Returns:
            The anti-rollback counter afterwards.
        """
        slot = self._require_running("confirm")
        events: list[AuditEvent] = []
        try:
            counter = ota.confirm(
                self.flash_memory, self.efuse, self.boot_config, slot, events=events, burn=not power_cut_before_burn
            )
        except PowerLoss as loss:
            self._power_off()
            self._record(events)
            self._save()
            raise PowerLossError(loss) from None
        finally:
            if power_cut_before_burn:
                self._power_off()
        self._record(events)
        self._save()
        return counter

    def revert(self) -> BootResult:
        """The running app asks to be rolled back: mark it INVALID and reboot."""
        slot = self._require_running("revert")
        events: list[AuditEvent] = []
        try:
            ota.mark_invalid(self.flash_memory, self.efuse, self.boot_config, slot, events=events)
        except PowerLoss as loss:
            self._power_off()
            raise PowerLossError(loss) from None
        finally:
            self._record(events)
            self._save()
        return self.boot()

    def install_update(
        self, image: bytes, *, power_cut_after: int | None = None, torn: bool = False
    ) -> ota.InstallResult:
        """Write ``image`` into the inactive slot, verify it, and activate it (see :func:`medfw.device.ota.install`).

        Args:
            power_cut_after: cut power after this many sector writes of this install.
            torn: the interrupted write is left half done.

        Raises:
            UpdateRejectedError: the image is refused (reason attached); the running slot is untouched.
            DeviceStateError: the app is not running or not yet confirmed.
        """
        slot = self._require_running("install an update")
        if power_cut_after is not None:
            if power_cut_after < 0:
                raise DeviceError("power_cut_after must be >= 0", field="power_cut_after")
            self.arm_power_cut(power_cut_after, torn=torn)
        events: list[AuditEvent] = []
        start = self.flash_memory.sector_writes
        try:
            result = ota.install(self.flash_memory, self.efuse, self.boot_config, slot, image, events=events)
        except PowerLoss as loss:
            self._power_off()
            events.append(
                AuditEvent(
                    "ota.install", "failure", "power_cut", ota.ACTOR, {}, {"sector_writes": loss.sector_writes - start}
                )
            )
            result = ota.InstallResult(
                slot=1 - slot,
                version=None,
                secure_version=None,
                image_sha256=None,
                sector_writes=loss.sector_writes - start,
                activated=False,
                interrupted=True,
                torn=loss.torn,
            )
        finally:
            if power_cut_after is not None:
                self.flash_memory.power_cut = None
            self._record(events)
            self._save()
        return result

    def revoke_key(self, slot: int, *, power_cut: RevokeCut | str | None = None) -> None:
        """Revoke key digest ``slot`` the conservative way (see :func:`medfw.device.ota.revoke_key`).

        Args:
            power_cut: ``before_burn`` / ``after_burn`` — the power fails right before or right after the eFuse burn
                (eFuse programming itself is atomic in the model); the unit is off afterwards.

        Raises:
            PowerLossError: the armed power cut fired.
        """
        running = self._require_running("revoke a key")
        if power_cut is not None and power_cut not in set(RevokeCut):
            raise DeviceError("power_cut must be before_burn or after_burn", field="power_cut")
        if power_cut == RevokeCut.BEFORE_BURN:
            self._cut_power()
        events: list[AuditEvent] = []
        try:
            ota.revoke_key(self.flash_memory, self.efuse, self.boot_config, running, slot, events=events)
        finally:
            self._record(events)
            self._save()
        if power_cut == RevokeCut.AFTER_BURN:
            self._cut_power()

    def _cut_power(self) -> None:
        self._power_off()
        self._save()
        raise PowerLossError(PowerLoss(self.flash_memory.sector_writes, 0, torn=False))

    # -- inspection ---------------------------------------------------------------------------------------

    def running_image(self) -> bytes:
        """The signed image of the running slot (image, padding and signature sector)."""
        slot = self._require_running("read the running image")
        part = self.table.app_slot(slot)
        region = self.flash_memory.read(part.offset, part.size)
        check = check_image(region, chip=self.chip, efuses=self.efuse, counter=None)
        return region[: check.length] if check.length else b""

    def status(self) -> DeviceStatus:
        """Running slot, per-slot image versions, otadata, eFuse counter, key slots and lock bits."""
        return _state.status_of(self._stored(), self.table)
