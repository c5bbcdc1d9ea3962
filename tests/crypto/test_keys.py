"""medfw.crypto.keys and signer: generation, 0600 files, loading errors, digest signing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from medfw.crypto.keys import (
    KeyType,
    generate_private_key,
    key_type_of,
    load_private_key,
    load_public_key,
    public_key_pem,
    write_private_key,
)
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import FileSigner
from medfw.errors import InputError, KeyMaterialError, UsageError


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ED25519])
def test_generate_write_load(tmp_path: Path, key_type: KeyType) -> None:
    key = generate_private_key(key_type)
    path = tmp_path / "k.pem"
    write_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_type_of(load_private_key(path)) is key_type
    with pytest.raises(InputError, match="exists"):
        write_private_key(key, path)
    write_private_key(generate_private_key(key_type), path, force=True)
    pub = tmp_path / "k.pub"
    pub.write_bytes(public_key_pem(load_public_key(path)))
    assert key_type_of(load_public_key(pub)) is key_type
    with pytest.raises(KeyMaterialError, match="public key"):
        load_private_key(pub)


def test_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(KeyMaterialError) as info:
        load_public_key(path)
    assert info.value.path == str(path)
    with pytest.raises(InputError, match="not found"):
        load_private_key(tmp_path / "missing.pem")


def test_rsa2048_and_p521_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa2048.pem"
    path.write_bytes(
        small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(KeyMaterialError, match="RSA-3072 is required"):
        load_signer(str(path))
    with pytest.raises(KeyMaterialError, match="P-256 or P-384"):
        FileSigner(ec.generate_private_key(ec.SECP521R1()))


def test_encrypted_key_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(KeyMaterialError, match="password"):
        load_private_key(path)


def test_sign_digest_rsa_pss_and_ecdsa(tmp_path: Path) -> None:
    ecdsa = FileSigner(ec.generate_private_key(ec.SECP384R1()))
    digest = b"\x07" * 48
    ecdsa.public_key().verify(ecdsa.sign_digest(digest, "sha384"), digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))  # type: ignore[union-attr,call-arg]
    with pytest.raises(UsageError):
        ecdsa.sign_digest(b"\x07" * 32, "sha384")
    path = Path(__file__).resolve().parent.parent / "vectors/esp/espsecure/rsa_secure_boot_signing_key.pem"
    signer = load_signer(f"file:{path}")
    d = b"\x01" * 32
    sig = signer.sign_digest(d, "sha256")
    pub = signer.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    pub.verify(sig, d, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), utils.Prehashed(hashes.SHA256()))


def test_hash_names_are_an_enum_validated_at_the_signing_call() -> None:
    from medfw.crypto.signer import HashName, hash_algorithm

    signer = FileSigner(ec.generate_private_key(ec.SECP384R1()))
    public = signer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    for name in ("sha384", HashName.SHA384):  # the plain spelling still works at the API boundary
        public.verify(signer.sign_message(b"m", name), b"m", ec.ECDSA(hashes.SHA384()))
    with pytest.raises(UsageError, match="unknown hash 'md5'"):
        signer.sign_message(b"m", "md5")
    with pytest.raises(UsageError, match="unknown hash 'sha1'"):
        signer.sign_digest(b"\0" * 20, "sha1")
    with pytest.raises(ValueError, match="not a valid HashName"):
        hash_algorithm("sha3_256")  # type: ignore[arg-type]
