"""Bootloader properties over arbitrary otadata: it never crashes, never runs an image below the counter, and
only advances the counter for an entry that is VALID."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit.sink import MemorySink
from medfw.device import Device
from medfw.device.bootloader import read_otadata, run_bootloader, write_otadata
from medfw.device.otadata import OtaEntry, OtaState, ota_seq_crc

from .conftest import Kit


@pytest.fixture(scope="module")
def two_slots(kit: Kit) -> Device:
    """ota_0: 1.0.0 (secure_version 1, VALID); ota_1: 2.0.0 (secure_version 2, NEW); counter 1."""
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest])
    device.flash(kit.bootloader, kit.app("1.0.0", 1))
    device.boot()
    device.install_update(kit.app("2.0.0", 2))
    return device


_seq = st.sampled_from([0, 1, 2, 3, 4, 5, 0xFFFFFFFF]) | st.integers(0, 0xFFFFFFFF)
_state = st.sampled_from([int(s) for s in OtaState]) | st.integers(0, 0xFFFFFFFF)


@st.composite
def _entry(draw: st.DrawFn) -> OtaEntry:
    seq = draw(_seq)
    crc = ota_seq_crc(seq) if draw(st.booleans()) else draw(st.integers(0, 0xFFFFFFFF))
    return OtaEntry(seq, draw(_state), crc, draw(st.sampled_from([b"\xff" * 20, bytes(20)])))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_entry(), b=_entry())
def test_any_otadata_boots_safely(two_slots: Device, a: OtaEntry, b: OtaEntry) -> None:
    device = two_slots.clone()
    write_otadata(device.flash_memory, device.table, 0, a)
    write_otadata(device.flash_memory, device.table, 1, b)
    before = device.efuse.secure_version(16)
    result = run_bootloader(device.flash_memory, device.efuse, device.boot_config)
    assert result.slot in (0, 1)
    assert (result.slot, result.version, result.secure_version) in ((0, "1.0.0", 1), (1, "2.0.0", 2))
    assert result.secure_version is not None and result.secure_version >= before
    if result.counter > before:
        assert result.state == "VALID"
        assert result.counter == result.secure_version
    entries = read_otadata(device.flash_memory, device.table)
    assert all(e.state != OtaState.PENDING_VERIFY or not e.valid or e.slot == result.slot for e in entries)


def test_invalid_pending_copy_is_aborted_without_a_revert_event(two_slots: Device) -> None:
    sink = MemorySink()
    device = two_slots.clone(audit=sink)
    torn = OtaEntry(2, OtaState.PENDING_VERIFY, 0x12345678)  # bad CRC: not a trial boot
    write_otadata(device.flash_memory, device.table, 1, torn)
    result = device.boot()
    assert result.slot == 0 and not result.reverted
    assert not sink.of_type("boot.revert")
    assert read_otadata(device.flash_memory, device.table)[1].state == OtaState.ABORTED


def test_trial_boot_then_abort(two_slots: Device) -> None:
    device = two_slots.clone()
    trial = run_bootloader(device.flash_memory, device.efuse, device.boot_config)
    assert (trial.slot, trial.reason, trial.state) == (1, "trial_boot", "PENDING_VERIFY")
    back = run_bootloader(device.flash_memory, device.efuse, device.boot_config)
    assert (back.slot, back.reason, back.reverted) == (0, "rollback", True)
    assert [e.type for e in back.events].count("boot.revert") == 1
