"""Errors of the device identity package: every refusal carries a machine-readable ``reason``."""

from __future__ import annotations

from medfw.errors import InputError, VerificationError

__all__ = ["CertificateRejectedError", "ClaimsRejectedError", "IdentityError", "TrailRejectedError"]


class IdentityError(InputError):
    """Bad identity input: a malformed certificate, CSR, key or CA file (exit 2)."""

    def __init__(self, message: str, *, reason: str = "malformed", path: str | None = None, field: str | None = None):
        super().__init__(message, path=path, field=field)
        self.reason = reason


class CertificateRejectedError(VerificationError):
    """A device certificate does not authenticate: other CA, expired, revoked, wrong usage (exit 1)."""

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.reason = reason


class ClaimsRejectedError(VerificationError):
    """Signed device claims that do not verify: unsigned, another device's key, replayed, malformed (exit 1)."""

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.reason = reason


class TrailRejectedError(VerificationError):
    """A device audit-trail upload that does not continue the stored chain (gap, fork, rewind, re-seal)."""

    def __init__(self, message: str, *, reason: str, seq: int | None = None) -> None:
        super().__init__(message, field="entries", offset=seq)
        self.reason = reason
