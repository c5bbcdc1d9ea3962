"""The unit's side of its identity: provisioning (key, CSR, certificate, its own audit log) and, at run time, its
certificate, TLS client files and signed claims.

Files in the device directory::

    identity/device.key    the unit's private key (P-256, mode 0600). On a real ESP32 it lives in the Digital
                           Signature peripheral / esp_secure_cert partition and never leaves the chip.
    identity/device.csr    the CSR the unit signed (kept as provisioning evidence)
    identity/device.crt    the certificate the manufacturer device CA issued
    identity/ca.crt        the device CA certificate
    identity/state.json    the claims counter (``seq``), strictly increasing
    audit.sqlite           the unit's own hash-chained, HMAC-sealed audit log (:mod:`medfw.audit` format), sealed
                           with a key derived at provisioning: ``K0 = HKDF-SHA256(master, info="medfw-device-audit/v1/"
                           + device id)``; the fleet server derives the same K0 from the same master to verify uploads.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medfw._io import atomic_write, read_bytes
from medfw.crypto.keys import KeyType, generate_private_key, load_private_key, private_key_pem
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import DEFAULT_DEVICE_DAYS, DeviceCA, build_csr, issue_device_certificate, load_csr
from medfw.identity.certs import DeviceIdentity, identity_of
from medfw.identity.claims import sign_claims
from medfw.identity.errors import IdentityError

__all__ = [
    "AUDIT_LOG",
    "DeviceCredentials",
    "audit_log_id",
    "derive_audit_key",
    "load_audit_master",
    "provision_identity",
]

IDENTITY_DIR = "identity"
AUDIT_LOG = "audit.sqlite"
MIN_MASTER = 32


def audit_log_id(device_id: str) -> str:
    """The log id of a unit's own audit log."""
    return f"device:{device_id}"


def derive_audit_key(master: bytes, device_id: str) -> bytes:
    """The unit's initial audit sealing key ``K0``, derived from the fleet's device-audit master secret."""
    if len(master) < MIN_MASTER:
        raise IdentityError(f"the device audit master secret must be at least {MIN_MASTER} bytes", field="audit_master")
    return HKDF(hashes.SHA256(), 32, salt=None, info=b"medfw-device-audit/v1/" + device_id.encode()).derive(master)


def load_audit_master(path: str | Path) -> bytes:
    """Read a device-audit master secret file (raw bytes or hex text, at least 32 bytes).

    Raises:
        IdentityError: too short, or readable by others than its owner.
    """
    p = Path(path)
    raw = read_bytes(p, max_length=4096, what="device audit master secret")
    if p.stat().st_mode & 0o077:
        raise IdentityError("the device audit master secret must not be readable by others (chmod 600)", path=str(p))
    text = raw.strip()
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        if len(text) >= 2 * MIN_MASTER:
            raw = bytes.fromhex(text.decode("ascii"))
    if len(raw) < MIN_MASTER:
        raise IdentityError(f"the device audit master secret must be at least {MIN_MASTER} bytes", path=str(p))
    return raw


def provision_identity(
    directory: str | Path,
    ca: DeviceCA,
    *,
    device_id: str,
    model: str,
    chip: str,
    audit_master: bytes | None = None,
    days: int = DEFAULT_DEVICE_DAYS,
    csr: bytes | None = None,
) -> DeviceIdentity:
    """Give a unit its identity: generate its key (unless it already has one), its CSR, its certificate from ``ca``,
    and (with ``audit_master``) its own audit log sealed with the derived key.

    ``csr`` is a CSR the unit made itself (a real unit whose key never leaves the chip); it must be signed by the
    unit's key when one is in the directory.

    Raises:
        IdentityError: the unit already has a certificate, or the CSR is invalid or not of the unit's key (reason
            ``csr_key_mismatch``). Nothing is written then.
    """
    d = Path(directory)
    idir = d / IDENTITY_DIR
    if (idir / "device.crt").exists():
        raise IdentityError("this unit already has an identity certificate", path=str(idir / "device.crt"))
    key_path = idir / "device.key"
    key = load_private_key(key_path) if key_path.exists() else None
    if csr is not None:
        request = load_csr(csr)
    else:
        if key is None:
            key = generate_private_key(KeyType.ECDSA_P256)
        request = build_csr(key, device_id=device_id, model=model, chip=chip)
    cert = issue_device_certificate(
        ca,
        request,
        device_id=device_id,
        model=model,
        chip=chip,
        days=days,
        expected_key=key.public_key() if key is not None else None,
    )
    audit_key = derive_audit_key(audit_master, device_id) if audit_master is not None else None
    if audit_key is not None and (d / AUDIT_LOG).exists():
        raise IdentityError("the unit already has an audit log", path=str(d / AUDIT_LOG))
    files = [
        ("device.csr", request.public_bytes(serialization.Encoding.PEM)),
        ("ca.crt", ca.certificate.public_bytes(serialization.Encoding.PEM)),
        ("device.crt", cert.public_bytes(serialization.Encoding.PEM)),
    ]
    new_key = private_key_pem(key) if key is not None and not key_path.exists() else None
    _write_identity(d, device_id, new_key, files, audit_key)
    return identity_of(cert)


def _write_identity(
    d: Path, device_id: str, new_key: bytes | None, files: list[tuple[str, bytes]], audit_key: bytes | None
) -> None:
    """Write the unit's identity files and create its audit log; on any failure remove what was written."""
    idir = d / IDENTITY_DIR
    idir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if new_key is not None:
            atomic_write(idir / "device.key", new_key, mode=0o600, overwrite=False)
            written.append(idir / "device.key")
        for name, data in files:
            atomic_write(idir / name, data)
            written.append(idir / name)
        if audit_key is not None:
            from medfw.audit import init_log  # noqa: PLC0415 - the log machinery loads on first use

            init_log(d / AUDIT_LOG, log_id=audit_log_id(device_id), host_id=device_id, initial_key=audit_key)
    except BaseException:
        for p in written:
            with contextlib.suppress(OSError):
                p.unlink()
        raise


@dataclass
class DeviceCredentials:
    """A provisioned unit's identity at run time: certificate, TLS client files, claims signing."""

    directory: Path
    identity: DeviceIdentity
    signer: FileSigner
    kid: str

    @classmethod
    def load(cls, directory: str | Path) -> DeviceCredentials:
        """Load ``identity/`` of a device directory.

        Raises:
            IdentityError: the unit has no identity (not provisioned) or its files are malformed.
        """
        idir = Path(directory) / IDENTITY_DIR
        cert_path = idir / "device.crt"
        if not cert_path.is_file() or not (idir / "device.key").is_file():
            raise IdentityError("the unit has no identity (run medfw device provision-identity)", path=str(idir))
        from medfw.identity.ca import load_certificate  # noqa: PLC0415

        cert = load_certificate(read_bytes(cert_path, max_length=64 * 1024, what="certificate"), path=str(cert_path))
        signer = FileSigner(load_private_key(idir / "device.key"), key_id=str(idir / "device.key"))
        if cert.public_key() != signer.public_key():
            raise IdentityError("the unit's key does not match its certificate", path=str(cert_path))
        ident = identity_of(cert)
        return cls(Path(directory), ident, signer, kid=ident.serial)

    @property
    def cert_path(self) -> Path:
        """The unit certificate (PEM)."""
        return self.directory / IDENTITY_DIR / "device.crt"

    @property
    def key_path(self) -> Path:
        """The unit key (PEM, 0600)."""
        return self.directory / IDENTITY_DIR / "device.key"

    @property
    def ca_path(self) -> Path:
        """The device CA certificate."""
        return self.directory / IDENTITY_DIR / "ca.crt"

    def certificate(self) -> x509.Certificate:
        """The unit certificate."""
        from medfw.identity.ca import load_certificate  # noqa: PLC0415

        return load_certificate(self.cert_path.read_bytes(), path=str(self.cert_path))

    def _next_seq(self) -> int:
        path = self.directory / IDENTITY_DIR / "state.json"
        seq = 0
        if path.exists():
            with contextlib.suppress(ValueError, TypeError, KeyError, IdentityError):
                seq = int(json.loads(path.read_bytes())["seq"])
        seq += 1
        atomic_write(path, json.dumps({"seq": seq}).encode())
        return seq

    def claims(self, kind: str, **fields: Any) -> str:
        """Sign claims of ``kind`` (``poll``, ``report``, ``audit``) with the next counter value and the time."""
        payload = {"dev": self.identity.device_id, "typ": kind, "seq": self._next_seq(), "iat": int(time.time())}
        payload.update(fields)
        return sign_claims(self.signer, payload, kid=self.kid)
