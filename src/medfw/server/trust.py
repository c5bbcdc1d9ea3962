"""Device trust in the fleet service: certificate authentication and enrollment, the revocation list, signed claims.

Mixed into :class:`~medfw.server.service.FleetService`; it needs only the session factory and the audit sink.

* **Certificates.** A unit presenting a certificate of the device CA (verified by the TLS layer, and again here:
  issuer signature, validity, client usage, the server's revocation list) is the device its subject serialNumber
  names. A registered device maps to itself; an unknown one enrols when its serial was pre-authorised (into its
  model's default group), and is otherwise *held* for an operator's decision (403, audited) — never dropped
  silently. Decommissioning a device revokes every certificate it used.
* **Claims.** A certificate unit must sign what it says (:mod:`medfw.identity.claims`); claims are checked against
  the certificate's key, the device id, the kind, a per-kind replay counter and the report's fields. A report
  counts toward a rollout threshold only when it is *trusted*: signed claims of a certificate unit, or a
  shared-secret (simulator) unit on a server started with ``allow_shared_secret``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from medfw.audit.sink import AuditEvent
from medfw.identity.ca import DEVICE_ID_RE, load_certificate
from medfw.identity.certs import DeviceIdentity, verify_device_certificate
from medfw.identity.claims import verify_claims
from medfw.identity.errors import CertificateRejectedError, ClaimsRejectedError
from medfw.server.base import ServiceBase
from medfw.server.models import Device
from medfw.server.trust_config import TrustConfig
from medfw.server.trust_errors import conflict, forbidden, invalid, not_found, unauthorized
from medfw.server.trust_models import (
    DeviceClaims,
    DeviceIdentityRow,
    EnrollmentRequest,
    ModelGroup,
    PreauthorizedSerial,
    RevokedCertificate,
)

__all__ = ["CERT_MARK", "TrustConfig", "TrustOps", "report_expectation"]

CERT_MARK = "x509:"  # credential_hash of a certificate unit: no shared secret can ever match it
_STATE_FIELDS: tuple[str, ...] = ("version", "secure_version", "slot", "efuse_counter", "key_slots")
_CLAIM_FIELDS = ("status", "reason", "rollout", "version", "secure_version", "slot")
_CERTIFICATE = select(DeviceIdentityRow.certificate).where(DeviceIdentityRow.device_id == bindparam("device_id"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrustOps(ServiceBase):
    """Certificate authentication, enrollment, revocation and signed claims (see the module docstring)."""

    def _event(
        self,
        type_: str,
        outcome: str,
        actor: str,
        *,
        reason: str | None = None,
        objects: Mapping[str, str] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit something that changes no state (a refusal) in a unit of work of its own."""
        with self.work() as w:
            w.events.append(AuditEvent(type_, outcome, reason, actor, dict(objects or {}), dict(data or {})))

    # ---- certificates and enrollment ------------------------------------------------------------------------

    def authenticate_certificate(self, cert: x509.Certificate) -> str:
        """Map a client certificate to its device id, enrolling a pre-authorised unit on first contact.

        Raises:
            401 when the certificate is refused (other CA, expired, revoked, not a device certificate) or the
            device was decommissioned; 403 while its enrollment is held or after it was rejected.
        """
        ca = self.trust.device_ca
        if ca is None:
            raise unauthorized("this server accepts no device certificates")
        with self.sessions() as s:
            revoked = set(s.scalars(select(RevokedCertificate.serial)))
        try:
            ident = verify_device_certificate(cert, ca, revoked=revoked)
        except CertificateRejectedError as e:
            self._event("ota.report", "denied", "unknown", reason=f"certificate_{e.reason}", data={"action": "mtls"})
            raise unauthorized(f"device certificate refused: {e.message}") from None
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        enrolled = False
        actor, objects = f"device:{ident.device_id}", {"device": ident.device_id}
        with self.work() as w:
            s = w.session
            dev = s.get(Device, ident.device_id)
            if dev is not None:
                if not dev.credential_hash:
                    raise unauthorized(f"device {ident.device_id} is decommissioned")
                # a new or renewed certificate changes how the device authenticates and signs: every process
                # drops its cached credential and certificate
                w.changed = self._remember(s, ident, pem, via="certificate")
                if not dev.credential_hash.startswith(CERT_MARK):
                    dev.credential_hash = CERT_MARK + ident.fingerprint[:48]
                    w.changed = True
                return ident.device_id
            pre = s.get(PreauthorizedSerial, ident.device_id)
            if pre is None or pre.model != ident.model:
                self._hold(s, ident, pem)
                data = {"model": ident.model, "serial": ident.serial}
                w.audit("device.register", "denied", actor, reason="enrollment_held", objects=objects, data=data)
            else:
                self._register(s, ident, pem, via="preauthorized")
                s.delete(pre)
                enrolled = w.changed = True
                data = {"model": ident.model, "chip": ident.chip, "serial": ident.serial, "action": "enroll"}
                w.audit("device.register", "success", actor, reason="preauthorized", objects=objects, data=data)
        if not enrolled:
            raise forbidden(f"device {ident.device_id} is not pre-authorised: enrollment held for approval")
        return ident.device_id

    def _remember(self, s: Session, ident: DeviceIdentity, pem: str, *, via: str) -> bool:
        """Store the device's certificate; return whether it is new or another one."""
        row = s.get(DeviceIdentityRow, ident.device_id)
        if row is None:
            s.add(
                DeviceIdentityRow(
                    device_id=ident.device_id,
                    serial=ident.serial,
                    fingerprint=ident.fingerprint,
                    not_after=ident.not_after,
                    enrolled_via=via,
                    certificate=pem,
                    created=_now(),
                )
            )
            return True
        if row.serial != ident.serial:
            row.serial, row.fingerprint, row.not_after, row.certificate = (
                ident.serial,
                ident.fingerprint,
                ident.not_after,
                pem,
            )
            return True
        return False

    def _register(self, s: Session, ident: DeviceIdentity, pem: str, *, via: str, group: str | None = None) -> None:
        mg = s.get(ModelGroup, ident.model)
        s.add(
            Device(
                id=ident.device_id,
                model=ident.model,
                chip=ident.chip,
                group=group or (mg.group if mg is not None else "default"),
                credential_salt="",
                credential_hash=CERT_MARK + ident.fingerprint[:48],
                secure_version=0,
                created=_now(),
            )
        )
        s.flush()
        self._remember(s, ident, pem, via=via)

    def _hold(self, s: Session, ident: DeviceIdentity, pem: str) -> None:
        req = s.get(EnrollmentRequest, ident.device_id)
        if req is not None and req.state == "rejected":
            raise forbidden(f"the enrollment of device {ident.device_id} was rejected")
        if req is None:
            s.add(
                EnrollmentRequest(
                    device_id=ident.device_id,
                    model=ident.model,
                    chip=ident.chip,
                    serial=ident.serial,
                    certificate=pem,
                    state="held",
                    attempts=1,
                    created=_now(),
                    updated=_now(),
                )
            )
        else:
            req.attempts += 1
            req.updated = _now()
            req.serial, req.certificate, req.model, req.chip = ident.serial, pem, ident.model, ident.chip

    def preauthorize(self, entries: Sequence[tuple[str, str]], *, actor: str) -> int:
        """Pre-authorise ``(serial, model)`` pairs (all or nothing); return how many were added."""
        for device_id, model in entries:
            if not DEVICE_ID_RE.match(device_id) or not DEVICE_ID_RE.match(model):
                raise invalid(f"bad serial or model {device_id!r}/{model!r}", field="serials")
        if len(entries) > 100_000:
            raise invalid("at most 100000 serials per upload", field="serials")
        added = 0
        with self.work() as w:
            s = w.session
            for device_id, model in entries:
                if s.get(PreauthorizedSerial, device_id) is None and s.get(Device, device_id) is None:
                    s.add(PreauthorizedSerial(device_id=device_id, model=model, created=_now()))
                    added += 1
            w.audit("config.change", "success", actor, data={"action": "preauthorize", "added": added})
        return added

    def enrollments(self, state: str | None = None) -> list[dict[str, Any]]:
        """Enrollment requests (held, approved, rejected)."""
        q = select(EnrollmentRequest).order_by(EnrollmentRequest.device_id)
        if state is not None:
            q = q.where(EnrollmentRequest.state == state)
        with self.sessions() as s:
            return [
                {
                    "device": r.device_id,
                    "model": r.model,
                    "chip": r.chip,
                    "serial": r.serial,
                    "state": r.state,
                    "attempts": r.attempts,
                    "created": r.created.isoformat(),
                    "updated": r.updated.isoformat(),
                }
                for r in s.scalars(q)
            ]

    def decide_enrollment(self, device_id: str, *, approve: bool, actor: str, group: str | None = None) -> str:
        """Approve (register the unit with its held certificate) or reject a held enrollment; return the state."""
        with self.work() as w:
            s = w.session
            req = s.get(EnrollmentRequest, device_id, with_for_update=True)
            if req is None or req.state != "held":
                raise not_found(f"no held enrollment for {device_id}")
            if approve:
                if s.get(Device, device_id) is not None:
                    raise conflict(f"device {device_id} is already registered")
                cert = load_certificate(req.certificate.encode("ascii"))
                ca = self.trust.device_ca
                if ca is None:
                    raise unauthorized("this server accepts no device certificates")
                try:
                    ident = verify_device_certificate(cert, ca)
                except CertificateRejectedError as e:
                    raise conflict(f"the held certificate is no longer valid: {e.message}") from None
                self._register(s, ident, req.certificate, via="approved", group=group)
            req.state = "approved" if approve else "rejected"
            req.updated = _now()
            state = req.state
            w.changed = True
            outcome = "success" if approve else "denied"
            w.audit("device.register", outcome, actor, reason=f"enrollment_{state}", objects={"device": device_id})
        return state

    def set_model_group(self, model: str, group: str, *, actor: str) -> None:
        """The group a model's units enrol into."""
        if not DEVICE_ID_RE.match(model) or not DEVICE_ID_RE.match(group):
            raise invalid("bad model or group name", field="group")
        with self.work() as w:
            row = w.session.get(ModelGroup, model)
            if row is None:
                w.session.add(ModelGroup(model=model, group=group))
            else:
                row.group = group
            data = {"action": "model_group", "model": model, "group": group}
            w.audit("config.change", "success", actor, data=data)

    # ---- revocation ------------------------------------------------------------------------------------------

    def revoke_device_certificates(self, device_id: str, *, reason: str, actor: str) -> list[str]:
        """Put every certificate serial the device used on the revocation list; return the serials."""
        serials: list[str] = []
        with self.work() as w:
            s = w.session
            ident = s.get(DeviceIdentityRow, device_id)
            req = s.get(EnrollmentRequest, device_id)
            for serial in {x.serial for x in (ident, req) if x is not None}:
                if s.get(RevokedCertificate, serial) is None:
                    s.add(RevokedCertificate(serial=serial, device_id=device_id, reason=reason, revoked=_now()))
                    serials.append(serial)
            if serials:
                w.changed = True
                data = {"certificates": sorted(serials), "action": "certificate_revoke"}
                w.audit("key.revoke", "success", actor, reason=reason, objects={"device": device_id}, data=data)
        return sorted(serials)

    def revocations(self) -> list[dict[str, str]]:
        """The revocation list."""
        with self.sessions() as s:
            rows = s.scalars(select(RevokedCertificate).order_by(RevokedCertificate.revoked))
            return [
                {"serial": r.serial, "device": r.device_id, "reason": r.reason, "revoked": r.revoked.isoformat()}
                for r in rows
            ]

    # ---- signed claims ---------------------------------------------------------------------------------------

    def is_certificate_device(self, device_id: str) -> bool:
        """True when the device authenticates with a certificate (and so must sign its claims)."""
        with self.sessions() as s:
            return s.get(DeviceIdentityRow, device_id) is not None

    def _certificate(self, device_id: str) -> str | None:
        with self.store.engine.connect() as conn:
            found = conn.execute(_CERTIFICATE, {"device_id": device_id}).scalar()
        return None if found is None else str(found)

    def unsigned_trust(self, device_id: str) -> bool | None:
        """What :meth:`check_claims` answers for a device cached as having no certificate (no database read);
        ``None`` when that is not known from the cache."""
        return self.trust.allow_shared_secret if self.cache.uncertified(device_id) else None

    def check_claims(
        self, device_id: str, token: str | None, *, kind: str, expect: Mapping[str, Any] | None = None
    ) -> bool:
        """Verify a device's signed claims; return whether what it says may count (is *trusted*).

        A certificate unit must send valid claims (403 otherwise, audited; 409 for a replay). A shared-secret unit
        cannot sign: its word counts only when the server allows shared-secret units.
        """
        pem = self.cache.certificate(device_id, self._certificate)
        if pem is None:
            return self.trust.allow_shared_secret
        if not token:
            self._refuse_claims(device_id, kind, "claims_missing")
            raise forbidden(f"device {device_id} must sign its {kind} claims")
        key = load_certificate(pem.encode("ascii")).public_key()
        try:
            claims = verify_claims(token, key, device_id=device_id, kind=kind)  # type: ignore[arg-type]
        except ClaimsRejectedError as e:
            self._refuse_claims(device_id, kind, e.reason)
            raise forbidden(f"{kind} claims refused: {e.message}") from None
        for name, value in (expect or {}).items():
            if claims.get(name) != value:
                self._refuse_claims(device_id, kind, "claims_mismatch")
                raise forbidden(f"signed claims say {name}={claims.get(name)!r}, the request says {value!r}")
        self._store_claims(device_id, kind, claims)
        return True

    def _store_claims(self, device_id: str, kind: str, claims: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            row = s.get(DeviceClaims, device_id, with_for_update=True)
            if row is None:
                row = DeviceClaims(device_id=device_id, last_seq={}, claims={}, verified=_now())
                s.add(row)
            last = dict(row.last_seq or {})
            if claims["seq"] <= int(last.get(kind, 0)):
                raise conflict(f"{kind} claims seq {claims['seq']} was already used (replay)", field="seq")
            last[kind] = claims["seq"]
            row.last_seq = last
            state = {k: claims[k] for k in _STATE_FIELDS if k in claims}
            row.claims = {**(row.claims or {}), **state}
            row.verified = _now()

    def _refuse_claims(self, device_id: str, kind: str, reason: str) -> None:
        self._event(
            "ota.report",
            "denied",
            f"device:{device_id}",
            reason=reason,
            objects={"device": device_id},
            data={"kind": kind},
        )

    def device_claims(self, device_id: str) -> dict[str, Any] | None:
        """The last verified claims of a device (version, key slots, eFuse counter, …)."""
        with self.sessions() as s:
            row = s.get(DeviceClaims, device_id)
            if row is None:
                return None
            return {"claims": dict(row.claims or {}), "verified": row.verified.isoformat()}


def report_expectation(body: Mapping[str, Any]) -> dict[str, Any]:
    """The report fields signed claims must repeat."""
    return {k: body.get(k) for k in _CLAIM_FIELDS}
