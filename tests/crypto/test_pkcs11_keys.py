"""Pure PKCS#11 attribute <-> cryptography conversions (no token needed)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.crypto import pkcs11_keys as pk
from medfw.crypto.keys import KeyType
from medfw.errors import KeyMaterialError


def _der_octets(raw: bytes) -> bytes:
    return bytes([0x04, len(raw)]) + raw


@pytest.mark.parametrize(("curve", "kt"), [(ec.SECP256R1(), KeyType.ECDSA_P256), (ec.SECP384R1(), KeyType.ECDSA_P384)])
def test_ec_public_key_from_attributes(curve: ec.EllipticCurve, kt: KeyType) -> None:
    key = ec.generate_private_key(curve).public_key()
    raw = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    spec = pk.curve_for(kt)
    assert pk.ec_public_key(spec.params, _der_octets(raw)) == key
    assert pk.ec_public_key(spec.params, raw) == key  # tokens that return the raw point


def test_ed25519_public_key_both_param_encodings() -> None:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert pk.ed25519_public_key(bytes.fromhex("06032b6570"), _der_octets(raw)) == key
    assert pk.ed25519_public_key(b"\x13\x0cedwards25519", raw) == key
    with pytest.raises(KeyMaterialError, match="not Ed25519"):
        pk.ed25519_public_key(pk.curve_for(KeyType.ECDSA_P256).params, raw)
    with pytest.raises(KeyMaterialError, match="not ECDSA"):
        pk.ec_public_key(bytes.fromhex("06032b6570"), raw)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ("06052b81040023", "P-521"),
        ("06052b8104000a", "secp256k1"),
        ("06082a8648ce3d030101", "P-192"),
        ("06032b6571", "Ed448"),
        ("06032a0304", "OID 1.2.3.4"),
    ],
)
def test_wrong_curve_is_named(params: str, name: str) -> None:
    with pytest.raises(KeyMaterialError, match=f"curve {name}"):
        pk.curve_from_params(bytes.fromhex(params))


def test_unparseable_params() -> None:
    with pytest.raises(KeyMaterialError, match="explicit or unparseable"):
        pk.curve_from_params(b"\x30\x03\x02\x01\x01")


def test_point_length_checked() -> None:
    with pytest.raises(KeyMaterialError, match="expected a 65-byte point"):
        pk.unwrap_ec_point(b"\x04" * 40, 65)
    with pytest.raises(KeyMaterialError, match="not a valid P-256 point"):
        pk.ec_public_key(pk.curve_for(KeyType.ECDSA_P256).params, b"\x04" + b"\x01" * 64)


def test_rsa_size_enforced() -> None:
    key3072 = rsa.generate_private_key(65537, 3072).public_key()
    n = key3072.public_numbers().n
    assert pk.rsa_public_key(n.to_bytes(384, "big"), b"\x01\x00\x01") == key3072
    key2048 = rsa.generate_private_key(65537, 2048).public_key()
    with pytest.raises(KeyMaterialError, match="RSA-2048 key: RSA-3072 is required"):
        pk.rsa_public_key(key2048.public_numbers().n, 65537)
    with pytest.raises(KeyMaterialError, match="invalid RSA public key"):
        pk.rsa_public_key(n, 4)


def test_curve_for_rsa_refused() -> None:
    with pytest.raises(KeyMaterialError):
        pk.curve_for(KeyType.RSA3072)


@pytest.mark.parametrize(("curve", "coord"), [(ec.SECP256R1(), 32), (ec.SECP384R1(), 48)])
def test_raw_ecdsa_to_der_verifies(curve: ec.EllipticCurve, coord: int) -> None:
    priv = ec.generate_private_key(curve)
    digest = hashlib.sha256(b"firmware").digest()
    der = priv.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(coord, "big") + s.to_bytes(coord, "big")
    out = pk.ecdsa_raw_to_der(raw, coord)
    assert out == der
    priv.public_key().verify(out, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(KeyMaterialError, match="expected"):
        pk.ecdsa_raw_to_der(raw[:-1], coord)


@settings(max_examples=100)
@given(r=st.integers(min_value=1, max_value=2**256 - 1), s=st.integers(min_value=1, max_value=2**256 - 1))
def test_raw_to_der_round_trip(r: int, s: int) -> None:
    der = pk.ecdsa_raw_to_der(r.to_bytes(32, "big") + s.to_bytes(32, "big"), 32)
    assert decode_dss_signature(der) == (r, s)
