"""M-of-N signing approvals: signed approval records (the policy that counts them: :mod:`medfw.keys.approval_policy`).

A release key in an HSM can be guarded so that it signs only what enough people approved:

1. Each approver runs ``medfw keys approve``: it signs an *approval statement* with the approver's own key
   (any medfw signer: key file or token) and records it in the audit log as a ``key.approve`` event.
   The statement binds the release key (SPKI SHA-256 fingerprint), the subject (SHA-256 of the file to be signed),
   the purpose (``release-sign``, ``key-rotate``, …), the approver's name and key, and a validity window.
2. Before the release key is used, :meth:`~medfw.keys.approval_policy.RequireApprovals.check` counts the valid
   approvals: signature by a key in the policy's approver set, same release key, same subject, same purpose,
   inside the validity window. Each approver key counts once. Fewer than the threshold is a
   :class:`~medfw.errors.PolicyViolationError`.

Statements are signed over RFC 8785 canonical JSON (deterministic bytes), with the scheme of the approver's key
(Ed25519 over the bytes; RSA-PSS / ECDSA over their SHA-256). Everything here is pure: the current time comes in
as an argument.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from medfw.audit.sink import AuditEvent
from medfw.crypto.keys import PublicKey, public_key_fingerprint
from medfw.crypto.signer import Signer
from medfw.errors import ConfigError, SignatureError, UsageError

__all__ = [
    "APPROVAL_FORMAT",
    "Approval",
    "ApprovalRequest",
    "approval_event",
    "approvals_from_events",
    "sign_approval",
    "utc",
    "verify_approval",
]

APPROVAL_FORMAT = "medfw-approval/1"
POLICY_FORMAT = "medfw-approval-policy/1"
MAX_POLICY_FILE = 1024 * 1024
MAX_VALIDITY = timedelta(days=30)
_HEX64 = frozenset("0123456789abcdef")


def _check_hex64(value: str, name: str) -> str:
    if len(value) != 64 or not set(value) <= _HEX64:
        raise ConfigError(f"{name} must be 64 lowercase hex digits (a SHA-256)", field=name)
    return value


def utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise UsageError(f"{name} must be a UTC datetime", field=name)
    return value.replace(microsecond=0)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be an RFC 3339 UTC time string", field=name)
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not YYYY-MM-DDTHH:MM:SSZ", field=name) from None
    return parsed


@dataclass(frozen=True)
class ApprovalRequest:
    """What is to be approved: the release key, the subject digest and the purpose.

    Attributes:
        key_fingerprint: SHA-256 (hex) of the release key's SubjectPublicKeyInfo.
        subject_sha256: SHA-256 (hex) of the file the key will sign.
        purpose: what the key will do (``release-sign``, ``key-rotate``, …).
    """

    key_fingerprint: str
    subject_sha256: str
    purpose: str = "release-sign"

    def __post_init__(self) -> None:
        _check_hex64(self.key_fingerprint, "key_fingerprint")
        _check_hex64(self.subject_sha256, "subject_sha256")
        if not self.purpose or len(self.purpose) > 64 or not self.purpose.isascii():
            raise ConfigError("purpose must be a short ASCII word", field="purpose")

    @classmethod
    def for_subject(cls, key: PublicKey, subject: bytes, purpose: str = "release-sign") -> ApprovalRequest:
        """Build a request for signing ``subject`` (the bytes) with ``key``."""
        return cls(public_key_fingerprint(key), hashlib.sha256(subject).hexdigest(), purpose)


@dataclass(frozen=True)
class Approval:
    """A signed approval statement (see the module docstring). Build with :func:`sign_approval` or :meth:`from_dict`."""

    request: ApprovalRequest
    approver: str
    approver_key: str
    issued_at: datetime
    expires_at: datetime
    signature: bytes = field(repr=False)

    def statement(self) -> dict[str, Any]:
        """The signed statement as a JSON-ready dict."""
        return {
            "format": APPROVAL_FORMAT,
            "approver": self.approver,
            "approver_key": self.approver_key,
            "key_fingerprint": self.request.key_fingerprint,
            "subject_sha256": self.request.subject_sha256,
            "purpose": self.request.purpose,
            "issued_at": _iso(self.issued_at),
            "expires_at": _iso(self.expires_at),
        }

    def statement_bytes(self) -> bytes:
        """The exact bytes signed: RFC 8785 canonical JSON of :meth:`statement`."""
        raw: bytes = rfc8785.dumps(self.statement())
        return raw

    def to_dict(self) -> dict[str, Any]:
        """The approval record as stored in a file or an audit event: statement plus hex signature."""
        return {"statement": self.statement(), "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: object, *, path: str | None = None) -> Approval:
        """Parse an approval record.

        Raises:
            ConfigError: the record is malformed (the message names the field).
        """
        try:
            if not isinstance(data, Mapping):
                raise ConfigError("approval record must be a JSON object")
            st = data.get("statement")
            sig = data.get("signature")
            if not isinstance(st, Mapping):
                raise ConfigError("approval record has no statement object", field="statement")
            if st.get("format") != APPROVAL_FORMAT:
                raise ConfigError(f"approval format must be {APPROVAL_FORMAT!r}", field="statement.format")
            if not isinstance(sig, str):
                raise ConfigError("approval signature must be a hex string", field="signature")
            try:
                signature = bytes.fromhex(sig)
            except ValueError:
                raise ConfigError("approval signature is not hex", field="signature") from None
            strings = {}
            for name in ("approver", "approver_key", "key_fingerprint", "subject_sha256", "purpose"):
                value = st.get(name)
                if not isinstance(value, str):
                    raise ConfigError(f"approval statement field {name} must be a string", field=f"statement.{name}")
                strings[name] = value
            unknown = set(st) - {*strings, "format", "issued_at", "expires_at"}
            if unknown:
                raise ConfigError(f"unknown approval statement fields: {', '.join(sorted(unknown))}", field="statement")
            request = ApprovalRequest(strings["key_fingerprint"], strings["subject_sha256"], strings["purpose"])
            return cls(
                request=request,
                approver=strings["approver"],
                approver_key=_check_hex64(strings["approver_key"], "approver_key"),
                issued_at=_parse_time(st.get("issued_at"), "statement.issued_at"),
                expires_at=_parse_time(st.get("expires_at"), "statement.expires_at"),
                signature=signature,
            )
        except ConfigError as e:
            raise (e.with_path(path) if path else e) from None


def _sign_bytes(signer: Signer, message: bytes) -> bytes:
    return signer.sign_message(message, "sha256")


def verify_approval(approval: Approval, key: PublicKey) -> None:
    """Check an approval's signature with the approver's public key (fails closed).

    Raises:
        SignatureError: the key is not the approval's ``approver_key`` or the signature does not verify.
    """
    if not hmac.compare_digest(public_key_fingerprint(key), approval.approver_key):
        raise SignatureError(f"approval by {approval.approver!r}: key does not match approver_key")
    message = approval.statement_bytes()
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(approval.signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                approval.signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(approval.signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(f"approval by {approval.approver!r}: signature does not verify") from None


def sign_approval(
    request: ApprovalRequest,
    approver: str,
    signer: Signer,
    *,
    now: datetime,
    validity: timedelta = timedelta(hours=24),
) -> Approval:
    """Approve ``request`` as ``approver``, signing with the approver's own key.

    Raises:
        UsageError: empty approver name, non-UTC ``now``, or a validity outside (0, 30 days].
    """
    if not approver or len(approver) > 128:
        raise UsageError("approver name must be 1..128 characters", field="approver")
    if not timedelta(0) < validity <= MAX_VALIDITY:
        raise UsageError(f"approval validity must be positive and at most {MAX_VALIDITY.days} days", field="validity")
    issued = utc(now, "now")
    unsigned = Approval(
        request=request,
        approver=approver,
        approver_key=public_key_fingerprint(signer.public_key()),
        issued_at=issued,
        expires_at=issued + validity,
        signature=b"",
    )
    signature = _sign_bytes(signer, unsigned.statement_bytes())
    approval = replace(unsigned, signature=signature)
    verify_approval(approval, signer.public_key())
    return approval


def approval_event(approval: Approval, *, outcome: str = "success") -> AuditEvent:
    """The ``key.approve`` audit event for an approval (the signed record itself, no key material)."""
    return AuditEvent(
        type="key.approve",
        outcome=outcome,
        actor=f"user:{approval.approver}",
        objects={
            "key_fingerprint": approval.request.key_fingerprint,
            "subject_sha256": approval.request.subject_sha256,
            "approver_key": approval.approver_key,
        },
        data={"purpose": approval.request.purpose, "approval": approval.to_dict()},
    )


def approvals_from_events(events: Iterable[AuditEvent]) -> list[Approval]:
    """Collect the approval records of successful ``key.approve`` events (malformed ones are skipped)."""
    found: list[Approval] = []
    for event in events:
        if event.type != "key.approve" or event.outcome != "success":
            continue
        try:
            found.append(Approval.from_dict(event.data.get("approval")))
        except ConfigError:
            continue
    return found
