"""ESP-IDF otadata: two ``esp_ota_select_entry_t`` copies that pick the boot slot, byte-exact.

Layout of one 32-byte entry (``components/bootloader_support/include/esp_flash_partitions.h``)::

    0   u32 ota_seq      (LE; 0xFFFFFFFF = empty)
    4   u8  seq_label[20] (unused, 0xFF)
    24  u32 ota_state    (NEW 0, PENDING_VERIFY 1, VALID 2, INVALID 3, ABORTED 4, UNDEFINED 0xFFFFFFFF)
    28  u32 crc          = esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4) = zlib.crc32(ota_seq_le, 0xFFFFFFFF)

Copy 0 sits at offset 0 of the otadata partition and copy 1 at 0x1000, each in its own 4 KiB sector. An entry
is valid when ``ota_seq != 0xFFFFFFFF``, the CRC matches and the state is neither INVALID nor ABORTED; the
active one is the valid entry with the larger ``ota_seq`` (copy 0 on a tie), and it selects slot
``(ota_seq - 1) % 2``. Everything here is pure.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "COPY_OFFSETS",
    "ENTRY_SIZE",
    "OtaEntry",
    "OtaState",
    "active_copy",
    "next_seq",
    "ota_seq_crc",
    "parse_copies",
]

ENTRY_SIZE = 32
COPY_OFFSETS = (0x0000, 0x1000)
SEQ_EMPTY = 0xFFFFFFFF
_ENTRY = struct.Struct("<I20sII")
SLOT_COUNT = 2


class OtaState(enum.IntEnum):
    """``esp_ota_img_states_t``."""

    NEW = 0x0
    PENDING_VERIFY = 0x1
    VALID = 0x2
    INVALID = 0x3
    ABORTED = 0x4
    UNDEFINED = 0xFFFFFFFF


def state_name(value: int) -> str:
    """Return the state's name, or ``0x…`` for a value ESP-IDF does not define."""
    try:
        return OtaState(value).name
    except ValueError:
        return f"0x{value:08x}"


def ota_seq_crc(seq: int) -> int:
    """ESP-IDF's otadata CRC: ``esp_rom_crc32_le(UINT32_MAX, &ota_seq, 4)``."""
    return zlib.crc32(struct.pack("<I", seq), 0xFFFFFFFF)


@dataclass(frozen=True)
class OtaEntry:
    """One otadata copy as stored (``state`` may hold a value outside :class:`OtaState` if corrupted)."""

    seq: int
    state: int
    crc: int
    label: bytes = b"\xff" * 20

    @classmethod
    def make(cls, seq: int, state: int, label: bytes = b"\xff" * 20) -> OtaEntry:
        """An entry with a correct CRC."""
        return cls(seq, int(state), ota_seq_crc(seq), label)

    @classmethod
    def from_bytes(cls, data: bytes) -> OtaEntry:
        """Parse 32 bytes."""
        seq, label, state, crc = _ENTRY.unpack(data[:ENTRY_SIZE])
        return cls(seq, state, crc, label)

    def to_bytes(self) -> bytes:
        """Serialise to the 32 bytes ESP-IDF writes."""
        return _ENTRY.pack(self.seq, self.label, self.state, self.crc)

    def with_state(self, state: int) -> OtaEntry:
        """A copy with another state (CRC unchanged: it covers only ``ota_seq``)."""
        return OtaEntry(self.seq, int(state), self.crc, self.label)

    @property
    def crc_ok(self) -> bool:
        """The stored CRC matches ``ota_seq``."""
        return self.crc == ota_seq_crc(self.seq)

    @property
    def valid(self) -> bool:
        """``bootloader_common_ota_select_valid``: non-empty, CRC ok, not INVALID/ABORTED."""
        return self.seq != SEQ_EMPTY and self.crc_ok and self.state not in (OtaState.INVALID, OtaState.ABORTED)

    @property
    def slot(self) -> int:
        """The app slot this entry selects (meaningful only for a valid entry)."""
        return (self.seq - 1) % SLOT_COUNT

    def describe(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "seq": self.seq,
            "state": state_name(self.state),
            "crc_ok": self.crc_ok,
            "ok": self.valid,
            "slot": self.slot if self.valid else None,
        }


def parse_copies(partition: bytes) -> tuple[OtaEntry, OtaEntry]:
    """Parse both copies from the otadata partition's bytes (at least 0x1020 bytes)."""
    return (
        OtaEntry.from_bytes(partition[COPY_OFFSETS[0] : COPY_OFFSETS[0] + ENTRY_SIZE]),
        OtaEntry.from_bytes(partition[COPY_OFFSETS[1] : COPY_OFFSETS[1] + ENTRY_SIZE]),
    )


def active_copy(entries: tuple[OtaEntry, OtaEntry]) -> int | None:
    """``bootloader_common_get_active_otadata``: the valid copy with the larger seq (0 on a tie), or None."""
    a, b = entries
    if a.valid and b.valid:
        return 0 if a.seq >= b.seq else 1
    if a.valid:
        return 0
    if b.valid:
        return 1
    return None


def next_seq(current_seq: int | None, slot: int) -> int:
    """The ``ota_seq`` ``esp_ota_set_boot_partition`` writes to select ``slot`` after ``current_seq``.

    From ``esp_rewrite_ota_data``: the smallest ``base + i·2 >= current_seq`` with ``base = (slot + 1) % 2``;
    with no valid entry it is ``slot + 1``.
    """
    if current_seq is None:
        return slot + 1
    base = (slot + 1) % SLOT_COUNT
    i = 0
    while current_seq > base + i * SLOT_COUNT:
        i += 1
    return base + i * SLOT_COUNT
