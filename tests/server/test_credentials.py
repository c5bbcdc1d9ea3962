"""Device credentials and API tokens: generated, stored hashed, checked in constant time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.server.credentials import (
    Role,
    hash_token,
    new_device_secret,
    new_token,
    parse_device_credential,
    verify_device_secret,
)


def test_device_secret_roundtrip() -> None:
    s = new_device_secret("pump-1")
    parsed = parse_device_credential(s.credential)
    assert parsed is not None and parsed[0] == "pump-1"
    assert verify_device_secret(s.salt, s.digest, parsed[1])
    assert not verify_device_secret(s.salt, s.digest, parsed[1][:-1] + ("A" if parsed[1][-1] != "A" else "B"))
    assert parsed[1] not in s.digest and s.digest != new_device_secret("pump-1").digest


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_parse_device_credential_never_raises(text: str) -> None:
    parsed = parse_device_credential(text)
    assert parsed is None or f"{parsed[0]}:{parsed[1]}" == text


def test_tokens_and_roles() -> None:
    t = new_token()
    assert t.startswith("mft_") and len(hash_token(t)) == 64 and hash_token(t) != hash_token(new_token())
    assert Role.ADMIN.allows(Role.OPERATOR) and Role.OPERATOR.allows(Role.READ_ONLY)
    assert not Role.OPERATOR.allows(Role.ADMIN) and not Role.READ_ONLY.allows(Role.OPERATOR)
