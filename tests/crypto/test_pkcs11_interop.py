"""Proof: images signed by SoftHSM2 keys through medfw verify with espsecure and imgtool, as key-file images do."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from imgtool.main import imgtool

from medfw.crypto.keys import KeyType, public_key_pem
from medfw.crypto.registry import load_signer
from medfw.image import mcuboot, sbv2
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, softhsm_token

pytestmark = pytest.mark.softhsm

PAYLOAD = bytes(range(256)) * 37 + b"medfw"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


def _espsecure_verify(pub: Path, image: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "espsecure", "verify-signature", "--version", "2", "--keyfile", str(pub), str(image)],
        check=False,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("key_type", [KeyType.RSA3072, KeyType.ECDSA_P256, KeyType.ECDSA_P384])
def test_sbv2_hsm_image_verifies_with_espsecure(softhsm: SoftHsm, tmp_path: Path, key_type: KeyType) -> None:
    uri = softhsm.uri("sbv2")
    pub = generate_key(uri, key_type)
    signed = sbv2.sign_image(PAYLOAD, [load_signer(uri)])
    image = tmp_path / "signed.bin"
    image.write_bytes(signed)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(public_key_pem(pub))
    result = _espsecure_verify(pem, image)
    assert result.returncode == 0, result.stdout + result.stderr
    # and medfw's own bootloader-style check agrees
    assert sbv2.verify_image(signed, public_keys=[pub]).block_index == 0
    # a flipped bit is refused by espsecure as well
    tampered = bytearray(signed)
    tampered[100] ^= 1
    image.write_bytes(bytes(tampered))
    assert _espsecure_verify(pem, image).returncode != 0


def test_sbv2_three_hsm_blocks(softhsm: SoftHsm, tmp_path: Path) -> None:
    uris = [softhsm.uri(f"k{i}") for i in range(3)]
    pubs = [generate_key(u, KeyType.ECDSA_P256) for u in uris]
    signed = sbv2.sign_image(PAYLOAD, [load_signer(u) for u in uris])
    image = tmp_path / "signed.bin"
    image.write_bytes(signed)
    for i, pub in enumerate(pubs):
        pem = tmp_path / f"pub{i}.pem"
        pem.write_bytes(public_key_pem(pub))
        result = _espsecure_verify(pem, image)
        assert result.returncode == 0, result.stdout + result.stderr
        assert sbv2.verify_image(signed, public_keys=[pub]).block_index == i


@pytest.mark.parametrize("key_type", [KeyType.RSA3072, KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ED25519])
def test_mcuboot_hsm_image_verifies_with_imgtool(softhsm: SoftHsm, tmp_path: Path, key_type: KeyType) -> None:
    uri = softhsm.uri("mcuboot")
    pub = generate_key(uri, key_type)
    signed = mcuboot.sign_image(PAYLOAD, load_signer(uri), version="1.2.3", header_size=0x200, pad_header=True)
    image = tmp_path / "signed.bin"
    image.write_bytes(signed)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(public_key_pem(pub))
    result = CliRunner().invoke(imgtool, ["verify", "-k", str(pem), str(image)])
    assert result.exit_code == 0, result.output
    assert "Image was correctly validated" in result.output


def test_signing_commands_take_pkcs11_uris(
    softhsm: SoftHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``medfw sign sbv2|mcuboot --key pkcs11:…`` (PIN from the environment) produce images the reference tools accept."""
    from medfw.cli import main

    uri = softhsm.uri("cli-key")
    pub = generate_key(uri, KeyType.ECDSA_P256)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(public_key_pem(pub))
    src = tmp_path / "app.bin"
    src.write_bytes(PAYLOAD)
    sbv2_out, mcuboot_out = tmp_path / "app.sbv2.bin", tmp_path / "app.mcuboot.bin"
    assert main(["sign", "sbv2", "--key", uri, "--out", str(sbv2_out), str(src)]) == 0
    argv = ["sign", "mcuboot", "--key", uri, "--version", "1.0.0", "--header-size", "0x200", "--pad-header"]
    assert main([*argv, str(src), str(mcuboot_out)]) == 0
    out, err = capsys.readouterr()
    assert softhsm.pin not in out + err
    result = _espsecure_verify(pem, sbv2_out)
    assert result.returncode == 0, result.stdout + result.stderr
    verified = CliRunner().invoke(imgtool, ["verify", "-k", str(pem), str(mcuboot_out)])
    assert verified.exit_code == 0, verified.output
