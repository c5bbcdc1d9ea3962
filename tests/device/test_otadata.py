"""otadata entries: byte-exact against hand-made ESP-IDF vectors, selection and sequence numbering."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.device.otadata import OtaEntry, OtaState, active_copy, next_seq, ota_seq_crc, parse_copies


def _vectors(vectors: Path) -> list[dict[str, object]]:
    data = json.loads((vectors / "otadata" / "entries.json").read_text())
    return list(data["entries"])


def test_crc_uses_esp_idf_seed() -> None:
    # esp_rom_crc32_le(UINT32_MAX, &seq, 4): values from boot.md, not the plain CRC-32 of the bytes
    assert ota_seq_crc(1) == 0x4743989A
    assert ota_seq_crc(2) == 0x55F63774
    assert ota_seq_crc(3) == 0xED4A5011
    assert ota_seq_crc(16) == 0xAFE6A860
    assert ota_seq_crc(1) != zlib.crc32(struct.pack("<I", 1))


def test_entries_match_hand_made_vectors(vectors: Path) -> None:
    cases = _vectors(vectors)
    assert len(cases) >= 6
    for case in cases:
        entry = OtaEntry.make(int(case["seq"]), OtaState[str(case["state"])])  # type: ignore[call-overload]
        assert entry.to_bytes().hex() == case["hex"], case
        parsed = OtaEntry.from_bytes(bytes.fromhex(str(case["hex"])))
        assert parsed == entry
        assert parsed.crc_ok


def test_validity_rules() -> None:
    assert OtaEntry.make(1, OtaState.NEW).valid
    assert OtaEntry.make(1, OtaState.PENDING_VERIFY).valid
    assert OtaEntry.make(1, OtaState.VALID).valid
    assert OtaEntry.make(1, OtaState.UNDEFINED).valid
    assert not OtaEntry.make(1, OtaState.INVALID).valid
    assert not OtaEntry.make(1, OtaState.ABORTED).valid
    assert not OtaEntry.from_bytes(b"\xff" * 32).valid  # erased
    bad_crc = OtaEntry(1, OtaState.VALID, ota_seq_crc(1) ^ 1)
    assert not bad_crc.valid


def test_active_copy_picks_highest_valid_seq() -> None:
    a = OtaEntry.make(3, OtaState.VALID)
    b = OtaEntry.make(4, OtaState.NEW)
    assert active_copy((a, b)) == 1
    assert active_copy((b, a)) == 0
    assert active_copy((a, b.with_state(OtaState.ABORTED))) == 0
    assert active_copy((a, a)) == 0  # a tie goes to copy 0, as bootloader_common_select_otadata
    empty = OtaEntry.from_bytes(b"\xff" * 32)
    assert active_copy((empty, empty)) is None
    assert b.slot == 1
    assert a.slot == 0


def test_next_seq_follows_esp_rewrite_ota_data() -> None:
    assert next_seq(None, 0) == 1
    assert next_seq(None, 1) == 2
    assert next_seq(1, 1) == 2
    assert next_seq(2, 0) == 3
    assert next_seq(3, 1) == 4
    assert next_seq(7, 0) == 7  # already selects slot 0: same seq
    for seq in range(1, 40):
        for slot in (0, 1):
            new = next_seq(seq, slot)
            assert (new - 1) % 2 == slot
            assert seq <= new <= seq + 1


def test_parse_copies_reads_both_sectors() -> None:
    part = bytearray(b"\xff" * 0x2000)
    part[0:32] = OtaEntry.make(1, OtaState.VALID).to_bytes()
    part[0x1000:0x1020] = OtaEntry.make(2, OtaState.NEW).to_bytes()
    a, b = parse_copies(bytes(part))
    assert (a.seq, a.state, b.seq, b.state) == (1, OtaState.VALID, 2, OtaState.NEW)


@settings(max_examples=200)
@given(st.binary(min_size=32, max_size=32))
def test_parse_any_32_bytes_round_trips(raw: bytes) -> None:
    entry = OtaEntry.from_bytes(raw)
    assert entry.to_bytes() == raw
    assert entry.describe()["ok"] == entry.valid


@pytest.mark.parametrize("state", list(OtaState))
def test_with_state_keeps_crc(state: OtaState) -> None:
    entry = OtaEntry.make(5, OtaState.NEW).with_state(state)
    assert entry.crc_ok
    assert entry.to_bytes()[24:28] == struct.pack("<I", state)
