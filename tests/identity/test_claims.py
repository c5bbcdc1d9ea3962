"""Signed device claims (JWS): verify with the certified key, refuse other keys, algorithms and devices."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.identity.claims import sign_claims, unverified_claims, verify_claims
from medfw.identity.errors import ClaimsRejectedError


def _claims(**kw: object) -> dict[str, object]:
    return {"dev": "pump-1", "typ": "report", "seq": 7, "iat": 1, "status": "confirmed", **kw}


@pytest.mark.parametrize("key_type", list(KeyType))
def test_claims_roundtrip(key_type: KeyType) -> None:
    s = FileSigner(generate_private_key(key_type))
    token = sign_claims(s, _claims(), kid="abc")
    assert verify_claims(token, s.public_key(), device_id="pump-1", kind="report")["status"] == "confirmed"
    assert unverified_claims(token)["seq"] == 7


def test_claims_signed_by_another_device_are_refused() -> None:
    mine, other = (FileSigner(generate_private_key(KeyType.ECDSA_P256)) for _ in range(2))
    token = sign_claims(other, _claims(), kid="x")
    with pytest.raises(ClaimsRejectedError) as e:
        verify_claims(token, mine.public_key(), device_id="pump-1", kind="report")
    assert e.value.reason == "bad_signature"


def test_modified_payload_is_refused() -> None:
    s = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    h, _p, sig = sign_claims(s, _claims(), kid="x").split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(status="confirmed", seq=99)).encode()).rstrip(b"=").decode()
    with pytest.raises(ClaimsRejectedError) as e:
        verify_claims(f"{h}.{forged}.{sig}", s.public_key(), device_id="pump-1", kind="report")
    assert e.value.reason == "bad_signature"


def test_alg_none_and_other_algorithms_are_refused() -> None:
    s = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    _h, p, _sig = sign_claims(s, _claims(), kid="x").split(".")
    for alg in ("none", "HS256", "EdDSA"):
        h = base64.urlsafe_b64encode(json.dumps({"alg": alg}).encode()).rstrip(b"=").decode()
        with pytest.raises(ClaimsRejectedError) as e:
            verify_claims(f"{h}.{p}.", s.public_key(), device_id="pump-1", kind="report")
        assert e.value.reason in {"bad_algorithm", "malformed_claims"}


def test_claims_for_another_device_or_kind_are_refused() -> None:
    s = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    token = sign_claims(s, _claims(), kid="x")
    with pytest.raises(ClaimsRejectedError) as e:
        verify_claims(token, s.public_key(), device_id="pump-2", kind="report")
    assert e.value.reason == "wrong_device"
    with pytest.raises(ClaimsRejectedError) as e:
        verify_claims(token, s.public_key(), device_id="pump-1", kind="poll")
    assert e.value.reason == "wrong_kind"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_tokens_never_crash(token: str) -> None:
    key = _KEY.public_key()
    with pytest.raises(ClaimsRejectedError):
        verify_claims(token, key, device_id="pump-1", kind="report")


_KEY = FileSigner(generate_private_key(KeyType.ECDSA_P256))
