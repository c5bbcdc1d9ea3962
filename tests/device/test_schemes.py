"""Per-chip Secure Boot v2 schemes: each chip runs only images signed with a scheme its ROM and bootloader verify.

ESP32 (rev ≥ 3.0), ESP32-C3 and ESP32-S3 verify RSA-3072 only; ESP32-C6 verifies RSA-3072 or ECDSA P-256.
ESP32 reads only the first signature block of a sector.
"""

from __future__ import annotations

import pytest

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key
from medfw.device import BootFailedError, Device, UpdateRejectedError
from medfw.device.bootloader import write_otadata
from medfw.device.chips import CHIPS, get_chip
from medfw.device.otadata import OtaEntry, OtaState
from medfw.image.sbv2 import Sbv2Scheme, public_key_digest

from .conftest import Kit


@pytest.fixture(scope="module")
def rsa_stranger() -> PrivateKey:
    return generate_private_key(KeyType.RSA3072)


def _digest(key: PrivateKey) -> bytes:
    return public_key_digest(key.public_key())


def _running(chip: str, kit: Kit, key: PrivateKey, digests: list[bytes], sink: MemorySink) -> Device:
    """A unit of ``chip`` running app 1.0.0 signed by ``key`` (bootloader signed by ``key`` too)."""
    device = Device.in_memory(chip=chip, key_digests=digests, audit=sink, revoke_unused_slots=False)
    keys = (key,)
    device.flash(kit.app("bl", 0, chip=chip, keys=keys), kit.app("1.0.0", 1, chip=chip, keys=keys))
    assert device.boot().version == "1.0.0"
    return device


def _forced_boot_refusal(device: Device, image: bytes, sink: MemorySink) -> str:
    """Write ``image`` into ota_1 with an otadata entry selecting it; return the bootloader's refusal reason."""
    device.flash_memory.write(device.table.app_slot(1).offset, image)
    write_otadata(device.flash_memory, device.table, 1, OtaEntry.make(2, OtaState.NEW))
    before = len(sink.events)
    result = device.boot()
    refused = [e for e in sink.events[before:] if e.type == "boot.refused"]
    assert refused and refused[0].data["image"] == "ota_1"
    assert (result.slot, result.version) == (0, "1.0.0")
    return str(refused[0].reason)


def test_chip_table() -> None:
    rsa, p256 = Sbv2Scheme.RSA3072, Sbv2Scheme.ECDSA_P256
    assert {name: sorted(spec.sbv2_schemes) for name, spec in CHIPS.items()} == {
        "esp32": [rsa],
        "esp32c3": [rsa],
        "esp32s3": [rsa],
        "esp32c6": sorted([rsa, p256]),
        "esp32h2": sorted([rsa, p256]),
        "esp32p4": sorted([rsa, p256]),
        "esp32c2": sorted([Sbv2Scheme.ECDSA_P192, p256]),
        "esp32c5": sorted([rsa, p256, Sbv2Scheme.ECDSA_P384]),
    }
    assert get_chip("esp32").signature_blocks == 1
    assert {get_chip(c).signature_blocks for c in ("esp32c3", "esp32s3", "esp32c6")} == {3}
    for name in set(CHIPS) - {"esp32c5"}:
        assert not get_chip(name).supports_scheme(Sbv2Scheme.ECDSA_P384)
    for name in set(CHIPS) - {"esp32c2"}:
        assert not get_chip(name).supports_scheme(Sbv2Scheme.ECDSA_P192)


@pytest.mark.parametrize("chip", ["esp32c3", "esp32s3"])
def test_ecdsa_image_refused_before_activation_and_at_boot(chip: str, kit: Kit, rsa_key: PrivateKey) -> None:
    sink = MemorySink()
    # the ECDSA key's digest is burned too: the refusal is about the scheme, not about trust
    device = _running(chip, kit, rsa_key, [_digest(rsa_key), kit.digest], sink)
    ecdsa_app = kit.app("2.0.0", 2, chip=chip, keys=(kit.key,))
    otadata = device.flash_memory.read(device.table.otadata.offset, device.table.otadata.size)
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(ecdsa_app)
    assert info.value.reason == "unsupported_scheme"
    assert "ecdsa-p256" in info.value.message and chip in info.value.message
    assert device.flash_memory.read(device.table.otadata.offset, device.table.otadata.size) == otadata
    rejected = [e for e in sink.events if e.type == "ota.install.rejected"]
    assert [(e.outcome, e.reason) for e in rejected] == [("denied", "unsupported_scheme")]
    untouched = device.clone()
    assert _forced_boot_refusal(device, ecdsa_app, sink) == "unsupported_scheme"
    # the same release signed with RSA-3072 installs and boots
    device = untouched
    assert device.install_update(kit.app("2.0.0", 2, chip=chip, keys=(rsa_key,))).activated
    assert device.boot(confirm=True).version == "2.0.0"


def test_ecdsa_bootloader_does_not_boot_on_esp32c3(kit: Kit) -> None:
    sink = MemorySink()
    device = Device.in_memory(chip="esp32c3", key_digests=[kit.digest], audit=sink)
    keys = (kit.key,)
    device.flash(kit.app("bl", 0, chip="esp32c3", keys=keys), kit.app("1.0.0", 1, chip="esp32c3", keys=keys))
    with pytest.raises(BootFailedError) as info:
        device.boot()
    assert info.value.reason == "unsupported_scheme"
    refused = [e for e in sink.events if e.type == "boot.refused"]
    assert refused[0].reason == "unsupported_scheme" and refused[0].data["image"] == "bootloader"
    assert device.status().slots[0]["reason"] == "unsupported_scheme"


def test_ecdsa_and_rsa_both_run_on_esp32c6(kit: Kit, rsa_key: PrivateKey) -> None:
    sink = MemorySink()
    device = _running("esp32c6", kit, kit.key, [kit.digest, _digest(rsa_key)], sink)
    assert device.install_update(kit.app("2.0.0", 2, keys=(kit.key,))).activated
    assert device.boot(confirm=True).key_slot == 0
    assert device.install_update(kit.app("3.0.0", 3, keys=(rsa_key,))).activated
    assert device.boot(confirm=True).key_slot == 1


def test_rsa_runs_on_esp32c3(kit: Kit, rsa_key: PrivateKey) -> None:
    sink = MemorySink()
    device = _running("esp32c3", kit, rsa_key, [_digest(rsa_key)], sink)
    assert device.install_update(kit.app("2.0.0", 2, chip="esp32c3", keys=(rsa_key,))).activated
    booted = device.boot(confirm=True)
    assert (booted.version, booted.key_slot) == ("2.0.0", 0)
    assert not [e for e in sink.events if e.outcome == "denied"]


def test_esp32_reads_only_the_first_signature_block(kit: Kit, rsa_key: PrivateKey, rsa_stranger: PrivateKey) -> None:
    sink = MemorySink()
    device = _running("esp32", kit, rsa_key, [_digest(rsa_key)], sink)
    # trusted key first: the second block is ignored
    assert device.install_update(kit.app("2.0.0", 2, chip="esp32", keys=(rsa_key, rsa_stranger))).activated
    assert device.boot(confirm=True).version == "2.0.0"
    # trusted key only in block 1: ESP32 never looks at it
    second_only = kit.app("3.0.0", 3, chip="esp32", keys=(rsa_stranger, rsa_key))
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(second_only)
    assert info.value.reason == "untrusted_key"
    assert "only signature block 0" in info.value.message
    device.boot()
    running = device.running_slot
    device.flash_memory.write(device.table.app_slot(1 - running).offset, second_only)
    write_otadata(device.flash_memory, device.table, 1 - running, OtaEntry.make(99, OtaState.NEW))
    before = len(sink.events)
    result = device.boot()
    refused = [e for e in sink.events[before:] if e.type == "boot.refused"]
    assert [e.reason for e in refused] == ["untrusted_key"]
    assert result.version == "2.0.0"


def test_key_purpose_chips_accept_a_trusted_key_in_any_block(
    kit: Kit, rsa_key: PrivateKey, rsa_stranger: PrivateKey
) -> None:
    device = _running("esp32c3", kit, rsa_key, [_digest(rsa_key)], MemorySink())
    assert device.install_update(kit.app("2.0.0", 2, chip="esp32c3", keys=(rsa_stranger, rsa_key))).activated
    assert device.boot().key_slot == 0
