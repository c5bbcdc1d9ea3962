"""``medfw keys generate`` and ``medfw keys digest``."""

from __future__ import annotations

import hashlib
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from medfw.cli import main
from medfw.crypto.keys import KeyType, key_type_of, load_private_key, private_key_pem

from ._json import result as cli_result

VEC = Path(__file__).resolve().parent.parent / "vectors" / "esp" / "espsecure"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("key_type", ["rsa3072", "ecdsa-p256", "ecdsa-p384", "ed25519"])
def test_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str], key_type: str) -> None:
    out = tmp_path / "k.pem"
    code, stdout, _ = run(capsys, "keys", "generate", "--type", key_type, "--out", out, "--json")
    assert code == 0
    info = cli_result(stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_private_key(out)
    assert key_type_of(key) == KeyType(key_type)
    assert "PRIVATE" not in stdout
    if key_type == "ed25519":
        assert info["sbv2_digest"] is None
    else:
        code, digest_out, _ = run(capsys, "keys", "digest", out, "--format", "sbv2")
        assert digest_out.strip() == info["sbv2_digest"]


def test_generate_refuses_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k.pem"
    assert run(capsys, "keys", "generate", "--type", "ecdsa-p256", "--out", out)[0] == 0
    before = out.read_bytes()
    code, _, err = run(capsys, "keys", "generate", "--type", "ecdsa-p256", "--out", out)
    assert code == 2 and "exists" in err and out.read_bytes() == before
    assert run(capsys, "keys", "generate", "--type", "ecdsa-p256", "--out", out, "--force")[0] == 0
    assert out.read_bytes() != before
    assert run(capsys, "keys", "generate", "--type", "ecdsa-p256")[0] == 2
    with pytest.raises(SystemExit) as info:
        run(capsys, "keys", "generate", "--type", "rsa2048", "--out", tmp_path / "x.pem")
    assert info.value.code == 2


def test_generate_in_hsm_writes_nothing_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, KeyType]] = []
    private = ec.generate_private_key(ec.SECP256R1())

    from medfw.crypto.pkcs11 import GeneratedKey

    def fake_generate(uri: str, key_type: KeyType) -> GeneratedKey:
        calls.append((uri, key_type))
        return GeneratedKey(private.public_key(), uri, "t", "CKM_EC_KEY_PAIR_GEN")

    fake = ModuleType("medfw.crypto.pkcs11")
    fake.generate_keypair = fake_generate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "medfw.crypto.pkcs11", fake)
    uri = "pkcs11:token=t;object=boot"
    code, out, _ = run(
        capsys, "keys", "generate", "--type", "ecdsa-p256", "--hsm", uri, "--out", tmp_path / "pub.pem", "--json"
    )
    assert code == 0 and calls == [(uri, KeyType.ECDSA_P256)]
    assert b"PRIVATE" not in (tmp_path / "pub.pem").read_bytes()
    assert cli_result(out)["key"] == uri
    assert list(tmp_path.iterdir()) == [tmp_path / "pub.pem"]


@pytest.mark.parametrize(
    ("key", "digest"),
    [
        ("rsa_secure_boot_signing_key.pem", "rsa_public_key_digest.bin"),
        ("rsa_secure_boot_signing_pubkey.pem", "rsa_public_key_digest.bin"),
        ("ecdsa256_secure_boot_signing_key_v2.pem", "ecdsa256_public_key_digest_v2.bin"),
    ],
)
def test_digest_sbv2_golden(tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, digest: str) -> None:
    code, out, _ = run(capsys, "keys", "digest", VEC / key, "--format", "sbv2", "--out", tmp_path / "d.bin", "--json")
    assert code == 0
    expected = (VEC / digest).read_bytes()
    assert cli_result(out)["digest"] == expected.hex()
    assert (tmp_path / "d.bin").read_bytes() == expected


def test_digest_sbv2_p384_uses_its_own_layout(capsys: pytest.CaptureFixture[str]) -> None:
    key = serialization.load_pem_private_key((VEC / "ecdsa384_secure_boot_signing_key.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    nums = key.public_key().public_numbers()
    material = b"\x03" + nums.x.to_bytes(48, "little") + nums.y.to_bytes(48, "little")
    code, out, _ = run(capsys, "keys", "digest", VEC / "ecdsa384_secure_boot_signing_key.pem", "--format", "sbv2")
    assert code == 0 and out.strip() == hashlib.sha256(material).hexdigest()


def test_digest_mcuboot(capsys: pytest.CaptureFixture[str]) -> None:
    key = serialization.load_pem_private_key((VEC / "rsa_secure_boot_signing_key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs1 = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    code, out, _ = run(capsys, "keys", "digest", VEC / "rsa_secure_boot_signing_key.pem", "--format", "mcuboot")
    assert code == 0 and out.strip() == hashlib.sha256(pkcs1).hexdigest()


def test_digest_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    code, _, err = run(capsys, "keys", "digest", tmp_path / "junk.pem", "--format", "sbv2")
    assert code == 2 and "junk.pem" in err and "Traceback" not in err
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "small.pem").write_bytes(private_key_pem(small))
    code, _, err = run(capsys, "keys", "digest", tmp_path / "small.pem", "--format", "sbv2")
    assert code == 2 and "RSA-3072" in err
    from cryptography.hazmat.primitives.asymmetric import ed25519

    (tmp_path / "ed.pem").write_bytes(private_key_pem(ed25519.Ed25519PrivateKey.generate()))
    code, _, err = run(capsys, "keys", "digest", tmp_path / "ed.pem", "--format", "sbv2")
    assert code == 2 and "Ed25519" in err
    assert run(capsys, "keys", "digest", tmp_path / "missing.pem", "--format", "sbv2")[0] == 2
