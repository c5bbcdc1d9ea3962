"""Attacks on the update path: each bad image is refused before activation, and again at boot when forced in."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from medfw.audit.sink import MemorySink
from medfw.device import Device, UpdateRejectedError
from medfw.device.bootloader import read_otadata, write_otadata
from medfw.device.otadata import OtaEntry, OtaState
from medfw.image.sbv2 import SECTOR_SIZE

from .conftest import Kit

FLIP_POSITIONS = 240


@pytest.fixture(scope="module")
def base(kit: Kit) -> Device:
    """A unit with keys 0 and 1 burned, key 1 revoked, running app 1.0.0 (secure_version 2), counter 2."""
    device = Device.in_memory(chip="esp32c6", key_digests=[kit.digest, kit.digest2], revoke_unused_slots=False)
    device.efuse.revoke_digest(1)
    device.flash(kit.bootloader, kit.app("1.0.0", 2))
    device.boot()
    assert device.efuse.secure_version(16) == 2
    return device


def _refused_before_activation(device: Device, image: bytes) -> str:
    before = device.flash_memory.read(device.table.otadata.offset, device.table.otadata.size)
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(image)
    after = device.flash_memory.read(device.table.otadata.offset, device.table.otadata.size)
    assert after == before, "otadata must not change on a refused update"
    assert device.running_slot == 0 and device.power == "running"
    return info.value.reason


def _refused_at_boot(device: Device, image: bytes, sink: MemorySink) -> str:
    """Force ``image`` into ota_1 and make otadata select it (as an attacker with flash access could)."""
    part = device.table.app_slot(1)
    device.flash_memory.write(part.offset, image)
    write_otadata(device.flash_memory, device.table, 1, OtaEntry.make(2, OtaState.NEW))
    result = device.boot()
    refused = [e for e in sink.events if e.type == "boot.refused"]
    assert refused, "the forced image must be refused"
    assert refused[0].data["image"] == "ota_1"
    assert (result.slot, result.version, result.reason) == (0, "1.0.0", "rollback")
    assert result.counter == 2
    return str(refused[0].reason)


ATTACKS: dict[str, tuple[Callable[[Kit], bytes], str]] = {
    "unsigned": (lambda k: k.app("6.6.6", 9, keys=()), "unsigned"),
    "unknown_key": (lambda k: k.app("6.6.6", 9, keys=(k.stranger,)), "untrusted_key"),
    "revoked_key": (lambda k: k.app("6.6.6", 9, keys=(k.key2,)), "revoked_key"),
    "downgrade": (lambda k: k.app("0.9.0", 1), "rollback"),
    "other_chip": (lambda k: k.app("6.6.6", 9, chip="esp32s3"), "wrong_chip"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_refused_before_activation_and_at_boot(kit: Kit, base: Device, attack: str) -> None:
    make, reason = ATTACKS[attack]
    image = make(kit)
    sink = MemorySink()
    device = base.clone(audit=sink)
    assert _refused_before_activation(device, image) == reason
    rejected = sink.of_type("ota.install.rejected")
    assert [e.reason for e in rejected] == [reason]
    assert _refused_at_boot(device, image, sink) == reason


def _flip_positions(image: bytes, count: int) -> list[int]:
    """Header, segment headers, app description, payload, checksum/hash, padding, and signature sector bytes."""
    sector = len(image) - SECTOR_SIZE
    fixed = list(range(0x20)) + list(range(0x20, 0x128, 7))  # header + segment 0 header + app desc
    fixed += [*list(range(sector, sector + 1216, 13)), sector + 1196, sector + 1200, sector + 1216, len(image) - 1]
    rng = random.Random(20261124)
    rest = rng.sample(range(len(image)), count - len(fixed))
    return sorted(set(fixed + rest))


def test_single_byte_flips_are_refused(kit: Kit, base: Device) -> None:
    image = kit.app("2.0.0", 3, size=48 * 1024)
    positions = _flip_positions(image, FLIP_POSITIONS)
    assert len(positions) >= 200
    assert any(p >= len(image) - SECTOR_SIZE for p in positions)
    rng = random.Random(7)
    boot_reasons: dict[str, int] = {}
    for pos in positions:
        bad = bytearray(image)
        bad[pos] ^= rng.randrange(1, 256)
        sink = MemorySink()
        device = base.clone(audit=sink)
        reason = _refused_before_activation(device, bytes(bad))
        assert reason in ("bad_signature", "malformed_image"), (pos, reason)
        at_boot = _refused_at_boot(device, bytes(bad), sink)
        assert at_boot in ("bad_signature", "malformed_image"), (pos, at_boot)
        boot_reasons[at_boot] = boot_reasons.get(at_boot, 0) + 1
    assert sum(boot_reasons.values()) == len(positions)
    # the pristine image is accepted by the same path
    device = base.clone()
    assert device.install_update(image).activated
    assert read_otadata(device.flash_memory, device.table)[1].state == OtaState.NEW
