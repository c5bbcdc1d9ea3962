"""Flash model (erase-before-write, power cuts) and the ESP-IDF partition table."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.device.flash import SECTOR_SIZE, Flash, PowerCut, PowerLoss
from medfw.device.partitions import PARTITION_TABLE_SIZE, PartitionTable
from medfw.errors import DeviceError


def test_program_only_clears_bits_and_write_sector_erases_first() -> None:
    fl = Flash.erased(4 * SECTOR_SIZE)
    fl.write_sector(SECTOR_SIZE, b"\x0f" * 10)
    fl._program(SECTOR_SIZE, b"\xf0" * 10)  # programming without an erase ANDs the bits
    assert fl.read(SECTOR_SIZE, 10) == b"\x00" * 10
    fl.write_sector(SECTOR_SIZE, b"\xaa" * 4)
    assert fl.read(SECTOR_SIZE, 6) == b"\xaa" * 4 + b"\xff\xff"
    assert fl.sector_writes == 2


def test_power_cut_after_n_writes_and_torn_write() -> None:
    fl = Flash.erased(8 * SECTOR_SIZE)
    fl.power_cut = PowerCut(after=2)
    with pytest.raises(PowerLoss) as info:
        fl.write(0, b"\x00" * (4 * SECTOR_SIZE))
    assert info.value.sector_writes == 2
    assert fl.read(0, 2 * SECTOR_SIZE) == b"\x00" * (2 * SECTOR_SIZE)
    assert fl.read(2 * SECTOR_SIZE, SECTOR_SIZE) == b"\xff" * SECTOR_SIZE  # untouched
    fl.power_cut = PowerCut(after=fl.sector_writes, torn=True)
    with pytest.raises(PowerLoss) as info:
        fl.write(2 * SECTOR_SIZE, b"\x00" * SECTOR_SIZE)
    assert info.value.torn
    half = SECTOR_SIZE // 2
    assert fl.read(2 * SECTOR_SIZE, SECTOR_SIZE) == b"\x00" * half + b"\xff" * half
    assert fl.power_cut is None  # one-shot


def test_flash_bounds_and_alignment() -> None:
    fl = Flash.erased(2 * SECTOR_SIZE)
    with pytest.raises(DeviceError):
        fl.read(SECTOR_SIZE, 2 * SECTOR_SIZE)
    with pytest.raises(DeviceError):
        fl.write_sector(1, b"x")
    with pytest.raises(DeviceError):
        Flash(bytearray(100))


def test_partition_table_binary_round_trip() -> None:
    table = PartitionTable.default()
    raw = table.to_bytes()
    assert len(raw) == PARTITION_TABLE_SIZE
    assert raw[:2] == b"\xaa\x50"
    n = len(table.partitions) * 32
    assert raw[n : n + 16] == b"\xeb\xeb" + b"\xff" * 14
    assert raw[n + 16 : n + 32] == hashlib.md5(raw[:n]).digest()
    assert PartitionTable.from_bytes(raw) == table
    assert table.otadata.size == 0x2000
    assert table.app_slot(1).offset == table.app_slot(0).end


def test_partition_table_md5_mismatch_is_detected() -> None:
    raw = bytearray(PartitionTable.default().to_bytes())
    raw[8] ^= 1
    with pytest.raises(DeviceError) as info:
        PartitionTable.from_bytes(bytes(raw), path="flash.bin")
    assert info.value.field == "md5"
    with pytest.raises(DeviceError):
        PartitionTable.from_bytes(b"\xff" * PARTITION_TABLE_SIZE)


@settings(max_examples=150)
@given(st.binary(max_size=PARTITION_TABLE_SIZE))
def test_partition_table_parser_fails_cleanly(raw: bytes) -> None:
    with contextlib.suppress(DeviceError):
        PartitionTable.from_bytes(raw)
