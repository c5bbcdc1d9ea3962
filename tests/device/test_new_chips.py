"""ESP32-C2 and ESP32-C5 in the device model, added through the chip registry only.

Facts are checked against espefuse's own virtual chips (``espefuse --virt``) and signatures against espsecure,
both directions: espsecure-signed images boot on the model, medfw-signed images pass ``espsecure
verify-signature``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from medfw import chips
from medfw.audit.sink import MemorySink
from medfw.crypto.keys import private_key_pem, public_key_pem
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.device.chips import CHIPS, get_chip
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image

from ._espefuse import _run

ESPSECURE = [sys.executable, "-m", "espsecure"]


def _espefuse_summary(tmp_path: Path, chip: str, *burns: list[str]) -> dict[str, dict[str, object]]:
    import json

    efuse = tmp_path / f"{chip}.efuse.bin"
    for args in burns:
        _run(chip, efuse, *args)
    out = tmp_path / f"{chip}.json"
    _run(chip, efuse, "summary", "--format", "json", "--file", str(out))
    data: dict[str, dict[str, object]] = json.loads(out.read_text())
    return data


@pytest.mark.parametrize("chip", ["esp32c2", "esp32c5"])
def test_registry_and_field_table_match_espefuse(tmp_path: Path, chip: str) -> None:
    summary = _espefuse_summary(tmp_path, chip)
    layout = chips.get(chip).efuse
    assert layout is not None
    for f in layout.fields:
        real = summary[f.name]
        assert (real["block"], real["word"], real["pos"], real["bit_len"], real["efuse_type"]) == (
            f.block,
            f.word,
            f.pos,
            f.bit_len,
            f.efuse_type,
        ), f.name
    assert summary["SECURE_VERSION"]["bit_len"] == layout.secure_version_bits
    if chip == "esp32c2":
        assert summary["BLOCK_KEY0_HI_128"]["bit_len"] == layout.digest_bytes * 8 == 128
        assert not any(name.startswith(("KEY_PURPOSE_", "SECURE_BOOT_KEY_REVOKE")) for name in summary)
    else:
        assert sum(name.startswith("KEY_PURPOSE_") for name in summary) == layout.key_blocks == 6
        assert sum(name.startswith("SECURE_BOOT_KEY_REVOKE") for name in summary) == layout.digest_slots == 3
        assert layout.sha384_enable in summary


def test_new_chips_come_from_the_registry_only() -> None:
    assert {"esp32c2", "esp32c5"} <= set(CHIPS)
    c2, c5 = get_chip("esp32c2"), get_chip("esp32c5")
    assert (c2.chip_id, c2.signature_blocks, c2.digest_slots, c2.digest_bytes) == (12, 1, 1, 16)
    assert not c2.supports_scheme("rsa3072") and c2.supports_scheme("ecdsa-p256")
    assert (c5.chip_id, c5.bootloader_offset, c5.secure_version_field_bits) == (23, 0x2000, 9)
    assert c5.supports_scheme("ecdsa-p384") and c5.sha384_enable == "SECURE_BOOT_SHA384_EN"


def _keyfile(tmp_path: Path, name: str, curve: ec.EllipticCurve) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(curve)
    path = tmp_path / f"{name}.pem"
    path.write_bytes(private_key_pem(key))
    (tmp_path / f"{name}.pub.pem").write_bytes(public_key_pem(key.public_key()))
    return key, path


def _espsecure(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ESPSECURE, *args], capture_output=True, text=True, check=False, timeout=120)


def _espsecure_signed(tmp_path: Path, unsigned: bytes, key: Path, name: str) -> bytes:
    src, out = tmp_path / f"{name}.bin", tmp_path / f"{name}.signed.bin"
    src.write_bytes(unsigned)
    done = _espsecure("sign-data", "--version", "2", "--keyfile", str(key), "--output", str(out), str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    return out.read_bytes()


def test_esp32c2_digest_is_what_espefuse_burns(tmp_path: Path) -> None:
    key, path = _keyfile(tmp_path, "c2", ec.SECP256R1())
    summary = _espefuse_summary(tmp_path, "esp32c2", ["burn-key-digest", str(path)])
    device = Device.in_memory(chip="esp32c2", key_digests=[public_key_digest(key.public_key())])
    ours = device.efuse.to_espefuse_summary()["BLOCK_KEY0_HI_128"]
    assert ours["value"] == summary["BLOCK_KEY0_HI_128"]["value"]
    assert bytes.fromhex(str(ours["value"]).replace(" ", "")) == public_key_digest(key.public_key())[:16]


def test_esp32c2_boots_espsecure_images_and_espsecure_accepts_ours(tmp_path: Path) -> None:
    key, path = _keyfile(tmp_path, "c2", ec.SECP256R1())
    sink = MemorySink()
    device = Device.in_memory(chip="esp32c2", key_digests=[public_key_digest(key.public_key())], audit=sink)
    assert [s.digest for s in device.efuse.key_slots()] == [public_key_digest(key.public_key())[:16]]
    bl = _espsecure_signed(tmp_path, build_app_image(chip="esp32c2", version="bl", secure_version=0), path, "bl")
    app = _espsecure_signed(tmp_path, build_app_image(chip="esp32c2", version="1.0.0", secure_version=1), path, "app")
    device.flash(bl, app)
    assert device.boot().version == "1.0.0"
    ours = sign_image(build_app_image(chip="esp32c2", version="1.1.0", secure_version=2), [FileSigner(key)])
    (tmp_path / "ours.bin").write_bytes(ours)
    done = _espsecure("verify-signature", "--version", "2", "--keyfile", str(tmp_path / "c2.pub.pem"),
                      str(tmp_path / "ours.bin"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert device.install_update(ours).secure_version == 2
    # one key, one block, nothing to revoke
    assert not get_chip("esp32c2").can_revoke and len(device.efuse.key_slots()) == 1


def test_esp32c2_refuses_rsa(tmp_path: Path) -> None:
    from medfw.crypto.keys import KeyType, generate_private_key
    from medfw.device import UpdateRejectedError

    key, _ = _keyfile(tmp_path, "c2", ec.SECP256R1())
    rsa_key = generate_private_key(KeyType.RSA3072)
    digests = [public_key_digest(key.public_key())]
    device = Device.in_memory(chip="esp32c2", key_digests=digests)
    signer = FileSigner(key)
    device.flash(
        sign_image(build_app_image(chip="esp32c2", version="bl", secure_version=0), [signer]),
        sign_image(build_app_image(chip="esp32c2", version="1.0.0", secure_version=1), [signer]),
    )
    assert device.boot().version == "1.0.0"
    rsa_app = sign_image(build_app_image(chip="esp32c2", version="1.1.0", secure_version=2), [FileSigner(rsa_key)])
    with pytest.raises(UpdateRejectedError) as info:
        device.install_update(rsa_app)
    assert info.value.reason == "unsupported_scheme"


@pytest.mark.parametrize("sha384", [True, False])
def test_esp32c5_p384_needs_sha384_enable(tmp_path: Path, sha384: bool) -> None:
    key, path = _keyfile(tmp_path, "c5", ec.SECP384R1())
    sink = MemorySink()
    device = Device.in_memory(
        chip="esp32c5", key_digests=[public_key_digest(key.public_key())], audit=sink, sha384=sha384
    )
    summary = device.efuse.to_espefuse_summary()
    assert summary["SECURE_BOOT_SHA384_EN"]["value"] is sha384
    bl = _espsecure_signed(tmp_path, build_app_image(chip="esp32c5", version="bl", secure_version=0), path, "bl")
    app = _espsecure_signed(tmp_path, build_app_image(chip="esp32c5", version="1.0.0", secure_version=1), path, "a")
    device.flash(bl, app)
    if sha384:
        assert device.boot().version == "1.0.0"
        ours = sign_image(build_app_image(chip="esp32c5", version="1.1.0", secure_version=2), [FileSigner(key)])
        (tmp_path / "ours.bin").write_bytes(ours)
        done = _espsecure("verify-signature", "--version", "2", "--keyfile", str(tmp_path / "c5.pub.pem"),
                          str(tmp_path / "ours.bin"))  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert device.install_update(ours).secure_version == 2
    else:
        from medfw.device import BootFailedError

        with pytest.raises(BootFailedError):
            device.boot()
        refused = [e for e in sink.events if e.type == "boot.refused"]
        assert refused and refused[0].reason == "unsupported_scheme"


def test_esp32c5_espefuse_agrees_on_sha384_enable(tmp_path: Path) -> None:
    summary = _espefuse_summary(tmp_path, "esp32c5", ["burn-efuse", "SECURE_BOOT_SHA384_EN", "1"])
    device = Device.in_memory(chip="esp32c5", key_digests=[bytes(32)], sha384=True)
    ours = device.efuse.to_espefuse_summary()["SECURE_BOOT_SHA384_EN"]
    assert ours["value"] == summary["SECURE_BOOT_SHA384_EN"]["value"] is True
