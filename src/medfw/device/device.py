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

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.chips import DEFAULT_CHIP
from medfw.device import ota
from medfw.device.bootloader import BootConfig, BootResult, read_otadata, run_bootloader
from medfw.device.chips import ChipSpec, get_chip
from medfw.device.clinical import ClinicalState
from medfw.device.efuse import Efuses
from medfw.device.errors import BootFailedError, DeviceStateError
from medfw.device.flash import SECTOR_SIZE, Flash, PowerCut, PowerLoss
from medfw.device.otadata import COPY_OFFSETS
from medfw.device.partitions import PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, PartitionTable
from medfw.device.trail import OWN_LOG, open_own_log
from medfw.device.unit import UnitMixin
from medfw.device.verify import check_image
from medfw.errors import DeviceError

__all__ = ["DEFAULT_FLASH_SIZE", "DEFAULT_SLOT_SIZE", "Device", "DeviceStatus", "PowerLossError"]

FORMAT = "medfw-device/1"
DEFAULT_FLASH_SIZE = 4 * 1024 * 1024
DEFAULT_SLOT_SIZE = 0x180000
_MAX_STATE_FILE = 1024 * 1024

POWER_OFF = "off"
POWER_RUNNING = "running"
POWER_CRASHED = "crashed"


class PowerLossError(DeviceStateError):
    """An armed power cut fired during boot or confirm: the device is off."""

    def __init__(self, loss: PowerLoss) -> None:
        super().__init__(str(loss), reason="power_cut")
        self.loss = loss


@dataclass(frozen=True)
class DeviceStatus:
    """A snapshot of the unit (see :meth:`Device.status`)."""

    chip: str
    power: str
    running_slot: int | None
    slots: tuple[dict[str, Any], ...]
    otadata: tuple[dict[str, Any], ...]
    counter: int
    counter_bits: int
    key_slots: tuple[dict[str, Any], ...]
    secure_boot: bool
    jtag_disabled: bool
    download_mode_disabled: bool
    flash_encryption: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "chip": self.chip,
            "power": self.power,
            "running_slot": self.running_slot,
            "slots": list(self.slots),
            "otadata": list(self.otadata),
            "efuse": {
                "secure_version_counter": self.counter,
                "secure_version_bits": self.counter_bits,
                "key_slots": list(self.key_slots),
                "secure_boot_enabled": self.secure_boot,
                "jtag_disabled": self.jtag_disabled,
                "download_mode_disabled": self.download_mode_disabled,
                "flash_encryption_enabled": self.flash_encryption,
            },
        }


class Device(UnitMixin):
    """One simulated unit. Create with :meth:`init` / :meth:`in_memory`, reopen with :meth:`open`."""

    def __init__(
        self,
        *,
        chip: ChipSpec,
        efuses: Efuses,
        flash: Flash,
        counter_bits: int,
        power: str = POWER_OFF,
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
        spec = get_chip(chip)
        if secure_version_bits is None:  # ESP-IDF's default width, or the whole field where it is narrower
            secure_version_bits = min(16, spec.secure_version_field_bits)
        if not 1 <= secure_version_bits <= spec.secure_version_field_bits:
            raise DeviceError(
                f"secure_version_bits must be 1..{spec.secure_version_field_bits} on {spec.name}",
                field="secure_version_bits",
            )
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
                        AuditEvent(
                            "efuse.burn", "success", "revoke_unused_slot", "provisioning", {}, {"slot": slot.index}
                        )
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
        for lock in locks:
            events.append(AuditEvent("efuse.burn", "success", lock, "provisioning"))
        flash = Flash.erased(flash_size)
        flash.write(PARTITION_TABLE_OFFSET, table.to_bytes())
        device = cls(chip=spec, efuses=efuses, flash=flash, counter_bits=secure_version_bits, audit=audit)
        device._record(events)
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
        meta = _load_json(path / "device.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DeviceError(f"not a {FORMAT} state file", path=str(path / "device.json"), field="format")
        try:
            chip = get_chip(str(meta["chip"]))
            counter_bits = int(meta["secure_version_bits"])
            flash_size = int(meta["flash_size"])
            power = str(meta["power"])
            running = meta["running_slot"]
        except (KeyError, TypeError, ValueError) as e:
            raise DeviceError(f"device state is incomplete: {e}", path=str(path / "device.json")) from None
        if power not in (POWER_OFF, POWER_RUNNING, POWER_CRASHED) or running not in (None, 0, 1):
            raise DeviceError("bad run state", path=str(path / "device.json"), field="power")
        efuses = Efuses.from_dict(_load_json(path / "efuse.json"), path=str(path / "efuse.json"))
        if efuses.chip != chip:
            raise DeviceError("eFuse chip differs from the device chip", path=str(path / "efuse.json"), field="chip")
        data = read_bytes(path / "flash.bin", max_length=flash_size, what="flash image")
        if len(data) != flash_size:
            raise DeviceError(
                f"flash image is {len(data)} bytes, expected {flash_size}", path=str(path / "flash.bin"), field="size"
            )
        return cls(
            chip=chip,
            efuses=efuses,
            flash=Flash(bytearray(data)),
            counter_bits=counter_bits,
            power=power,
            running_slot=running,
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

    def _save(self) -> None:
        if self.directory is None:
            return
        meta = {
            "format": FORMAT,
            "chip": self.chip.name,
            "secure_version_bits": self.counter_bits,
            "flash_size": self.flash_memory.size,
            "power": self.power,
            "running_slot": self.running_slot,
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.flash_memory.dirty or not (self.directory / "flash.bin").exists():
            atomic_write(self.directory / "flash.bin", bytes(self.flash_memory.data))
            self.flash_memory.dirty = False
        atomic_write(self.directory / "efuse.json", _dump(self.efuse.to_dict()))
        atomic_write(self.directory / "device.json", _dump(meta))

    def _record(self, events: Iterable[AuditEvent]) -> None:
        for event in events:
            self.audit.record(event)

    def _power_off(self) -> None:
        self.power = POWER_OFF
        self.running_slot = None

    def _require_running(self, what: str) -> int:
        if self.power != POWER_RUNNING or self.running_slot is None:
            state = "its app crashed" if self.power == POWER_CRASHED else "it is not running"
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
        start = self.chip.bootloader_offset
        if len(bootloader) > PARTITION_TABLE_OFFSET - start:
            raise DeviceError(
                f"bootloader of {len(bootloader)} bytes exceeds the {PARTITION_TABLE_OFFSET - start}-byte region",
                field="bootloader",
            )
        slot0, slot1 = self.table.app_slot(0), self.table.app_slot(1)
        if len(app) > slot0.size:
            raise DeviceError(f"app of {len(app)} bytes exceeds the {slot0.size}-byte slot", field="app")
        fl = self.flash_memory
        fl.data[start:PARTITION_TABLE_OFFSET] = b"\xff" * (PARTITION_TABLE_OFFSET - start)
        fl.data[slot0.offset : slot1.end] = b"\xff" * (slot1.end - slot0.offset)
        otadata = self.table.otadata
        fl.data[otadata.offset : otadata.end] = b"\xff" * otadata.size
        fl.data[start : start + len(bootloader)] = bootloader
        fl.data[slot0.offset : slot0.offset + len(app)] = app
        fl.dirty = True
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
        self.power = POWER_CRASHED if app_fails else POWER_RUNNING
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

    def revoke_key(self, slot: int, *, power_cut: str | None = None) -> None:
        """Revoke key digest ``slot`` the conservative way (see :func:`medfw.device.ota.revoke_key`).

        Args:
            power_cut: ``before_burn`` / ``after_burn`` — the power fails right before or right after the eFuse burn
                (eFuse programming itself is atomic in the model); the unit is off afterwards.

        Raises:
            PowerLossError: the armed power cut fired.
        """
        running = self._require_running("revoke a key")
        if power_cut not in (None, "before_burn", "after_burn"):
            raise DeviceError("power_cut must be before_burn or after_burn", field="power_cut")
        if power_cut == "before_burn":
            self._cut_power()
        events: list[AuditEvent] = []
        try:
            ota.revoke_key(self.flash_memory, self.efuse, self.boot_config, running, slot, events=events)
        finally:
            self._record(events)
            self._save()
        if power_cut == "after_burn":
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
        counter = self.efuse.secure_version(self.counter_bits)
        slots = []
        for i in (0, 1):
            part = self.table.app_slot(i)
            check = check_image(
                self.flash_memory.read(part.offset, part.size),
                chip=self.chip,
                efuses=self.efuse,
                counter=counter,
                counter_bits=self.counter_bits,
            )
            slots.append(
                {"slot": i, "partition": part.name, "offset": part.offset, "size": part.size} | check.to_dict()
            )
        entries = read_otadata(self.flash_memory, self.table)
        otadata = tuple(
            {"copy": c, "offset": self.table.otadata.offset + COPY_OFFSETS[c]} | e.describe()
            for c, e in enumerate(entries)
        )
        keys = tuple(
            {"slot": s.index, "digest": s.digest.hex() if s.digest else None, "revoked": s.revoked, "block": s.block}
            for s in self.efuse.key_slots()
        )
        return DeviceStatus(
            chip=self.chip.name,
            power=self.power,
            running_slot=self.running_slot,
            slots=tuple(slots),
            otadata=otadata,
            counter=counter,
            counter_bits=self.counter_bits,
            key_slots=keys,
            secure_boot=self.efuse.secure_boot_enabled,
            jtag_disabled=self.efuse.jtag_disabled,
            download_mode_disabled=self.efuse.download_mode_disabled,
            flash_encryption=self.efuse.flash_encryption_enabled,
        )


def _dump(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _load_json(path: Path) -> object:
    raw = read_bytes(path, max_length=_MAX_STATE_FILE, what="device state file")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeviceError(f"device state file is not JSON: {e}", path=str(path)) from None
