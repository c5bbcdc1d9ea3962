"""ESP-IDF partition table: the binary format at flash offset 0x8000, and the A/B layout the model uses.

Each entry is 32 bytes (``<2sBBLL16sL``: magic ``AA 50``, type, subtype, offset, size, NUL-padded name, flags),
followed by an MD5 entry (``EB EB`` + 14 × ``FF`` + MD5 of the preceding entries) and 0xFF up to 0xC00 bytes, as
``gen_esp32part.py`` writes it. The default layout is ESP-IDF's two-OTA table without a factory app (anti-rollback
requires that): nvs, otadata (0x2000), phy_init, ota_0, ota_1.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from medfw.errors import DeviceError

__all__ = [
    "PARTITION_TABLE_OFFSET",
    "PARTITION_TABLE_SIZE",
    "Partition",
    "PartitionTable",
]

PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00
_ENTRY = struct.Struct("<2sBBLL16sL")
_MAGIC = b"\xaa\x50"
_MD5_MAGIC = b"\xeb\xeb" + b"\xff" * 14

TYPE_APP = 0x00
TYPE_DATA = 0x01
SUBTYPE_OTA_0 = 0x10
SUBTYPE_OTADATA = 0x00
SUBTYPE_PHY = 0x01
SUBTYPE_NVS = 0x02


@dataclass(frozen=True)
class Partition:
    """One partition: name, type/subtype codes, flash offset and size in bytes."""

    name: str
    type: int
    subtype: int
    offset: int
    size: int

    @property
    def end(self) -> int:
        """First byte after the partition."""
        return self.offset + self.size


@dataclass(frozen=True)
class PartitionTable:
    """An ordered, validated set of partitions."""

    partitions: tuple[Partition, ...]

    @classmethod
    def default(cls, slot_size: int = 0x180000) -> PartitionTable:
        """The A/B layout: nvs 0x9000, otadata 0xD000 (2 sectors), phy_init 0xF000, ota_0 0x10000, ota_1 after."""
        return cls(
            (
                Partition("nvs", TYPE_DATA, SUBTYPE_NVS, 0x9000, 0x4000),
                Partition("otadata", TYPE_DATA, SUBTYPE_OTADATA, 0xD000, 0x2000),
                Partition("phy_init", TYPE_DATA, SUBTYPE_PHY, 0xF000, 0x1000),
                Partition("ota_0", TYPE_APP, SUBTYPE_OTA_0, 0x10000, slot_size),
                Partition("ota_1", TYPE_APP, SUBTYPE_OTA_0 + 1, 0x10000 + slot_size, slot_size),
            )
        )

    def get(self, name: str) -> Partition:
        """Return the partition called ``name``.

        Raises:
            DeviceError: there is none.
        """
        for p in self.partitions:
            if p.name == name:
                return p
        raise DeviceError(f"partition table has no {name!r} partition", field="partition_table")

    def app_slot(self, index: int) -> Partition:
        """Return OTA app slot ``index`` (0 or 1)."""
        for p in self.partitions:
            if p.type == TYPE_APP and p.subtype == SUBTYPE_OTA_0 + index:
                return p
        raise DeviceError(f"partition table has no ota_{index} slot", field="partition_table")

    @property
    def otadata(self) -> Partition:
        """The otadata partition."""
        for p in self.partitions:
            if p.type == TYPE_DATA and p.subtype == SUBTYPE_OTADATA:
                return p
        raise DeviceError("partition table has no otadata partition", field="partition_table")

    @property
    def end(self) -> int:
        """First flash byte after the last partition."""
        return max(p.end for p in self.partitions)

    def to_bytes(self) -> bytes:
        """Serialise as ESP-IDF's binary table (0xC00 bytes, MD5 entry included)."""
        body = b"".join(
            _ENTRY.pack(_MAGIC, p.type, p.subtype, p.offset, p.size, p.name.encode("ascii"), 0) for p in self.partitions
        )
        body += _MD5_MAGIC + hashlib.md5(body, usedforsecurity=False).digest()
        return body + b"\xff" * (PARTITION_TABLE_SIZE - len(body))

    @classmethod
    def from_bytes(cls, data: bytes, *, path: str | None = None) -> PartitionTable:
        """Parse ESP-IDF's binary table; the MD5 entry must match.

        Raises:
            DeviceError: naming the byte offset (relative to the table) of the first problem.
        """
        parts: list[Partition] = []
        for off in range(0, min(len(data), PARTITION_TABLE_SIZE) - _ENTRY.size + 1, _ENTRY.size):
            raw = data[off : off + _ENTRY.size]
            if raw[:16] == _MD5_MAGIC:
                want = hashlib.md5(data[:off], usedforsecurity=False).digest()
                if not hmac.compare_digest(want, raw[16:]):
                    raise DeviceError("partition table MD5 mismatch", path=path, field="md5", offset=off)
                if not parts:
                    break
                return cls(tuple(parts))
            if raw[:2] == b"\xff\xff":
                break
            magic, ptype, subtype, offset, size, name, _flags = _ENTRY.unpack(raw)
            if magic != _MAGIC:
                raise DeviceError("bad partition entry magic", path=path, field="magic", offset=off)
            label = name.rstrip(b"\x00").decode("ascii", "replace")
            parts.append(Partition(label, ptype, subtype, offset, size))
        raise DeviceError("partition table is empty or has no MD5 entry", path=path, field="partition_table")
