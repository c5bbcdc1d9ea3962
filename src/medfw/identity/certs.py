"""Authenticate a device certificate against the device CA and map it to the device it names."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Container
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medfw.crypto.keys import PublicKey
from medfw.identity.ca import DEVICE_ID_RE, URN_CHIP, URN_DEVICE, URN_MODEL
from medfw.identity.errors import CertificateRejectedError

__all__ = ["DeviceIdentity", "certificate_fingerprint", "identity_of", "serial_hex", "verify_device_certificate"]


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device certificate says: the device id (subject serialNumber), model and chip (SAN URIs)."""

    device_id: str
    model: str
    chip: str
    serial: str
    fingerprint: str
    not_after: dt.datetime
    public_key: PublicKey

    def to_dict(self) -> dict[str, str]:
        """JSON-ready view (no key material)."""
        return {
            "device_id": self.device_id,
            "model": self.model,
            "chip": self.chip,
            "serial": self.serial,
            "fingerprint": self.fingerprint,
            "not_after": self.not_after.isoformat(),
        }


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    """The certificate serial number as lowercase hex (how the revocation list names it)."""
    return format(cert.serial_number, "x")


def identity_of(cert: x509.Certificate) -> DeviceIdentity:
    """Read the device id, model and chip a device certificate names (no trust decision).

    Raises:
        CertificateRejectedError: ``malformed_identity`` — no subject serialNumber, SAN URIs missing or naming
            another device.
    """

    def bad(why: str) -> CertificateRejectedError:
        return CertificateRejectedError(f"device certificate {why}", reason="malformed_identity", field="subject")

    serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(serials) != 1:
        raise bad("has no single subject serialNumber")
    device_id = str(serials[0].value)
    if not DEVICE_ID_RE.match(device_id):
        raise bad("serialNumber is not a device id")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise bad("has no subjectAltName") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    found: dict[str, list[str]] = {URN_DEVICE: [], URN_MODEL: [], URN_CHIP: []}
    for uri in uris:
        for prefix, values in found.items():
            if uri.startswith(prefix):
                values.append(uri[len(prefix) :])
    if found[URN_DEVICE] != [device_id]:
        raise bad("subjectAltName names another device than its serialNumber")
    if len(found[URN_MODEL]) != 1 or len(found[URN_CHIP]) != 1:
        raise bad("subjectAltName lacks one model and one chip")
    pub = cert.public_key()
    return DeviceIdentity(
        device_id=device_id,
        model=found[URN_MODEL][0],
        chip=found[URN_CHIP][0],
        serial=serial_hex(cert),
        fingerprint=certificate_fingerprint(cert),
        not_after=cert.not_valid_after_utc,
        public_key=pub,  # type: ignore[arg-type]
    )


def _check_usage(cert: x509.Certificate) -> None:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateRejectedError(
            "device certificate lacks basicConstraints or extendedKeyUsage", reason="wrong_usage"
        ) from None
    if bc.ca or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise CertificateRejectedError(
            "certificate is not a device (clientAuth, non-CA) certificate", reason="wrong_usage"
        )


def verify_device_certificate(
    cert: x509.Certificate,
    ca: x509.Certificate,
    *,
    now: dt.datetime | None = None,
    revoked: Container[str] = (),
) -> DeviceIdentity:
    """Check that ``cert`` was issued by the device CA ``ca``, is valid at ``now``, is a client certificate, and is
    not revoked; return the identity it names.

    Raises:
        CertificateRejectedError: reason ``unknown_ca`` (issued by another CA or signature invalid), ``expired``,
            ``not_yet_valid``, ``revoked``, ``wrong_usage`` or ``malformed_identity``.
    """
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateRejectedError("certificate was not issued by the device CA", reason="unknown_ca") from None
    t = now or dt.datetime.now(dt.UTC)
    if t < cert.not_valid_before_utc:
        raise CertificateRejectedError("device certificate is not valid yet", reason="not_yet_valid")
    if t > cert.not_valid_after_utc:
        raise CertificateRejectedError(
            f"device certificate expired at {cert.not_valid_after_utc.isoformat()}", reason="expired"
        )
    _check_usage(cert)
    if serial_hex(cert) in revoked:
        raise CertificateRejectedError(f"device certificate {serial_hex(cert)} is revoked", reason="revoked")
    return identity_of(cert)
