"""The device CA: issuing device certificates (key file and PKCS#11 CA keys) and authenticating them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import DeviceCA, build_csr, create_ca, issue_device_certificate
from medfw.identity.certs import identity_of, serial_hex, verify_device_certificate
from medfw.identity.errors import CertificateRejectedError, IdentityError
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, softhsm_token


def _ca(key_type: KeyType = KeyType.ECDSA_P256) -> DeviceCA:
    return create_ca(FileSigner(generate_private_key(key_type)), organisation="Acme Medical")


def _unit(ca: DeviceCA, device_id: str = "pump-0001", **kw: object) -> tuple[PrivateKey, x509.Certificate]:
    key = generate_private_key(KeyType.ECDSA_P256)
    csr = build_csr(key, device_id=device_id, model="pump", chip="esp32c6")
    return key, issue_device_certificate(ca, csr, device_id=device_id, model="pump", chip="esp32c6", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ED25519, KeyType.RSA3072])
def test_issued_certificate_names_device_model_and_chip(key_type: KeyType) -> None:
    ca = _ca(key_type)
    key, cert = _unit(ca)
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "pump-0001"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "pump"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme Medical"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ident = verify_device_certificate(cert, ca.certificate)
    assert (ident.device_id, ident.model, ident.chip) == ("pump-0001", "pump", "esp32c6")
    assert ident.serial == serial_hex(cert)


def test_certificate_from_another_ca_is_refused() -> None:
    _key, cert = _unit(_ca())
    with pytest.raises(CertificateRejectedError) as e:
        verify_device_certificate(cert, _ca().certificate)
    assert e.value.reason == "unknown_ca"


def test_expired_and_not_yet_valid_certificates_are_refused() -> None:
    ca = _ca()
    _key, cert = _unit(ca, days=1)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with pytest.raises(CertificateRejectedError) as e:
        verify_device_certificate(cert, ca.certificate, now=later)
    assert e.value.reason == "expired"
    with pytest.raises(CertificateRejectedError) as e:
        verify_device_certificate(cert, ca.certificate, now=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert e.value.reason == "not_yet_valid"


def test_revoked_certificate_is_refused() -> None:
    ca = _ca()
    _key, cert = _unit(ca)
    with pytest.raises(CertificateRejectedError) as e:
        verify_device_certificate(cert, ca.certificate, revoked={serial_hex(cert)})
    assert e.value.reason == "revoked"


def test_ca_certificate_is_not_a_device_certificate() -> None:
    ca = _ca()
    with pytest.raises(CertificateRejectedError) as e:
        verify_device_certificate(ca.certificate, ca.certificate)
    assert e.value.reason == "wrong_usage"


def test_csr_whose_key_does_not_match_is_refused() -> None:
    ca = _ca()
    unit = generate_private_key(KeyType.ECDSA_P256)
    other = generate_private_key(KeyType.ECDSA_P256)
    csr = build_csr(other, device_id="pump-1", model="pump", chip="esp32c6")
    with pytest.raises(IdentityError) as e:
        issue_device_certificate(
            ca, csr, device_id="pump-1", model="pump", chip="esp32c6", expected_key=unit.public_key()
        )
    assert e.value.reason == "csr_key_mismatch"


def test_csr_with_broken_signature_is_refused() -> None:
    ca = _ca()
    csr = build_csr(generate_private_key(KeyType.ECDSA_P256), device_id="p", model="pump", chip="c")
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(IdentityError) as e:
        issue_device_certificate(ca, tampered, device_id="p", model="pump", chip="c")
    assert e.value.reason == "csr_key_mismatch"


@pytest.mark.parametrize("bad", ["", "a" * 65, "pump 1", "pump/1", "x\x00"])
def test_malformed_device_ids_are_refused(bad: str) -> None:
    with pytest.raises(IdentityError):
        build_csr(generate_private_key(KeyType.ECDSA_P256), device_id=bad, model="pump", chip="c")


def test_ca_key_must_match_ca_certificate() -> None:
    ca = _ca()
    with pytest.raises(IdentityError):
        DeviceCA(ca.certificate, FileSigner(generate_private_key(KeyType.ECDSA_P256)))


def test_identity_of_refuses_certificate_without_device_san() -> None:
    ca = _ca()
    _key, cert = _unit(ca)
    ident = identity_of(cert)
    assert ident.to_dict()["device_id"] == "pump-0001"
    with pytest.raises(CertificateRejectedError) as e:
        identity_of(ca.certificate)
    assert e.value.reason == "malformed_identity"


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


@pytest.mark.softhsm
@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.RSA3072])
def test_ca_key_in_a_pkcs11_token_issues_certificates(softhsm: SoftHsm, key_type: KeyType) -> None:
    uri = softhsm.uri(f"device-ca-{key_type}")
    generate_key(uri, key_type)
    ca = create_ca(load_signer(uri), organisation="Acme Medical")
    ca.certificate.verify_directly_issued_by(ca.certificate)
    _key, cert = _unit(ca)
    assert verify_device_certificate(cert, ca.certificate).device_id == "pump-0001"
