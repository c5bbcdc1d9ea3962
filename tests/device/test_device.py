"""The unit end to end: factory boot, trial boot, confirm-and-revert, anti-rollback, bad input, persistence."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.audit.vocabulary import EVENT_TYPES, OUTCOMES
from medfw.crypto.keys import PrivateKey
from medfw.device import (
    BootFailedError,
    Device,
    DeviceStateError,
    RevocationRefusedError,
    UpdateRejectedError,
)
from medfw.device.bootloader import read_otadata, write_otadata
from medfw.device.otadata import OtaEntry, OtaState
from medfw.errors import DeviceError, InputError
from medfw.image.sbv2 import public_key_digest

from .conftest import Kit

Booted = Callable[..., Device]


def test_factory_boot_writes_initial_otadata_and_burns_counter(kit: Kit, sink: MemorySink) -> None:
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest], audit=sink)
    device.flash(kit.bootloader, kit.app("1.0.0", 3))
    assert device.efuse.secure_version(16) == 0
    result = device.boot()
    assert (result.slot, result.version, result.secure_version, result.reason) == (0, "1.0.0", 3, "initial_otadata")
    assert result.state == "VALID"
    assert result.counter == 3
    entries = read_otadata(device.flash_memory, device.table)
    assert entries[0] == OtaEntry.make(1, OtaState.VALID)
    assert [e.type for e in result.events][-2:] == ["security.svn.increment", "boot.select"]


def test_unconfirmed_app_is_reverted_on_next_boot(kit: Kit, booted: Booted, sink: MemorySink) -> None:
    device = booted()
    installed = device.install_update(kit.app("2.0.0", 2))
    assert installed.activated and installed.slot == 1 and installed.seq == 2
    trial = device.boot(app_fails=True)
    assert (trial.slot, trial.reason, trial.state, trial.app_failed) == (1, "trial_boot", "PENDING_VERIFY", True)
    assert trial.counter == 1  # a trial boot never advances the counter
    with pytest.raises(DeviceStateError) as info:
        device.confirm()  # the app crashed: it cannot confirm
    assert info.value.reason == "not_running"
    back = device.boot()
    assert (back.slot, back.version, back.reason, back.reverted) == (0, "1.0.0", "rollback", True)
    assert back.counter == 1
    assert sink.of_type("boot.revert")[-1].reason == "not_confirmed"
    assert read_otadata(device.flash_memory, device.table)[1].state == OtaState.ABORTED
    again = device.boot()
    assert again.slot == 0 and not again.reverted


def test_confirmed_app_advances_counter_and_old_image_is_then_refused(kit: Kit, booted: Booted) -> None:
    device = booted()
    device.install_update(kit.app("2.0.0", 2))
    assert device.boot().state == "PENDING_VERIFY"
    assert device.confirm() == 2
    result = device.boot()
    assert (result.slot, result.state, result.counter) == (1, "VALID", 2)
    status = device.status().to_dict()
    assert status["slots"][0]["reason"] == "rollback"  # the old image is now below the counter
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(kit.app("1.0.0", 1))
    assert info.value.reason == "rollback"


def test_power_loss_after_confirm_before_burn_is_repaired_by_bootloader(
    kit: Kit, booted: Booted, sink: MemorySink
) -> None:
    device = booted()
    device.install_update(kit.app("2.0.0", 2))
    device.boot()
    device.confirm(power_cut_before_burn=True)
    assert device.efuse.secure_version(16) == 1
    result = device.boot()
    assert result.slot == 1 and result.counter == 2
    assert sink.of_type("security.svn.increment")[-1].reason == "image_valid"


def test_app_requested_revert(kit: Kit, booted: Booted) -> None:
    device = booted()
    with pytest.raises(DeviceStateError) as info:
        device.revert()  # nothing to roll back to yet
    assert info.value.reason == "rollback_impossible"
    device.install_update(kit.app("2.0.0", 1))
    device.boot()
    device.confirm()
    result = device.revert()
    assert (result.slot, result.version) == (0, "1.0.0")
    assert read_otadata(device.flash_memory, device.table)[1].state == OtaState.INVALID


def test_install_refused_while_trial_boot_is_unconfirmed(kit: Kit, booted: Booted) -> None:
    device = booted()
    device.install_update(kit.app("2.0.0", 2))
    device.boot()
    with pytest.raises(DeviceStateError) as info:
        device.install_update(kit.app("3.0.0", 3))
    assert info.value.reason == "running_image_unconfirmed"


def test_second_update_cycles_slots_and_sequence(kit: Kit, booted: Booted) -> None:
    device = booted()
    for n, (slot, seq) in enumerate([(1, 2), (0, 3), (1, 4)], start=2):
        result = device.install_update(kit.app(f"{n}.0.0", n))
        assert (result.slot, result.seq) == (slot, seq)
        assert device.boot(confirm=True).slot == slot
    assert device.efuse.secure_version(16) == 4


def test_corrupted_otadata_copy_falls_back_to_the_other(kit: Kit, booted: Booted) -> None:
    device = booted()
    device.install_update(kit.app("2.0.0", 1))
    device.boot(confirm=True)
    part = device.table.otadata
    device.flash_memory.write_sector(part.offset + 0x1000, b"\x02\x00\x00\x00" + b"\x00" * 28)  # bad CRC
    result = device.boot()
    assert (result.slot, result.version, result.reason) == (0, "1.0.0", "highest_valid_seq")


def test_corrupted_otadata_never_boots_an_image_below_the_counter(kit: Kit, booted: Booted, sink: MemorySink) -> None:
    device = booted()
    device.install_update(kit.app("2.0.0", 2))
    device.boot(confirm=True)
    part = device.table.otadata
    device.flash_memory.write_sector(part.offset + 0x1000, b"")  # erase the copy that selects slot 1
    result = device.boot()
    # copy 0 selects slot 0, whose image is now below the counter: refused, and slot 1 boots as a fallback
    assert (result.slot, result.version, result.reason) == (1, "2.0.0", "fallback")
    assert sink.of_type("boot.refused")[-1].reason == "rollback"


def test_both_otadata_copies_invalid_boots_first_verifiable_slot(kit: Kit, booted: Booted) -> None:
    device = booted()
    part = device.table.otadata
    for off in (0, 0x1000):
        device.flash_memory.write_sector(part.offset + off, b"\x00" * 32)
    result = device.boot()
    assert (result.slot, result.reason) == (0, "initial_otadata")


def test_slot_full_of_ff_and_no_bootable_image(kit: Kit, sink: MemorySink) -> None:
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest], audit=sink)
    device.flash(kit.bootloader, b"")
    with pytest.raises(BootFailedError) as info:
        device.boot()
    assert info.value.reason == "no_bootable_image"
    assert [e.reason for e in sink.of_type("boot.refused")] == ["empty_slot", "empty_slot", "no_bootable_image"]
    assert device.power == "off"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda k: k.app("1", 1, keys=()), "unsigned"),
        (lambda k: k.app("1", 1, keys=(k.stranger,)), "untrusted_key"),
        (lambda k: k.app("1", 1, chip="esp32s3"), "wrong_chip"),
    ],
)
def test_factory_image_refused_at_boot(kit: Kit, sink: MemorySink, make: Callable[[Kit], bytes], reason: str) -> None:
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest], audit=sink)
    device.flash(kit.bootloader, make(kit))
    with pytest.raises(BootFailedError):
        device.boot()
    assert sink.of_type("boot.refused")[0].reason == reason


def test_unsigned_bootloader_does_not_boot(kit: Kit, sink: MemorySink) -> None:
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest], audit=sink)
    device.flash(kit.app("bl", 0, keys=(kit.stranger,)), kit.app("1.0.0", 1))
    with pytest.raises(BootFailedError) as info:
        device.boot()
    assert info.value.reason == "untrusted_key"


def test_conservative_key_revocation(kit: Kit, booted: Booted) -> None:
    device = booted(digests=[kit.digest, kit.digest2], revoke_unused=False)
    with pytest.raises(RevocationRefusedError) as info:
        device.revoke_key(0)  # the running app and bootloader are signed only with key 0
    assert info.value.reason == "no_other_key"
    with pytest.raises(RevocationRefusedError) as info:
        device.revoke_key(2)
    assert info.value.reason == "empty_slot"
    # ship an app and a bootloader signed with both keys, then revoke key 0
    device.flash_memory.data[0 : len(kit.bootloader_both)] = kit.bootloader_both
    device.install_update(kit.app("2.0.0", 2, keys=(kit.key, kit.key2)))
    device.boot()
    with pytest.raises(RevocationRefusedError) as info:
        device.revoke_key(0)
    assert info.value.reason == "running_image_not_valid"
    device.confirm()
    device.revoke_key(0)
    assert [s.revoked for s in device.efuse.key_slots()] == [True, False, False]
    assert device.boot().key_slot == 1
    with pytest.raises(UpdateRejectedError) as rej:
        device.install_update(kit.app("3.0.0", 3))  # signed by the revoked key only
    assert rej.value.reason == "revoked_key"


def test_esp32_classic_has_no_revocation(kit: Kit, rsa_key: PrivateKey) -> None:
    device = Device.in_memory(chip="esp32", key_digests=[public_key_digest(rsa_key.public_key())])
    assert device.chip.bootloader_offset == 0x1000
    keys = (rsa_key,)
    device.flash(kit.app("bl", 0, chip="esp32", keys=keys), kit.app("1.0.0", 1, chip="esp32", keys=keys))
    device.boot()
    with pytest.raises(RevocationRefusedError) as info:
        device.revoke_key(0)
    assert info.value.reason == "not_supported"


def test_every_event_is_in_the_audit_vocabulary(kit: Kit, booted: Booted, sink: MemorySink) -> None:
    device = booted()
    with pytest.raises(UpdateRejectedError):
        device.install_update(kit.app("x", 5, keys=(kit.stranger,)))
    device.install_update(kit.app("2.0.0", 2))
    device.boot(app_fails=True)
    device.boot()
    device.install_update(kit.app("2.0.0", 2))
    device.boot(confirm=True)
    types = {e.type for e in sink.events}
    assert types <= EVENT_TYPES
    assert {e.outcome for e in sink.events} <= OUTCOMES
    for needed in ("boot.verify", "boot.select", "boot.revert", "ota.install", "ota.install.rejected", "ota.confirm"):
        assert needed in types
    assert all(e.reason for e in sink.events)
    json.dumps([dict(e.data) for e in sink.events])  # serialisable


def test_persistence_round_trip(kit: Kit, tmp_path: Path) -> None:
    directory = tmp_path / "unit"
    device = Device.init(directory, chip="esp32c6", key_digests=[kit.digest])
    device.flash(kit.bootloader, kit.app("1.0.0", 1))
    device.boot()
    app2 = kit.app("2.0.0", 2)
    device.install_update(app2)
    reopened = Device.open(directory)
    assert reopened.power == "running" and reopened.running_slot == 0
    result = reopened.boot(confirm=True)
    assert (result.slot, Device.open(directory).efuse.secure_version(16)) == (1, 2)
    assert (directory / "flash.bin").stat().st_size == 4 * 1024 * 1024
    assert Device.open(directory).running_image() == app2
    with pytest.raises(DeviceError):
        Device.init(directory, chip="esp32c6", key_digests=[kit.digest])


@pytest.mark.parametrize(
    ("name", "content", "field"),
    [
        ("device.json", b"{not json", None),
        ("device.json", b'{"format": "other"}', "format"),
        ("efuse.json", b'{"format": "medfw-efuse/1", "chip": "esp32c3", "values": {"X": 1}}', "values.X"),
        ("flash.bin", b"\xff" * 4096, "size"),
    ],
)
def test_malformed_device_directory(kit: Kit, tmp_path: Path, name: str, content: bytes, field: str | None) -> None:
    Device.init(tmp_path, chip="esp32c6", key_digests=[kit.digest])
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DeviceError) as info:
        Device.open(tmp_path)
    assert info.value.path == str(tmp_path / name)
    assert info.value.field == field


def test_init_argument_checks(kit: Kit) -> None:
    with pytest.raises(DeviceError):
        Device.in_memory(chip="esp32c6", key_digests=[])
    with pytest.raises(DeviceError):
        Device.in_memory(chip="esp32c6", key_digests=[kit.digest] * 4)
    with pytest.raises(DeviceError):
        Device.in_memory(chip="esp32c6", key_digests=[kit.digest], secure_version_bits=17)
    with pytest.raises(InputError):
        Device.in_memory(chip="esp8266", key_digests=[kit.digest])


def test_secure_version_beyond_field_is_refused(kit: Kit, sink: MemorySink) -> None:
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest], secure_version_bits=4, audit=sink)
    device.flash(kit.bootloader, kit.app("1.0.0", 1))
    device.boot()
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(kit.app("9.0.0", 5))
    assert info.value.reason == "secure_version_too_large"


def test_forced_write_of_otadata_is_seen_by_bootloader(kit: Kit, booted: Booted) -> None:
    device = booted()
    write_otadata(device.flash_memory, device.table, 1, OtaEntry.make(2, OtaState.NEW))  # slot 1 is empty
    result = device.boot()
    assert result.slot == 0 and result.reason == "rollback"
