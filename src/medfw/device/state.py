"""The persisted state of a simulated unit: its run state, the status snapshot it reports, and the files of a
device directory (``device.json``, ``efuse.json``, ``flash.bin``; see :mod:`medfw.device.device`)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.device.bootloader import read_otadata
from medfw.device.chips import ChipSpec, get_chip
from medfw.device.efuse import Efuses
from medfw.device.errors import DeviceStateError
from medfw.device.flash import Flash, PowerLoss
from medfw.device.otadata import COPY_OFFSETS
from medfw.device.partitions import PartitionTable
from medfw.device.verify import check_image
from medfw.errors import DeviceError

__all__ = [
    "FORMAT",
    "DeviceStatus",
    "PowerLossError",
    "PowerState",
    "RevokeCut",
    "StoredState",
    "load_state",
    "save_state",
    "status_of",
]

FORMAT = "medfw-device/1"
_MAX_STATE_FILE = 1024 * 1024


class PowerState(enum.StrEnum):
    """Whether the unit is off, runs its app, or its app crashed (the watchdog will reset it)."""

    OFF = "off"
    RUNNING = "running"
    CRASHED = "crashed"


class RevokeCut(enum.StrEnum):
    """Where a simulated power cut hits a key revocation (eFuse programming itself is atomic in the model)."""

    BEFORE_BURN = "before_burn"
    AFTER_BURN = "after_burn"


class PowerLossError(DeviceStateError):
    """An armed power cut fired during boot or confirm: the device is off."""

    def __init__(self, loss: PowerLoss) -> None:
        super().__init__(str(loss), reason="power_cut")
        self.loss = loss


@dataclass(frozen=True)
class DeviceStatus:
    """A snapshot of the unit (see :meth:`medfw.device.Device.status`)."""

    chip: str
    power: PowerState
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
            "power": str(self.power),
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


@dataclass(frozen=True)
class StoredState:
    """What a device directory holds."""

    chip: ChipSpec
    efuses: Efuses
    flash: Flash
    counter_bits: int
    power: PowerState
    running_slot: int | None


def save_state(directory: Path, state: StoredState) -> None:
    """Write the directory's files atomically (``flash.bin`` only when the flash changed or is missing)."""
    meta = {
        "format": FORMAT,
        "chip": state.chip.name,
        "secure_version_bits": state.counter_bits,
        "flash_size": state.flash.size,
        "power": str(state.power),
        "running_slot": state.running_slot,
    }
    directory.mkdir(parents=True, exist_ok=True)
    if state.flash.dirty or not (directory / "flash.bin").exists():
        atomic_write(directory / "flash.bin", bytes(state.flash.data))
        state.flash.dirty = False
    atomic_write(directory / "efuse.json", _dump(state.efuses.to_dict()))
    atomic_write(directory / "device.json", _dump(meta))


def load_state(directory: Path) -> StoredState:
    """Read a device directory.

    Raises:
        DeviceError: a state file is missing or malformed (naming the file and field).
    """
    meta_path = directory / "device.json"
    meta = _load_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DeviceError(f"not a {FORMAT} state file", path=str(meta_path), field="format")
    try:
        chip = get_chip(str(meta["chip"]))
        counter_bits = int(meta["secure_version_bits"])
        flash_size = int(meta["flash_size"])
        power = str(meta["power"])
        running = meta["running_slot"]
    except (KeyError, TypeError, ValueError) as e:
        raise DeviceError(f"device state is incomplete: {e}", path=str(meta_path)) from None
    if power not in set(PowerState) or running not in (None, 0, 1):
        raise DeviceError("bad run state", path=str(meta_path), field="power")
    efuses = Efuses.from_dict(_load_json(directory / "efuse.json"), path=str(directory / "efuse.json"))
    if efuses.chip != chip:
        raise DeviceError("eFuse chip differs from the device chip", path=str(directory / "efuse.json"), field="chip")
    data = read_bytes(directory / "flash.bin", max_length=flash_size, what="flash image")
    if len(data) != flash_size:
        raise DeviceError(
            f"flash image is {len(data)} bytes, expected {flash_size}", path=str(directory / "flash.bin"), field="size"
        )
    return StoredState(chip, efuses, Flash(bytearray(data)), counter_bits, PowerState(power), running)


def status_of(state: StoredState, table: PartitionTable) -> DeviceStatus:
    """The status snapshot of a unit: each app slot's image check, both otadata copies, key slots, lock bits."""
    efuses, flash = state.efuses, state.flash
    counter = efuses.secure_version(state.counter_bits)
    slots = []
    for i in (0, 1):
        part = table.app_slot(i)
        check = check_image(
            flash.read(part.offset, part.size),
            chip=state.chip,
            efuses=efuses,
            counter=counter,
            counter_bits=state.counter_bits,
        )
        slots.append({"slot": i, "partition": part.name, "offset": part.offset, "size": part.size} | check.to_dict())
    otadata = tuple(
        {"copy": c, "offset": table.otadata.offset + COPY_OFFSETS[c]} | e.describe()
        for c, e in enumerate(read_otadata(flash, table))
    )
    keys = tuple(
        {"slot": s.index, "digest": s.digest.hex() if s.digest else None, "revoked": s.revoked, "block": s.block}
        for s in efuses.key_slots()
    )
    return DeviceStatus(
        chip=state.chip.name,
        power=state.power,
        running_slot=state.running_slot,
        slots=tuple(slots),
        otadata=otadata,
        counter=counter,
        counter_bits=state.counter_bits,
        key_slots=keys,
        secure_boot=efuses.secure_boot_enabled,
        jtag_disabled=efuses.jtag_disabled,
        download_mode_disabled=efuses.download_mode_disabled,
        flash_encryption=efuses.flash_encryption_enabled,
    )


def _dump(data: object) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _load_json(path: Path) -> object:
    raw = read_bytes(path, max_length=_MAX_STATE_FILE, what="device state file")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DeviceError(f"device state file is not JSON: {e}", path=str(path)) from None
