"""The eFuse model: write-once bits, write protection, key digests, revocation, thermometer counter, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.crypto.keys import load_private_key
from medfw.device.chips import get_chip
from medfw.device.efuse import Efuses
from medfw.device.errors import EfuseWriteError
from medfw.errors import DeviceError
from medfw.image.sbv2 import public_key_digest

from ._espefuse import lock_names, make_summary_inprocess, write_key


def test_burned_bits_never_clear() -> None:
    ef = Efuses(get_chip("esp32c3"))
    ef.burn("SOFT_DIS_JTAG", 0b001)
    ef.burn("SOFT_DIS_JTAG", 0b011)
    assert ef.get("SOFT_DIS_JTAG") == 0b011
    with pytest.raises(EfuseWriteError) as info:
        ef.burn("SOFT_DIS_JTAG", 0b100)
    assert info.value.reason == "cannot_clear_bits"
    assert ef.get("SOFT_DIS_JTAG") == 0b011
    ef.burn("SOFT_DIS_JTAG", 0b011)  # same value: no-op


def test_write_protection_blocks_writes_of_every_field_sharing_the_bit() -> None:
    ef = Efuses(get_chip("esp32c3"))
    ef.write_protect("DIS_DOWNLOAD_MODE")  # WR_DIS bit 18 also covers SECURE_VERSION on the C3
    assert ef.is_write_protected("SECURE_VERSION")
    with pytest.raises(EfuseWriteError) as info:
        ef.burn("DIS_DOWNLOAD_MODE", 1)
    assert info.value.reason == "write_protected"
    with pytest.raises(EfuseWriteError):
        ef.burn_secure_version(1, 16)


@settings(max_examples=60)
@given(st.lists(st.integers(min_value=0, max_value=16), max_size=12))
def test_counter_is_a_monotonic_thermometer(versions: list[int]) -> None:
    ef = Efuses(get_chip("esp32s3"))
    high = 0
    for v in versions:
        ef.burn_secure_version(v, 16)
        high = max(high, v)
        assert ef.secure_version(16) == high
        assert ef.get("SECURE_VERSION") == (1 << high) - 1


def test_counter_refuses_values_beyond_the_field() -> None:
    ef = Efuses(get_chip("esp32c3"))
    with pytest.raises(EfuseWriteError) as info:
        ef.burn_secure_version(9, 8)
    assert info.value.reason == "secure_version_too_large"
    ef.burn("SECURE_VERSION", 0b1010_0000_0000_0101)  # stray bits: popcount within the width counts
    assert ef.secure_version(16) == 4
    assert ef.secure_version(4) == 2


def test_key_digests_fill_slots_and_are_write_protected() -> None:
    ef = Efuses(get_chip("esp32c3"))
    assert ef.burn_key_digest(b"\x01" * 32) == 0
    assert ef.burn_key_digest(b"\x02" * 32) == 1
    assert ef.get("KEY_PURPOSE_0") == 9
    assert ef.get("KEY_PURPOSE_1") == 10
    assert ef.is_write_protected("BLOCK_KEY0")
    assert ef.is_write_protected("KEY_PURPOSE_1")
    assert ef.trusted_digests() == [b"\x01" * 32, b"\x02" * 32]
    ef.revoke_digest(0)
    assert ef.trusted_digests() == [b"\x02" * 32]
    slots = ef.key_slots()
    assert [s.revoked for s in slots] == [True, False, False]
    assert slots[2].digest is None
    ef.burn_key_digest(b"\x03" * 32)
    with pytest.raises(EfuseWriteError):
        ef.burn_key_digest(b"\x04" * 32)
    with pytest.raises(EfuseWriteError):
        ef.burn_key_digest(b"\x04" * 31)


def test_classic_esp32_has_one_digest_and_no_revocation() -> None:
    ef = Efuses(get_chip("esp32"))
    ef.burn_key_digest(b"\x05" * 32)
    assert ef.key_slots()[0].block == "BLOCK2"
    with pytest.raises(EfuseWriteError):
        ef.burn_key_digest(b"\x06" * 32)
    with pytest.raises(EfuseWriteError):
        ef.revoke_digest(0)
    ef.enable_secure_boot()
    assert ef.get("ABS_DONE_1") == 1
    assert ef.secure_boot_enabled


def test_lock_down_bits() -> None:
    ef = Efuses(get_chip("esp32s3"))
    assert not (ef.jtag_disabled or ef.download_mode_disabled or ef.flash_encryption_enabled)
    ef.disable_jtag()
    ef.disable_download_mode()
    ef.enable_flash_encryption()
    assert ef.jtag_disabled and ef.download_mode_disabled and ef.flash_encryption_enabled
    assert ef.get("DIS_PAD_JTAG") == ef.get("DIS_USB_JTAG") == 1
    assert ef.get("SPI_BOOT_CRYPT_CNT") == 1


def test_json_round_trip_and_malformed_state() -> None:
    ef = Efuses(get_chip("esp32c3"))
    ef.burn_key_digest(bytes(range(32)))
    ef.burn_secure_version(3, 16)
    again = Efuses.from_dict(json.loads(json.dumps(ef.to_dict())))
    assert again.to_dict() == ef.to_dict()
    with pytest.raises(DeviceError):
        Efuses.from_dict({"format": "other"})
    with pytest.raises(DeviceError) as info:
        Efuses.from_dict({"format": "medfw-efuse/1", "chip": "esp32c3", "values": {"NOPE": 1}}, path="e.json")
    assert info.value.path == "e.json"
    with pytest.raises(DeviceError):
        Efuses.from_dict({"format": "medfw-efuse/1", "chip": "esp32c3", "values": {"SECURE_VERSION": "x"}})
    with pytest.raises(DeviceError):
        Efuses.from_dict({"format": "medfw-efuse/1", "chip": "esp32c3", "values": {"SECURE_VERSION": 1 << 20}})


@pytest.mark.parametrize(("chip", "vector"), [("esp32c3", "esp32c3_locked.json"), ("esp32", "esp32_locked.json")])
def test_summary_export_has_espefuse_layout(vectors: Path, chip: str, vector: str) -> None:
    """Every exported field carries the same layout metadata as espefuse's own summary."""
    real = json.loads((vectors / "efuse" / vector).read_text())
    ours = Efuses(get_chip(chip)).to_espefuse_summary(chip)
    keys = {"bit_len", "block", "category", "description", "efuse_type", "name", "pos", "word"}
    for name, entry in ours.items():
        assert set(entry) == set(real[name]), name
        assert {k: entry[k] for k in keys} == {k: real[name][k] for k in keys}, name
        assert len(entry["raw_value"]) == len(real[name]["raw_value"]), name


def test_summary_export_reproduces_espefuse_values_for_the_same_burns(vectors: Path) -> None:
    """Burning what the locked vector burned gives the same raw values and write protection."""
    real = json.loads((vectors / "efuse" / "esp32c3_locked.json").read_text())
    ef = Efuses(get_chip("esp32c3"))
    ef.burn_key_digest(bytes.fromhex(real["BLOCK_KEY0"]["raw_value"][2:]))
    for name in ("SECURE_BOOT_EN", "DIS_PAD_JTAG", "DIS_USB_JTAG", "DIS_DOWNLOAD_MODE", "SPI_BOOT_CRYPT_CNT"):
        ef.burn(name, 1)
    ef.revoke_digest(1)
    ef.revoke_digest(2)
    ef.burn_secure_version(1, 16)
    ours = ef.to_espefuse_summary()
    for name, entry in ours.items():
        assert entry["raw_value"] == real[name]["raw_value"], name
        assert entry["value"] == real[name]["value"], name
        assert entry["writeable"] == real[name]["writeable"], name
    with pytest.raises(DeviceError):
        ef.to_espefuse_summary("esp32s3")


def test_esp32c6_export_matches_espefuse(tmp_path: Path) -> None:
    """ESP32-C6: the same burns give espefuse's own summary — layout, descriptions, values and write protection."""
    key = write_key(tmp_path, "esp32c6")
    real = make_summary_inprocess(tmp_path, "esp32c6", set(lock_names("esp32c6")), key, "locked")
    ef = Efuses(get_chip("esp32c6"))
    ef.burn_key_digest(public_key_digest(load_private_key(key).public_key()))
    for name in ("SECURE_BOOT_EN", "DIS_PAD_JTAG", "DIS_USB_JTAG", "DIS_DOWNLOAD_MODE", "SPI_BOOT_CRYPT_CNT"):
        ef.burn(name, 1)
    ef.revoke_digest(1)
    ef.revoke_digest(2)
    ef.burn_secure_version(1, 16)
    ours = ef.to_espefuse_summary("esp32c6")
    keys = {"bit_len", "block", "category", "description", "efuse_type", "name", "pos", "word"}
    for name, entry in ours.items():
        assert set(entry) == set(real[name]), name
        assert {k: entry[k] for k in keys} == {k: real[name][k] for k in keys}, name
        for field in ("raw_value", "value", "writeable"):
            assert entry[field] == real[name][field], (name, field)
