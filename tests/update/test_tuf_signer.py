"""MedfwTufSigner: TUF signatures made by medfw signers verify with python-tuf's key classes."""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer._key import SSlibKey

from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import KeyMaterialError
from medfw.update.tuf_signer import MedfwTufSigner


@pytest.mark.parametrize(
    ("key_type", "scheme"),
    [
        (KeyType.ECDSA_P256, "ecdsa-sha2-nistp256"),
        (KeyType.ECDSA_P384, "ecdsa-sha2-nistp384"),
        (KeyType.ED25519, "ed25519"),
        (KeyType.RSA3072, "rsassa-pss-sha256"),
    ],
)
def test_signatures_verify(key_type: KeyType, scheme: str) -> None:
    signer = MedfwTufSigner(FileSigner(generate_private_key(key_type)))
    key = signer.public_key
    assert isinstance(key, SSlibKey) and key.scheme == scheme
    sig = signer.sign(b"canonical metadata bytes")
    assert sig.keyid == key.keyid == signer.key_id
    key.verify_signature(sig, b"canonical metadata bytes")
    with pytest.raises(Exception, match=r"(?i)verif|signature"):
        key.verify_signature(sig, b"other bytes")


def test_from_priv_key_uri_checks_the_public_key(tmp_path: Path) -> None:
    a = generate_private_key(KeyType.ECDSA_P256)
    b = generate_private_key(KeyType.ECDSA_P256)
    write_private_key(a, tmp_path / "a.pem")
    pub_a = MedfwTufSigner(FileSigner(a)).public_key
    pub_b = MedfwTufSigner(FileSigner(b)).public_key
    signer = MedfwTufSigner.from_priv_key_uri(str(tmp_path / "a.pem"), pub_a)
    assert signer.key_id == pub_a.keyid
    with pytest.raises(KeyMaterialError, match="does not match"):
        MedfwTufSigner.from_priv_key_uri(f"file:{tmp_path / 'a.pem'}", pub_b)
