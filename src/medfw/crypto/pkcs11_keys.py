"""Pure conversions between PKCS#11 key attributes and pyca/cryptography keys and signatures.

Nothing here talks to a token: values read from a token come in as bytes/ints, results go out as
cryptography objects. Every function fails closed with :class:`~medfw.errors.KeyMaterialError` on a key medfw
does not sign with (RSA other than 3072 bits, curves other than P-256/P-384/Ed25519), so the token layer can
re-raise it with the token and object named.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from medfw.crypto.keys import KeyType
from medfw.errors import KeyMaterialError

__all__ = [
    "CurveSpec",
    "curve_for",
    "curve_from_params",
    "ec_public_key",
    "ecdsa_raw_to_der",
    "ed25519_public_key",
    "rsa_public_key",
    "unwrap_ec_point",
]


@dataclass(frozen=True)
class CurveSpec:
    """One curve medfw signs with: its DER ``CKA_EC_PARAMS`` encodings and coordinate length in bytes."""

    name: str
    key_type: KeyType
    params: bytes
    alt_params: tuple[bytes, ...]
    coord_len: int


# ECParameters ::= CHOICE { namedCurve OBJECT IDENTIFIER, ... }: the DER of the OID is what tokens store.
# Ed25519 keys: PKCS#11 3.0 allows the OID 1.3.101.112 or the PrintableString "edwards25519".
_P256 = CurveSpec("P-256", KeyType.ECDSA_P256, bytes.fromhex("06082a8648ce3d030107"), (), 32)
_P384 = CurveSpec("P-384", KeyType.ECDSA_P384, bytes.fromhex("06052b81040022"), (), 48)
_ED25519 = CurveSpec("Ed25519", KeyType.ED25519, bytes.fromhex("06032b6570"), (b"\x13\x0cedwards25519",), 32)
_CURVES: tuple[CurveSpec, ...] = (_P256, _P384, _ED25519)

# Names for curves a token may hold that medfw refuses, so errors say what the key is.
_OTHER_CURVES: dict[str, str] = {
    "1.2.840.10045.3.1.1": "P-192",
    "1.3.132.0.33": "P-224",
    "1.3.132.0.35": "P-521",
    "1.3.132.0.10": "secp256k1",
    "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
    "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
    "1.3.101.113": "Ed448",
}


def curve_for(key_type: KeyType) -> CurveSpec:
    """Return the curve of an EC/EdDSA ``key_type``.

    Raises:
        KeyMaterialError: ``key_type`` is RSA.
    """
    for spec in _CURVES:
        if spec.key_type is key_type:
            return spec
    raise KeyMaterialError(f"{key_type} is not an elliptic-curve key type")


def _oid_text(der: bytes) -> str | None:
    """Decode a DER OBJECT IDENTIFIER to dotted text (``None`` if ``der`` is not one)."""
    if len(der) < 3 or der[0] != 0x06 or der[1] != len(der) - 2 or der[1] > 0x7F:
        return None
    body = der[2:]
    arcs: list[int] = []
    value = 0
    for b in body:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if body[-1] & 0x80 or not arcs:
        return None
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def curve_from_params(params: bytes) -> CurveSpec:
    """Identify the curve of a ``CKA_EC_PARAMS`` value.

    Raises:
        KeyMaterialError: a curve medfw does not sign with (named when known) or unparseable parameters.
    """
    for spec in _CURVES:
        if params == spec.params or params in spec.alt_params:
            return spec
    oid = _oid_text(params)
    if oid is None:
        raise KeyMaterialError("EC key has explicit or unparseable curve parameters: P-256, P-384 or Ed25519 required")
    name = _OTHER_CURVES.get(oid, f"OID {oid}")
    raise KeyMaterialError(f"EC key on curve {name}: P-256, P-384 or Ed25519 is required")


def unwrap_ec_point(point: bytes, point_len: int) -> bytes:
    """Return the raw public point from ``CKA_EC_POINT``.

    PKCS#11 stores it DER-wrapped in an OCTET STRING; some tokens return it raw. ``point_len`` is the raw length
    (65/97 for uncompressed P-256/P-384 points, 32 for Ed25519).

    Raises:
        KeyMaterialError: neither form has the expected length.
    """
    if len(point) == point_len:
        return point
    if len(point) == point_len + 2 and point[0] == 0x04 and point[1] == point_len:
        return point[2:]
    raise KeyMaterialError(f"EC point is {len(point)} bytes, expected a {point_len}-byte point (raw or DER-wrapped)")


def rsa_public_key(modulus: bytes | int, exponent: bytes | int) -> rsa.RSAPublicKey:
    """Build an RSA public key from ``CKA_MODULUS`` / ``CKA_PUBLIC_EXPONENT`` (big-endian bytes or ints).

    Raises:
        KeyMaterialError: not a 3072-bit modulus, or an invalid exponent.
    """
    n = modulus if isinstance(modulus, int) else int.from_bytes(modulus, "big")
    e = exponent if isinstance(exponent, int) else int.from_bytes(exponent, "big")
    if n.bit_length() != 3072:
        raise KeyMaterialError(f"RSA-{n.bit_length()} key: RSA-3072 is required")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise KeyMaterialError(f"invalid RSA public key: {exc}") from None


def ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    """Build an ECDSA public key from ``CKA_EC_PARAMS`` / ``CKA_EC_POINT``.

    Raises:
        KeyMaterialError: wrong curve, or the point is malformed or not on the curve.
    """
    spec = curve_from_params(params)
    if spec.key_type is KeyType.ED25519:
        raise KeyMaterialError("key is Ed25519, not ECDSA")
    raw = unwrap_ec_point(point, 1 + 2 * spec.coord_len)
    curve: ec.EllipticCurve = ec.SECP256R1() if spec.key_type is KeyType.ECDSA_P256 else ec.SECP384R1()
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, raw)
    except ValueError:
        raise KeyMaterialError(f"EC point is not a valid {spec.name} point") from None


def ed25519_public_key(params: bytes, point: bytes) -> ed25519.Ed25519PublicKey:
    """Build an Ed25519 public key from ``CKA_EC_PARAMS`` / ``CKA_EC_POINT``.

    Raises:
        KeyMaterialError: not Ed25519, or the point is malformed.
    """
    spec = curve_from_params(params)
    if spec.key_type is not KeyType.ED25519:
        raise KeyMaterialError(f"key is on {spec.name}, not Ed25519")
    return ed25519.Ed25519PublicKey.from_public_bytes(unwrap_ec_point(point, 32))


def ecdsa_raw_to_der(signature: bytes, coord_len: int) -> bytes:
    """Convert a PKCS#11 ECDSA signature (``r || s``, each ``coord_len`` bytes) to a DER ``Ecdsa-Sig-Value``.

    Raises:
        KeyMaterialError: the signature has the wrong length.
    """
    if len(signature) != 2 * coord_len:
        raise KeyMaterialError(f"ECDSA signature is {len(signature)} bytes, expected {2 * coord_len} (r || s)")
    r = int.from_bytes(signature[:coord_len], "big")
    s = int.from_bytes(signature[coord_len:], "big")
    return encode_dss_signature(r, s)
