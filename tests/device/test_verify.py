"""The device's image check against images signed by espsecure itself (interop), and its reason codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medfw.crypto.keys import load_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.device.chips import get_chip
from medfw.device.efuse import Efuses
from medfw.device.verify import check_image, signed_length
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import sign_image

ESPSECURE = Path(__file__).resolve().parent.parent / "vectors" / "esp" / "espsecure"


def _efuses(chip: str, digest: bytes, *, revoke: bool = False) -> Efuses:
    ef = Efuses(get_chip(chip))
    ef.burn_key_digest(digest)
    ef.enable_secure_boot()
    if revoke:
        ef.revoke_digest(0)
    return ef


def test_espsecure_signed_esp32_bootloader_verifies() -> None:
    """espsecure's golden RSA-signed ESP32 bootloader passes the device check with the golden eFuse digest."""
    image = (ESPSECURE / "bootloader_signed_v2_rsa.bin").read_bytes()
    digest = (ESPSECURE / "rsa_public_key_digest.bin").read_bytes()
    region = image + b"\xff" * 4096  # as read from flash: trailing erased bytes
    result = check_image(region, chip=get_chip("esp32"), efuses=_efuses("esp32", digest), counter=None)
    assert result.ok, result
    assert result.key_slot == 0 and result.length == len(image)
    as_app = check_image(region, chip=get_chip("esp32"), efuses=_efuses("esp32", digest), counter=0)
    assert as_app.reason == "no_app_desc"  # a bootloader has no esp_app_desc_t: it cannot run as an app
    other = (ESPSECURE / "ecdsa256_public_key_digest_v2.bin").read_bytes()
    refused = check_image(region, chip=get_chip("esp32"), efuses=_efuses("esp32", other), counter=None)
    assert refused.reason == "untrusted_key"
    wrong_chip = check_image(region, chip=get_chip("esp32c3"), efuses=_efuses("esp32c3", digest), counter=None)
    assert wrong_chip.reason == "wrong_chip"
    revoked = check_image(
        region, chip=get_chip("esp32c3"), efuses=_efuses("esp32c3", digest, revoke=True), counter=None
    )
    assert revoked.reason == "revoked_key"


def test_device_boots_and_installs_images_signed_by_espsecure(tmp_path: Path) -> None:
    key_file = ESPSECURE / "ecdsa256_secure_boot_signing_key_v2.pem"
    digest = (ESPSECURE / "ecdsa256_public_key_digest_v2.bin").read_bytes()
    signer = FileSigner(load_private_key(key_file))
    bootloader = sign_image(
        build_app_image(chip="esp32c6", version="bl", secure_version=0, project_name="bootloader"), [signer]
    )
    signed: list[bytes] = []
    for version, sv in (("1.0.0", 1), ("2.0.0", 2)):
        unsigned = tmp_path / f"app-{version}.bin"
        unsigned.write_bytes(
            build_app_image(chip="esp32c6", version=version, secure_version=sv, payload=b"\x5a" * 5000)
        )
        out = tmp_path / f"app-{version}.signed.bin"
        cmd = [
            str(Path(sys.executable).parent / "espsecure"),
            "sign-data",
            "--version",
            "2",
            "--keyfile",
            str(key_file),
        ]
        done = subprocess.run([*cmd, "--output", str(out), str(unsigned)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        signed.append(out.read_bytes())
    device = Device.in_memory(chip="esp32c6", key_digests=[digest])
    device.flash(bootloader, signed[0])
    first = device.boot()
    assert (first.slot, first.version, first.key_slot) == (0, "1.0.0", 0)
    assert device.install_update(signed[1]).activated
    assert device.boot(confirm=True).version == "2.0.0"
    assert device.efuse.secure_version(16) == 2


def test_signed_length_pads_to_sector_and_adds_signature_sector() -> None:
    assert signed_length(1) == 8192
    assert signed_length(4096) == 8192
    assert signed_length(4097) == 12288


@pytest.mark.parametrize("secure_boot", [True, False])
def test_unsigned_image_only_runs_without_secure_boot(secure_boot: bool) -> None:
    image = build_app_image(version="1", secure_version=1)
    ef = Efuses(get_chip("esp32c3"))
    ef.burn_key_digest(b"\x01" * 32)
    if secure_boot:
        ef.enable_secure_boot()
    region = image + b"\xff" * 16384
    result = check_image(region, chip=get_chip("esp32c3"), efuses=ef, counter=0)
    assert result.ok is not secure_boot
    if secure_boot:
        assert result.reason == "unsigned"


def test_empty_and_garbage_regions() -> None:
    ef = _efuses("esp32c6", b"\x01" * 32)
    chip = get_chip("esp32c6")
    assert check_image(b"\xff" * 8192, chip=chip, efuses=ef, counter=0).reason == "empty_slot"
    assert check_image(b"", chip=chip, efuses=ef, counter=0).reason == "empty_slot"
    garbage = check_image(b"\x00" * 8192, chip=chip, efuses=ef, counter=0)
    assert garbage.reason == "malformed_image" and garbage.offset == 0
    signer = FileSigner(load_private_key(ESPSECURE / "ecdsa256_secure_boot_signing_key_v2.pem"))
    foreign = sign_image(build_app_image(chip="esp32c6", version="1", secure_version=1), [signer])
    assert check_image(foreign, chip=chip, efuses=ef, counter=0).reason == "untrusted_key"
