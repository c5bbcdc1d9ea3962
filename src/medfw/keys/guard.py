"""A signer wrapper that enforces an approval policy and records every signature in the audit log.

:class:`GuardedSigner` wraps any :class:`~medfw.crypto.signer.Signer` (key file or token). On construction it checks
an optional :class:`~medfw.keys.approval_policy.RequireApprovals` policy for the subject about to be signed, recording a
``key.sign`` event with outcome ``denied`` and raising :class:`~medfw.errors.PolicyViolationError` if the
approvals fall short — so the wrapped key is never used. Afterwards each signature appends a ``key.sign`` event
with the key's fingerprint, the digest signed and the approvers counted; never key material.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from medfw.audit.sink import AuditEvent, AuditSink
from medfw.crypto.keys import PublicKey, key_type_of, public_key_fingerprint
from medfw.crypto.signer import HashName, Signer
from medfw.errors import MedfwError, UsageError
from medfw.keys.approval_policy import RequireApprovals
from medfw.keys.approvals import Approval, ApprovalRequest

__all__ = ["GuardedSigner"]


class GuardedSigner(Signer):
    """Sign through ``inner`` only after the approval policy (if any) is met; audit each signature.

    Args:
        inner: the signer holding the key.
        audit: where ``key.sign`` events go.
        policy: approvals required before the key may sign; None for no approval requirement.
        approvals: the approval records offered (from files or from ``key.approve`` audit events).
        subject_sha256: SHA-256 (hex) of the file to be signed (required with a policy).
        purpose: the purpose the approvals must name.
        now: the current UTC time (required with a policy).

    Raises:
        UsageError: a policy without ``subject_sha256`` or ``now``.
        PolicyViolationError: not enough valid approvals (recorded as a ``denied`` ``key.sign`` event).
    """

    def __init__(
        self,
        inner: Signer,
        audit: AuditSink,
        *,
        policy: RequireApprovals | None = None,
        approvals: Iterable[Approval] = (),
        subject_sha256: str | None = None,
        purpose: str = "release-sign",
        now: datetime | None = None,
    ) -> None:
        self._inner = inner
        self._audit = audit
        self.key_id = inner.key_id
        self._fingerprint = public_key_fingerprint(inner.public_key())
        self._approved_by: tuple[str, ...] = ()
        self._subject = subject_sha256
        if policy is not None:
            if subject_sha256 is None or now is None:
                raise UsageError("an approval policy needs the subject digest and the current time")
            request = ApprovalRequest(self._fingerprint, subject_sha256, purpose)
            try:
                result = policy.check(request, approvals, now=now)
            except MedfwError as e:
                self._record("denied", None, reason="approvals_missing", extra={"error": e.message})
                raise
            self._approved_by = result.approved_by

    @property
    def approved_by(self) -> tuple[str, ...]:
        """Fingerprints of the approvers whose approvals were counted (empty without a policy)."""
        return self._approved_by

    def public_key(self) -> PublicKey:
        return self._inner.public_key()

    def _record(
        self, outcome: str, digest: bytes | None, *, reason: str | None = None, extra: dict[str, str] | None = None
    ) -> None:
        objects = {"key_fingerprint": self._fingerprint}
        if digest is not None:
            objects["digest"] = digest.hex()
        if self._subject is not None:
            objects["subject_sha256"] = self._subject
        data: dict[str, object] = {
            "key_type": str(key_type_of(self._inner.public_key())),
            "approved_by": list(self._approved_by),
        }
        data.update(extra or {})
        self._audit.record(
            AuditEvent(type="key.sign", outcome=outcome, reason=reason, actor=self.key_id, objects=objects, data=data)
        )

    def _sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        try:
            sig = self._inner.sign_digest(digest, hash_name)
        except MedfwError as e:
            self._record("failure", digest, reason="signer_error", extra={"error": type(e).__name__})
            raise
        self._record("success", digest)
        return sig

    def _sign_message(self, message: bytes) -> bytes:
        digest = hashlib.sha256(message).digest()
        try:
            sig = self._inner.sign_message(message)
        except MedfwError as e:
            self._record("failure", digest, reason="signer_error", extra={"error": type(e).__name__})
            raise
        self._record("success", digest)
        return sig
