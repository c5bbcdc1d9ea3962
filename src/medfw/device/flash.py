"""SPI NOR flash model: 4 KiB sectors, erase-before-write, and a power-cut injector.

Erasing sets a sector to 0xFF; programming can only clear bits (the new content is ANDed in), so data written
without an erase is corrupted, as on real NOR flash. :meth:`Flash.write_sector` (erase + program) is the unit
the power-cut injector counts: with ``PowerCut(after=N)`` the first N sector writes complete and the next one
raises :class:`PowerLoss`, either before touching the sector or (``torn=True``) after erasing it and
programming only its first ``torn_bytes`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from medfw.errors import DeviceError

__all__ = ["SECTOR_SIZE", "Flash", "PowerCut", "PowerLoss"]

SECTOR_SIZE = 4096


class PowerLoss(Exception):  # noqa: N818 - an event of the simulation, not an error of medfw
    """Power was cut during a flash write (raised by the injector; the device is now off)."""

    def __init__(self, sector_writes: int, address: int, torn: bool) -> None:
        super().__init__(f"power cut after {sector_writes} sector writes (at 0x{address:x}, torn={torn})")
        self.sector_writes = sector_writes
        self.address = address
        self.torn = torn


@dataclass
class PowerCut:
    """Cut power after ``after`` complete sector writes; ``torn`` interrupts the next write half-way."""

    after: int
    torn: bool = False
    torn_bytes: int = SECTOR_SIZE // 2


class Flash:
    """A flash chip of ``len(data)`` bytes (a multiple of the sector size)."""

    def __init__(self, data: bytearray) -> None:
        if len(data) == 0 or len(data) % SECTOR_SIZE:
            raise DeviceError(f"flash size {len(data)} is not a positive multiple of {SECTOR_SIZE}", field="flash")
        self.data = data
        self.sector_writes = 0
        self.power_cut: PowerCut | None = None
        self.dirty = False

    @classmethod
    def erased(cls, size: int) -> Flash:
        """A blank (all 0xFF) flash of ``size`` bytes."""
        return cls(bytearray(b"\xff" * size))

    @property
    def size(self) -> int:
        """Flash size in bytes."""
        return len(self.data)

    def _check(self, address: int, length: int) -> None:
        if address < 0 or length < 0 or address + length > len(self.data):
            raise DeviceError(
                f"flash access 0x{address:x}+{length} is outside the {len(self.data)}-byte flash",
                field="address",
                offset=address,
            )

    def read(self, address: int, length: int) -> bytes:
        """Return ``length`` bytes at ``address``."""
        self._check(address, length)
        return bytes(self.data[address : address + length])

    def _erase(self, address: int) -> None:
        self.data[address : address + SECTOR_SIZE] = b"\xff" * SECTOR_SIZE

    def _program(self, address: int, data: bytes) -> None:
        old = int.from_bytes(self.data[address : address + len(data)], "big")
        new = old & int.from_bytes(data, "big")
        self.data[address : address + len(data)] = new.to_bytes(len(data), "big")

    def write_sector(self, address: int, data: bytes) -> None:
        """Erase the sector at ``address`` and program ``data`` (at most one sector) into its start.

        Raises:
            PowerLoss: the armed power cut fires on this write.
            DeviceError: misaligned address or oversized data.
        """
        if address % SECTOR_SIZE or len(data) > SECTOR_SIZE:
            raise DeviceError("sector writes must be sector-aligned and at most one sector", offset=address)
        self._check(address, SECTOR_SIZE)
        self.dirty = True
        cut = self.power_cut
        if cut is not None and self.sector_writes >= cut.after:
            self.power_cut = None
            if cut.torn:
                self._erase(address)
                self._program(address, data[: cut.torn_bytes])
            raise PowerLoss(self.sector_writes, address, cut.torn)
        self._erase(address)
        self._program(address, data)
        self.sector_writes += 1

    def write(self, address: int, data: bytes) -> int:
        """Write ``data`` sector by sector from a sector-aligned ``address``; return the sector writes done."""
        count = 0
        for off in range(0, len(data), SECTOR_SIZE):
            self.write_sector(address + off, data[off : off + SECTOR_SIZE])
            count += 1
        return count
