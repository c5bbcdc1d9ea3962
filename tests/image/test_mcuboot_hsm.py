"""MCUboot signing with keys that never leave a PKCS#11 token (SoftHSM2), checked by imgtool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from imgtool.main import imgtool

from medfw.cli import main
from medfw.crypto.keys import KeyType, public_key_pem
from medfw.crypto.registry import load_signer
from medfw.image.mcuboot import key_hash, sign_image, verify_image
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, softhsm_token

pytestmark = pytest.mark.softhsm


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA3072, KeyType.ED25519])
def test_token_key_signs_images_imgtool_accepts(softhsm: SoftHsm, tmp_path: Path, key_type: KeyType) -> None:
    uri = softhsm.uri(f"mcuboot-{key_type}")
    pub = generate_key(uri, key_type)
    signer = load_signer(uri)
    image = sign_image(
        b"\x7f" * 2000,
        signer,
        version="2.1.0+9",
        header_size=0x200,
        pad_header=True,
        security_counter="auto",
        slot_size=0x4000,
        confirm=True,
    )
    assert verify_image(image, [pub]).key_hash == key_hash(
        pub, "sha384" if key_type is KeyType.ECDSA_P384 else "sha256"
    )
    pem = tmp_path / "pub.pem"
    pem.write_bytes(public_key_pem(pub))
    signed = tmp_path / "signed.bin"
    signed.write_bytes(image)
    result = CliRunner().invoke(imgtool, ["verify", "-k", str(pem), str(signed)])
    assert result.exit_code == 0, result.output
    assert "2.1.0+9" in result.output


def test_cli_signs_and_verifies_with_key_uri(
    softhsm: SoftHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = softhsm.uri("cli-key")
    pub = generate_key(uri, KeyType.ECDSA_P256)
    app = tmp_path / "app.bin"
    app.write_bytes(b"\x01\x02" * 500)
    out = tmp_path / "s.bin"
    argv = ["sign", "mcuboot", "--key", uri, "--version", "1.0.0", "--header-size", "0x200", "--pad-header"]
    assert main([*argv, "--json", str(app), str(out)]) == 0
    signed = json.loads(capsys.readouterr().out)["result"]
    assert signed["key_hash_sha256"] == key_hash(pub).hex()
    assert main(["verify", "mcuboot", "--key", uri, str(out)]) == 0
    assert softhsm.pin not in capsys.readouterr().out
