"""The manufacturer device CA: create it, and issue each unit an X.509 certificate from its CSR.

The CA key is any medfw :class:`~medfw.crypto.signer.Signer` — a key file or a ``pkcs11:`` token key — so the CA
can stay in an HSM. Device certificates carry:

* subject ``O=<CA organisation>, OU=<model>, CN=<device id>, serialNumber=<device id>``;
* subjectAltName URIs ``urn:medfw:device:<id>``, ``urn:medfw:model:<model>``, ``urn:medfw:chip:<chip>``;
* ``basicConstraints CA:FALSE``, ``keyUsage digitalSignature``, ``extendedKeyUsage clientAuth`` (all critical
  except the EKU), subject and authority key identifiers, a random 159-bit serial number.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medfw.crypto.keys import KeyType, PrivateKey, PublicKey, generate_private_key
from medfw.crypto.signer import HashName, Signer
from medfw.identity._der import outer_parts, reassemble
from medfw.identity.errors import IdentityError

__all__ = [
    "DEFAULT_DEVICE_DAYS",
    "DEVICE_ID_RE",
    "URN_CHIP",
    "URN_DEVICE",
    "URN_MODEL",
    "DeviceCA",
    "build_csr",
    "create_ca",
    "issue_device_certificate",
    "load_certificate",
    "load_csr",
]

URN_DEVICE = "urn:medfw:device:"
URN_MODEL = "urn:medfw:model:"
URN_CHIP = "urn:medfw:chip:"
DEFAULT_DEVICE_DAYS = 3650
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")
_MAX_PEM = 64 * 1024


def _check_name(value: str, field: str, pattern: re.Pattern[str] = _NAME_RE) -> str:
    if not pattern.match(value):
        raise IdentityError(f"{field} {value!r} must be 1-64 characters of [A-Za-z0-9._-]", field=field)
    return value


def _hash_for(key_type: KeyType) -> HashName:
    return HashName.SHA384 if key_type is KeyType.ECDSA_P384 else HashName.SHA256


@functools.cache
def _throwaway(key_type: KeyType) -> PrivateKey:
    """A key whose signature is discarded (only its algorithm identifier is kept); one per process and type."""
    return generate_private_key(key_type)


def sign_x509(builder: x509.CertificateBuilder, signer: Signer) -> bytes:
    """Sign a certificate builder with any medfw signer (key file or PKCS#11 token); return DER.

    The builder is signed once with a throw-away key of the signer's algorithm, so the embedded
    ``signatureAlgorithm`` is right; the to-be-signed bytes are then signed by ``signer`` (RSA: RSASSA-PSS with
    salt = digest length, as every medfw RSA signature; ECDSA: DER ``Ecdsa-Sig-Value``; Ed25519: pure).
    """
    key_type = signer.key_type
    throwaway = _throwaway(key_type)
    hash_name = _hash_for(key_type)
    algorithm = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
    if isinstance(throwaway, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        signed = builder.sign(throwaway, algorithm, rsa_padding=pss)
    elif isinstance(throwaway, ed25519.Ed25519PrivateKey):
        signed = builder.sign(throwaway, None)
    else:
        signed = builder.sign(throwaway, algorithm)
    tbs, alg = outer_parts(signed.public_bytes(serialization.Encoding.DER))
    return reassemble(tbs, alg, signer.sign_message(tbs, hash_name))


def load_certificate(data: bytes, *, path: str | None = None) -> x509.Certificate:
    """Parse one PEM or DER certificate.

    Raises:
        IdentityError: not a certificate.
    """
    if len(data) > _MAX_PEM:
        raise IdentityError("certificate file is too large", path=path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise IdentityError(f"not an X.509 certificate: {e}", path=path, field="certificate") from None


def load_csr(data: bytes, *, path: str | None = None) -> x509.CertificateSigningRequest:
    """Parse a PEM or DER certificate signing request.

    Raises:
        IdentityError: not a CSR.
    """
    if len(data) > _MAX_PEM:
        raise IdentityError("CSR file is too large", path=path)
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as e:
        raise IdentityError(f"not a certificate signing request: {e}", path=path, field="csr") from None


@dataclass(frozen=True)
class DeviceCA:
    """A device CA: its certificate and the signer of its key."""

    certificate: x509.Certificate
    signer: Signer

    def __post_init__(self) -> None:
        if self.certificate.public_key() != self.signer.public_key():
            raise IdentityError("the CA key does not belong to the CA certificate", field="ca_key")

    @property
    def organisation(self) -> str:
        """The CA subject's organisation (copied into device subjects)."""
        attrs = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(attrs[0].value) if attrs else "medfw"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_ca(signer: Signer, *, organisation: str, days: int = 7300, now: dt.datetime | None = None) -> DeviceCA:
    """Create a self-signed device CA certificate for ``signer``'s key (pathlen 0: it issues device certificates)."""
    _check_name(organisation, "organisation")
    if not 1 <= days <= 36500:
        raise IdentityError("CA validity must be 1..36500 days", field="days")
    t = now or _now()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} Device CA"),
        ]
    )
    pub = signer.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pub)
        .serial_number(secrets.randbits(159) | 1)
        .not_valid_before(t - dt.timedelta(minutes=5))
        .not_valid_after(t + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
    )
    cert = x509.load_der_x509_certificate(sign_x509(builder, signer))
    return DeviceCA(cert, signer)


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _device_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def build_csr(key: PrivateKey, *, device_id: str, model: str, chip: str) -> x509.CertificateSigningRequest:
    """The unit's certificate signing request, signed by its own key (proof of possession).

    A CSR carries the public key of the key that signs it, so it is made with the key itself (on a real unit the
    secure-cert tooling makes the CSR inside the chip and hands over only the CSR: ``--csr``).
    """
    _check_name(device_id, "device_id", DEVICE_ID_RE)
    _check_name(model, "model")
    _check_name(chip, "chip")
    builder = x509.CertificateSigningRequestBuilder().subject_name(_device_name(device_id, model, None))
    builder = builder.add_extension(_san(device_id, model, chip), critical=False)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)
    algorithm = (
        hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) and key.key_size == 384 else hashes.SHA256()
    )
    return builder.sign(key, algorithm)


def _device_name(device_id: str, model: str, organisation: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)] if organisation else []
    attrs += [
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, model),
        x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, device_id),
    ]
    return x509.Name(attrs)


def _san(device_id: str, model: str, chip: str) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(
        [
            x509.UniformResourceIdentifier(URN_DEVICE + device_id),
            x509.UniformResourceIdentifier(URN_MODEL + model),
            x509.UniformResourceIdentifier(URN_CHIP + chip),
        ]
    )


def issue_device_certificate(
    ca: DeviceCA,
    csr: x509.CertificateSigningRequest,
    *,
    device_id: str,
    model: str,
    chip: str,
    days: int = DEFAULT_DEVICE_DAYS,
    expected_key: PublicKey | None = None,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """Issue the unit's certificate from its CSR.

    The CSR's signature must verify (the requester holds the key) and, with ``expected_key``, its key must be that
    key. The subject and SAN are set from ``device_id``/``model``/``chip`` by the CA, not copied from the CSR.

    Raises:
        IdentityError: the CSR's signature does not verify or its key is not ``expected_key`` (reason
            ``csr_key_mismatch``), a name is malformed, or ``days`` is out of range.
    """
    _check_name(device_id, "device_id", DEVICE_ID_RE)
    _check_name(model, "model")
    _check_name(chip, "chip")
    if not 1 <= days <= 36500:
        raise IdentityError("certificate validity must be 1..36500 days", field="days")
    if not csr.is_signature_valid:
        raise IdentityError("the CSR's signature does not verify with its own key", reason="csr_key_mismatch")
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise IdentityError("unsupported device key type", field="csr")
    if expected_key is not None and pub != expected_key:
        raise IdentityError("the CSR's key is not the unit's key", reason="csr_key_mismatch", field="csr")
    t = now or _now()
    not_after = min(t + dt.timedelta(days=days), ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_device_name(device_id, model, ca.organisation))
        .issuer_name(ca.certificate.subject)
        .public_key(pub)
        .serial_number(secrets.randbits(159) | 1)
        .not_valid_before(t - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_device_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_san(device_id, model, chip), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.signer.public_key()),
            critical=False,
        )
    )
    return x509.load_der_x509_certificate(sign_x509(builder, ca.signer))
