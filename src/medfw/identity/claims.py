"""Signed device claims: a JWS (RFC 7515, compact serialisation) signed with the device's identity key.

Why JWS and not COSE_Sign1: the fleet protocol is JSON over HTTP, so a JWS travels in a JSON field or an HTTP header
as is, needs no CBOR codec on the server or in the agent, and is readable with any JOSE tool when an incident is
reconstructed. COSE_Sign1 saves some bytes on a constrained link; a report of a few hundred bytes per update step
does not need that. The signature is made with pyca/cryptography through medfw's :class:`~medfw.crypto.signer.Signer`
(so the key may live in a token), and the verifier *pins* the algorithm from the key in the device certificate
(``ES256`` for P-256, ``ES384`` for P-384, ``EdDSA`` for Ed25519, ``PS256`` for RSA-3072): ``alg`` in the header
must match, ``none`` and every other value are refused, so no algorithm-confusion attack applies.

Claims (payload): ``dev`` (device id), ``typ`` (``poll``, ``report``, ``audit``), ``seq`` (per-device counter,
strictly increasing across reports, so a report cannot be replayed), ``iat`` (Unix time), and the state:
``version``, ``secure_version``, ``slot``, ``efuse_counter``, ``key_slots``; reports add ``status``, ``reason``,
``rollout``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from medfw.crypto.keys import KeyType, PublicKey, key_type_of
from medfw.crypto.signer import HashName, Signer
from medfw.identity.errors import ClaimsRejectedError

__all__ = ["MAX_TOKEN", "algorithm_for", "sign_claims", "unverified_claims", "verify_claims"]

MAX_TOKEN = 16 * 1024
_ALG = {KeyType.ECDSA_P256: "ES256", KeyType.ECDSA_P384: "ES384", KeyType.ED25519: "EdDSA", KeyType.RSA3072: "PS256"}
_SIZE = {KeyType.ECDSA_P256: 32, KeyType.ECDSA_P384: 48}


def algorithm_for(key: PublicKey) -> str:
    """The JWS ``alg`` a key of this type signs with."""
    return _ALG[key_type_of(key)]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) > MAX_TOKEN or not all(c.isalnum() or c in "-_" for c in text):
        raise ClaimsRejectedError("claims are not base64url", reason="malformed_claims")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_claims(signer: Signer, claims: dict[str, Any], *, kid: str) -> str:
    """Return the compact JWS of ``claims`` signed by ``signer``."""
    key_type = signer.key_type
    header = {"alg": _ALG[key_type], "kid": kid, "typ": "medfw-claims+jws"}
    signing_input = (
        _b64(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, sort_keys=True, separators=(",", ":")).encode())
    )
    hash_name = HashName.SHA384 if key_type is KeyType.ECDSA_P384 else HashName.SHA256
    sig = signer.sign_message(signing_input.encode("ascii"), hash_name)
    if key_type in _SIZE:
        r, s = decode_dss_signature(sig)
        n = _SIZE[key_type]
        sig = r.to_bytes(n, "big") + s.to_bytes(n, "big")
    return signing_input + "." + _b64(sig)


def _split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise ClaimsRejectedError("claims are not a compact JWS", reason="malformed_claims")
    h, p, s = token.split(".")
    try:
        header = json.loads(_unb64(h))
        payload = json.loads(_unb64(p))
    except (ValueError, UnicodeDecodeError):
        raise ClaimsRejectedError("claims header or payload is not JSON", reason="malformed_claims") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ClaimsRejectedError("claims header and payload must be JSON objects", reason="malformed_claims")
    return header, payload, f"{h}.{p}".encode("ascii"), _unb64(s)


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWS without checking its signature (only to find which device's key to check it with)."""
    return _split(token)[1]


def _verify_signature(key: PublicKey, key_type: KeyType, signature: bytes, message: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        n = _SIZE[key_type]
        if len(signature) != 2 * n:
            raise InvalidSignature
        der = encode_dss_signature(int.from_bytes(signature[:n], "big"), int.from_bytes(signature[n:], "big"))
        algorithm: hashes.HashAlgorithm = hashes.SHA384() if key_type is KeyType.ECDSA_P384 else hashes.SHA256()
        key.verify(der, message, ec.ECDSA(algorithm))
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, message)
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, message, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())


def verify_claims(token: str, key: PublicKey, *, device_id: str, kind: str) -> dict[str, Any]:
    """Verify a claims JWS with the device's certified key and return the claims.

    Raises:
        ClaimsRejectedError: ``malformed_claims``, ``bad_algorithm`` (not the key's algorithm), ``bad_signature``
            (e.g. signed by another device's key), ``wrong_device`` (claims name another device) or ``wrong_kind``.
    """
    header, payload, message, signature = _split(token)
    key_type = key_type_of(key)
    if header.get("alg") != _ALG[key_type]:
        raise ClaimsRejectedError(
            f"claims use algorithm {header.get('alg')!r}, the device key signs {_ALG[key_type]}", reason="bad_algorithm"
        )
    try:
        _verify_signature(key, key_type, signature, message)
    except InvalidSignature:
        raise ClaimsRejectedError(
            "claims signature does not verify with the device's key", reason="bad_signature"
        ) from None
    if payload.get("dev") != device_id:
        raise ClaimsRejectedError(f"claims name device {payload.get('dev')!r}", reason="wrong_device", field="dev")
    if payload.get("typ") != kind:
        raise ClaimsRejectedError(f"claims are of kind {payload.get('typ')!r}, not {kind}", reason="wrong_kind")
    seq = payload.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**53:
        raise ClaimsRejectedError("claims seq must be a non-negative integer", reason="malformed_claims", field="seq")
    return payload
