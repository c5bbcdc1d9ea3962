"""The signed manifest: canonical bytes, signatures with each key type, key mismatch."""

from __future__ import annotations

import pytest

from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import EvidenceError, VerificationError
from medfw.evidence.manifest import FileEntry, canonical_bytes, make_manifest, sign_manifest, verify_manifest_signature

FILES = [FileEntry("b.json", "1" * 64, 2), FileEntry("a.bin", "0" * 64, 1)]


@pytest.mark.parametrize("kind", [KeyType.ED25519, KeyType.ECDSA_P256, KeyType.RSA3072])
def test_sign_and_verify_each_key_type(kind: KeyType) -> None:
    signer = FileSigner(generate_private_key(kind), "keys/evidence.pem")
    m = make_manifest(FILES, release={"name": "fw"}, created="2026-01-01T00:00:00Z", signer=signer)
    assert [f["path"] for f in m["files"]] == ["a.bin", "b.json"]
    assert m["signer"]["key_id"] == "evidence.pem"
    sig = sign_manifest(m, signer)
    verify_manifest_signature(m, sig, signer.public_key())
    tampered = {**m, "created": "2026-01-02T00:00:00Z"}
    with pytest.raises(VerificationError, match="does not verify"):
        verify_manifest_signature(tampered, sig, signer.public_key())
    other = FileSigner(generate_private_key(KeyType.ED25519))
    with pytest.raises(VerificationError, match="different key"):
        verify_manifest_signature(m, sig, other.public_key())


def test_canonical_bytes_ignore_key_order_and_reject_nan() -> None:
    assert (
        canonical_bytes({"b": 1, "a": [1, "x"]}) == canonical_bytes({"a": [1, "x"], "b": 1}) == b'{"a":[1,"x"],"b":1}'
    )
    with pytest.raises(EvidenceError):
        canonical_bytes({"x": float("nan")})


def test_duplicate_paths_are_refused() -> None:
    signer = FileSigner(generate_private_key(KeyType.ED25519))
    with pytest.raises(EvidenceError, match="duplicate"):
        make_manifest([*FILES, FILES[0]], release={}, created="", signer=signer)
