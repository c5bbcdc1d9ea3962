"""Token error translation and PIN handling without a token: every message names token and object, never the PIN."""

from __future__ import annotations

import os
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Mechanism

from medfw.crypto import pkcs11 as mod
from medfw.crypto import pkcs11_token as token
from medfw.crypto.uri import Pkcs11Uri
from medfw.errors import HSMError, KeyMaterialError

PIN = "1234-secret-pin"


def _target(uri: str = "pkcs11:token=prod;object=fw") -> token._Target:
    return token._Target(Pkcs11Uri.parse(uri), "/nonexistent.so", token._Pin(PIN))


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (pkcs11.PinIncorrect, "wrong PIN (CKR_PIN_INCORRECT)"),
        (pkcs11.PinLocked, "PIN is locked"),
        (pkcs11.PinExpired, "expired"),
        (pkcs11.PinLenRange, "not valid for this token"),
        (pkcs11.UserPinNotInitialized, "not initialised"),
        (pkcs11.MechanismInvalid, "does not support the mechanism"),
        (pkcs11.MechanismParamInvalid, "rejected the mechanism parameters"),
        (pkcs11.TokenNotPresent, "token was removed"),
        (pkcs11.DeviceError, "sign failed: DeviceError"),
    ],
)
def test_translate(exc: type[pkcs11.PKCS11Error], needle: str) -> None:
    err = token._translate(_target(), exc(f"library text with {PIN}"), "sign", Mechanism.ECDSA)
    assert isinstance(err, HSMError)
    text = err.diagnostics()
    assert needle in text
    assert "token 'prod'" in text
    assert "object 'fw'" in text
    assert PIN not in text
    assert PIN not in repr(err)


def test_error_scrubs_pin_from_any_message() -> None:
    err = _target().error(f"the library said {PIN}")
    assert PIN not in str(err)
    assert "<redacted>" in str(err)
    assert PIN not in repr(_target())


def test_pin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFW_PKCS11_PIN", raising=False)
    monkeypatch.delenv("MEDFW_PKCS11_PIN_FILE", raising=False)
    assert token._resolve_pin(Pkcs11Uri.parse("pkcs11:token=t")).value is None
    monkeypatch.setenv("MEDFW_PKCS11_PIN", "env-pin")
    assert token._resolve_pin(Pkcs11Uri.parse("pkcs11:token=t")).value == "env-pin"
    pin_file = tmp_path / "pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"file-pin\r\n")
    os.close(fd)
    monkeypatch.setenv("MEDFW_PKCS11_PIN_FILE", str(pin_file))
    assert token._resolve_pin(Pkcs11Uri.parse("pkcs11:token=t")).value == "file-pin"  # file beats the variable
    other = tmp_path / "other"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"uri-pin")
    os.close(fd)
    for source in (f"file:{other}", f"file://{other}", str(other)):
        uri = Pkcs11Uri.parse(f"pkcs11:token=t?pin-source={source}")
        assert token._resolve_pin(uri).value == "uri-pin"  # the URI beats the environment
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(HSMError, match="empty"):
        token._resolve_pin(Pkcs11Uri.parse(f"pkcs11:token=t?pin-source={empty}"))
    with pytest.raises(HSMError, match="not a regular file"):
        token._resolve_pin(Pkcs11Uri.parse(f"pkcs11:token=t?pin-source={tmp_path}"))
    with pytest.raises(KeyMaterialError, match="refused"):
        token._resolve_pin(Pkcs11Uri.parse("pkcs11:token=t?pin-value=1"))


def test_module_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDFW_PKCS11_MODULE", raising=False)
    assert token._resolve_module(Pkcs11Uri.parse("pkcs11:token=t")) == mod.DEFAULT_MODULE
    monkeypatch.setenv("MEDFW_PKCS11_MODULE", "/opt/hsm/lib.so")
    assert token._resolve_module(Pkcs11Uri.parse("pkcs11:token=t")) == "/opt/hsm/lib.so"
    assert token._resolve_module(Pkcs11Uri.parse("pkcs11:token=t?module-path=/x.so")) == "/x.so"
    with pytest.raises(KeyMaterialError, match="module-name is not supported"):
        token._resolve_module(Pkcs11Uri.parse("pkcs11:token=t?module-name=softhsm2"))


def test_missing_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFW_PKCS11_PIN", PIN)
    with pytest.raises(HSMError, match=r"/nonexistent/libvendor\.so not found") as ei:
        mod.Pkcs11Signer.from_uri("pkcs11:token=t;object=o?module-path=/nonexistent/libvendor.so")
    assert PIN not in str(ei.value)
