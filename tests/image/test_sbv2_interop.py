"""Interop with espsecure (esptool) both ways: its verifier accepts medfw's output, medfw accepts its output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from medfw.crypto.keys import KeyType, private_key_pem, public_key_pem
from medfw.crypto.signer import FileSigner
from medfw.image import sbv2
from medfw.image.esp import build_app_image


def espsecure(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "espsecure", *map(str, args)], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_app_image(chip="esp32s3", version="3.1.4", secure_version=9, payload=b"\x3c" * 9000)


def _key_files(tmp_path: Path, signers: list[FileSigner], prefix: str) -> list[Path]:
    paths = []
    for i, s in enumerate(signers):
        p = tmp_path / f"{prefix}{i}.pem"
        p.write_bytes(private_key_pem(s._key))
        paths.append(p)
    return paths


@pytest.mark.parametrize(("family", "count"), [("rsa", 1), ("p256", 1), ("p384", 1), ("rsa", 3), ("p256", 3)])
def test_espsecure_verifies_medfw_signatures(
    request: pytest.FixtureRequest, tmp_path: Path, image: bytes, family: str, count: int
) -> None:
    signers: list[FileSigner] = request.getfixturevalue(f"{family}_signers")[:count]
    signed = tmp_path / "signed.bin"
    signed.write_bytes(sbv2.sign_image(image, signers))
    for key in _key_files(tmp_path, signers, family):
        result = espsecure("verify-signature", "--version", "2", "--keyfile", key, signed)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "verification successful" in result.stdout


def test_espsecure_rejects_medfw_signature_with_other_key(
    tmp_path: Path, image: bytes, p256_signers: list[FileSigner]
) -> None:
    signed = tmp_path / "signed.bin"
    signed.write_bytes(sbv2.sign_image(image, p256_signers[:1]))
    other = _key_files(tmp_path, p256_signers[1:2], "other")[0]
    assert espsecure("verify-signature", "--version", "2", "--keyfile", other, signed).returncode != 0


def test_espsecure_verifies_medfw_appended_blocks(tmp_path: Path, image: bytes, p384_signers: list[FileSigner]) -> None:
    one = sbv2.sign_image(image, p384_signers[:1])
    signed = tmp_path / "signed.bin"
    signed.write_bytes(sbv2.sign_image(one, p384_signers[1:], append=True))
    for key in _key_files(tmp_path, p384_signers, "k"):
        assert espsecure("verify-signature", "--version", "2", "--keyfile", key, signed).returncode == 0


@pytest.mark.parametrize("family", ["rsa", "p256", "p384"])
def test_medfw_verifies_espsecure_signatures(
    request: pytest.FixtureRequest, tmp_path: Path, image: bytes, family: str
) -> None:
    signers: list[FileSigner] = request.getfixturevalue(f"{family}_signers")
    keys = _key_files(tmp_path, signers, family)
    unsigned = tmp_path / "app.bin"
    unsigned.write_bytes(image)
    out = tmp_path / "out.bin"
    result = espsecure("sign-data", "--version", "2", "--keyfile", *keys[:2], "--output", out, unsigned)
    assert result.returncode == 0, result.stdout + result.stderr
    out3 = tmp_path / "out3.bin"
    result = espsecure("sign-data", "--version", "2", "--append-signatures", "--keyfile", keys[2], "-o", out3, out)
    assert result.returncode == 0, result.stdout + result.stderr
    data = out3.read_bytes()
    publics = [s.public_key() for s in signers]
    sector = sbv2.parse_signed_image(data)
    assert [b.key_digest for b in sector.blocks] == [sbv2.public_key_digest(k) for k in publics]
    for slot, key in enumerate(publics):
        assert sbv2.verify_image(data, public_keys=[key]).block_index == slot
    # espsecure's padding and sector layout are what medfw produces for the same image
    ours = sbv2.sign_image(image, signers)
    assert ours[: len(ours) - 4096] == data[: len(data) - 4096]


@pytest.mark.parametrize("family", ["rsa", "p256", "p384"])
def test_key_digests_equal_espsecure(request: pytest.FixtureRequest, tmp_path: Path, family: str) -> None:
    signer: FileSigner = request.getfixturevalue(f"{family}_signers")[0]
    for name, pem in [("priv.pem", private_key_pem(signer._key)), ("pub.pem", public_key_pem(signer.public_key()))]:
        path = tmp_path / name
        path.write_bytes(pem)
        out = tmp_path / f"{name}.digest"
        assert espsecure("digest-sbv2-public-key", "--keyfile", path, "--output", out).returncode == 0
        assert out.read_bytes() == sbv2.public_key_digest(signer.public_key())


@pytest.mark.parametrize("family", ["rsa", "p256", "p384"])
def test_remote_signing_is_byte_identical_to_espsecure(
    request: pytest.FixtureRequest, tmp_path: Path, image: bytes, family: str
) -> None:
    """The same external signature yields the same signed image from medfw and from espsecure."""
    signer: FileSigner = request.getfixturevalue(f"{family}_signers")[0]
    key_type = signer.key_type
    padded = sbv2.pad_image(image)
    digest = sbv2.digest_to_sign(padded, key_type)
    if key_type is KeyType.RSA3072:
        signature = signer.sign_digest(digest, "sha256")
    else:
        alg: hashes.HashAlgorithm = hashes.SHA384() if key_type is KeyType.ECDSA_P384 else hashes.SHA256()
        assert isinstance(signer._key, ec.EllipticCurvePrivateKey)
        signature = signer._key.sign(digest, ec.ECDSA(utils.Prehashed(alg)))  # DER, as espsecure expects
    ours = sbv2.assemble_signed_image(padded, [sbv2.assemble_block(digest, signature, signer.public_key())])
    (tmp_path / "padded.bin").write_bytes(padded)
    (tmp_path / "sig.bin").write_bytes(signature)
    (tmp_path / "pub.pem").write_bytes(public_key_pem(signer.public_key()))
    result = espsecure(
        "sign-data",
        "--version",
        "2",
        "--pub-key",
        tmp_path / "pub.pem",
        "--signature",
        tmp_path / "sig.bin",
        "--output",
        tmp_path / "theirs.bin",
        tmp_path / "padded.bin",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "theirs.bin").read_bytes() == ours
