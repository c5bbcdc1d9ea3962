"""What the fleet server trusts about devices (see :mod:`medfw.server.trust`)."""

from __future__ import annotations

from typing import Any

from cryptography import x509

__all__ = ["TrustConfig"]


class TrustConfig:
    """What the server trusts: the device CA, the device-audit master secret, shared-secret units, approvals."""

    def __init__(
        self,
        *,
        device_ca: x509.Certificate | None = None,
        audit_master: bytes | None = None,
        allow_shared_secret: bool = False,
        approval_policy: Any = None,
    ) -> None:
        self.device_ca = device_ca
        self.audit_master = audit_master
        self.allow_shared_secret = allow_shared_secret
        self.approval_policy = approval_policy
