"""The device API of the fleet service: polls (cached), artifact lookup, reports, buffered poll data."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from medfw.server import rollout as rules
from medfw.server import rollouts
from medfw.server import store_rollouts as rollout_sql
from medfw.server.base import ServiceBase
from medfw.server.cache import Reported
from medfw.server.errors import Invalid, NotFound
from medfw.server.models import Report
from medfw.server.store import is_outage
from medfw.server.views import PollResult, ReportAck, ReportView
from medfw.server.work import now
from medfw.vuln.version import compare_versions

__all__ = ["VOLATILE", "DeviceOps", "same_version"]

VOLATILE = "_volatile"
log = logging.getLogger("medfw.server")


class DeviceOps(ServiceBase):
    """Polls, downloads and reports of devices."""

    # ---- device API ----------------------------------------------------------------------------------------

    def poll_cached(
        self, device_id: str, *, version: str | None, secure_version: int, slot: str | None
    ) -> PollResult | None:
        """The cached answer to a poll, or ``None`` when it must be computed (:meth:`poll`). Records the poll."""
        reported: Reported = (version, secure_version, slot)
        generation = self.cache.current()
        self.cache.seen(device_id, now(), reported)
        return self.cache.poll(device_id, reported, generation)

    def poll(self, device_id: str, *, version: str | None, secure_version: int, slot: str | None) -> PollResult:
        """Record what a device reports and return its current assignment (cached while nothing changes)."""
        cached = self.poll_cached(device_id, version=version, secure_version=secure_version, slot=slot)
        if cached is not None:
            return cached
        generation = self.cache.current()
        body, changed = self._poll_db(device_id, version=version, secure_version=secure_version)
        if changed:
            generation = self.cache.generation
        volatile = bool(body.pop(VOLATILE, False))  # depends on the clock (a maintenance window): never cached
        etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
        result = PollResult(body=body, etag=etag)
        if not volatile:
            self.cache.store_poll(device_id, (version, secure_version, slot), generation, result)
        return result

    def _poll_db(self, device_id: str, *, version: str | None, secure_version: int) -> tuple[dict[str, Any], bool]:
        """Compute a poll answer: one Core query on the common path, a unit of work when an assignment changes."""
        row = self.store.active_assignment_row(device_id)
        if row is None:
            return self._poll_body(device_id, None), False
        why = rules.ineligibility(
            device_model=row.device_model,
            device_secure_version=secure_version,
            release_model=row.model,
            release_secure_version=row.secure_version,
        )
        if why is None and not (same_version(version, row.version) and row.state == "pending"):
            return self._poll_body(device_id, self._assignment(device_id, row.rollout_id, row)), False
        return self._poll_update(device_id, version=version, secure_version=secure_version)

    def _poll_update(self, device_id: str, *, version: str | None, secure_version: int) -> tuple[dict[str, Any], bool]:
        with self.work() as w:
            dev = self.store.device(w.session, device_id)
            if dev is None:
                raise NotFound(f"no device {device_id}")
            found = self.store.active_assignment(w.session, device_id)
            assignment: dict[str, Any] | None = None
            if found is not None:
                a, ro, rel = found
                why = rules.ineligibility(
                    device_model=dev.model,
                    device_secure_version=secure_version,
                    release_model=rel.model,
                    release_secure_version=rel.secure_version,
                )
                if why is not None:
                    a.state, a.reason, a.updated = "skipped", why, now()
                    rollouts.evaluate(w, ro)
                    w.changed = True
                elif same_version(version, rel.version) and a.state == "pending":
                    a.state, a.reason, a.updated = "confirmed", "already_installed", now()
                    rollouts.evaluate(w, ro)
                    w.changed = True
                else:
                    assignment = self._assignment(device_id, ro.id, rel)
        return self._poll_body(device_id, assignment), w.changed

    def _poll_body(self, device_id: str, assignment: dict[str, Any] | None) -> dict[str, Any]:
        body = {"device": device_id, "assignment": assignment, "poll_interval": self.poll_interval}
        if self.artifact_base_url:
            body["metadata"] = f"{self.artifact_base_url}/metadata/"
        return self.poll_extras(device_id, body)

    def poll_extras(self, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add what device trust changes in a poll answer (implemented by :mod:`medfw.server.deferral`)."""
        return body

    def _assignment(self, device_id: str, rollout_id: int, release: Any) -> dict[str, Any]:
        """The assignment a poll hands out: the rollout and its release (a row or an ORM release). With an
        artifact base URL the image comes from that (untrusted, TUF-checked) static host, else from this server."""
        out = _assignment(device_id, rollout_id, release)
        if self.artifact_base_url:
            model, _, name = release.target_path.partition("/")
            out["download"] = f"{self.artifact_base_url}/targets/{model}/{release.sha256}.{name}"
        return out

    def assigned_target(self, device_id: str) -> str:
        """The target path of the release assigned to a device (for the artifact download)."""
        path = self.store.assigned_target(device_id)
        if path is None:
            raise NotFound("no release is assigned to this device")
        return path

    def report(
        self,
        device_id: str,
        *,
        status: str,
        reason: str | None,
        detail: str | None,
        rollout_id: int | None,
        version: str | None,
        secure_version: int | None,
        slot: str | None,
        trusted: bool = True,
    ) -> ReportAck:
        """Store a device status report, move its assignment along and re-evaluate the rollout.

        A confirmation that is not ``trusted`` (see :meth:`check_claims`) is stored but moves the assignment to
        ``unverified``, which never counts toward the success threshold.
        """
        if status not in rules.REPORT_STATUSES:
            raise Invalid(f"unknown status {status!r}", field="status")
        if status in rules.ERROR_STATES and not reason:
            raise Invalid(f"a {status} report needs a reason", field="reason")
        when = now()
        self.flush_seen()
        with self.work() as w:
            s = w.session
            dev = self.store.device(s, device_id)
            if dev is None:
                raise NotFound(f"no device {device_id}")
            a = None
            if rollout_id is not None:
                a = self.store.assignment(s, rollout_id, device_id)
                if a is None:
                    raise NotFound(f"device {device_id} is not part of rollout {rollout_id}", field="rollout")
            fields = {"version": version, "secure_version": secure_version, "slot": slot}
            self.store.add_report(
                s,
                Report(
                    device_id=device_id,
                    rollout_id=rollout_id,
                    status=status,
                    reason=reason,
                    detail=detail,
                    created=when,
                    **fields,
                ),
            )
            dev.last_status = status
            for name, value in fields.items():
                if value is not None:
                    setattr(dev, name, value)
            if a is not None and a.state not in rules.FINAL_STATES and status not in rules.KEY_STATUSES:
                status, reason = _move(w, a, status, reason, trusted=trusted)
            w.changed = True
            w.audit(
                "ota.report",
                "failure" if status in rules.ERROR_STATES else "success",
                f"device:{device_id}",
                reason=reason,
                objects={"device": device_id, **({"rollout": str(rollout_id)} if rollout_id is not None else {})},
                data={"status": status, **fields, "detail": detail, "trusted": trusted},
            )
        if status in rules.KEY_STATUSES:
            self.campaign_report(device_id, status, reason)
        return ReportAck(device=device_id, status=status)

    def campaign_report(self, device_id: str, status: str, reason: str | None) -> None:
        """Follow a unit's key-rotation report (implemented by the campaign service)."""

    def reports(
        self, *, device_id: str | None = None, rollout_id: int | None = None, limit: int = 100
    ) -> list[ReportView]:
        """Most recent reports first (optionally of one device and/or one rollout)."""
        return self.store.reports(device_id=device_id, rollout_id=rollout_id, limit=max(1, min(limit, 1000)))

    def flush_seen(self) -> None:
        """Write what polling devices reported (version, secure_version, slot, last seen).

        One batch normally; when the database refuses the batch, each device's row is written on its own, so one
        bad row can never cost another device its data. When the database is away the data is kept for the next
        pass (and the error raised).
        """
        seen = self.cache.take_seen()
        if not seen:
            return
        rows = [
            {"b_id": device_id, "b_seen": when, "b_version": v, "b_svn": svn, "b_slot": slot}
            for device_id, (when, (v, svn, slot)) in seen.items()
        ]
        try:
            self.store.write_seen(rows)
            return
        except DBAPIError as e:
            if is_outage(e):
                self.cache.requeue_seen(seen)
                raise
            log.warning("batched poll write refused (%s); writing device by device", type(e.orig).__name__)
        for row in rows:
            try:
                self.store.write_seen([row])
            except DBAPIError as e:
                if is_outage(e):
                    self.cache.requeue_seen({k: v for k, v in seen.items() if k == row["b_id"]})
                    raise
                log.warning("poll data of device %s refused by the database (%s)", row["b_id"], type(e.orig).__name__)

    def record_denied(
        self,
        what: str,
        *,
        actor: str,
        reason: str,
        data: dict[str, Any] | None = None,
        source: str = "unknown",
    ) -> None:
        """Count a refused request (bad credential, wrong role, a device acting for another) for the aggregated
        audit event, and against the refusal rate limit of its source address (and claimed device).

        ``what`` is ``device`` (device API: audited as ``ota.report``) or ``management`` (``config.change``).
        """
        claimed = (data or {}).get("claimed")
        self.denials.add(what, source=source, reason=reason, actor=actor, claimed=claimed)
        if reason != "role":  # a valid token with too low a role is no guessing
            self.limiter.refused(f"ip:{source}", *([f"device:{claimed}"] if claimed else []))


def same_version(reported: str | None, release: str) -> bool:
    """Whether a device reporting ``reported`` runs ``release`` (:mod:`medfw.vuln.version` order: ``1.1`` is
    ``1.1.0``); strings that are not versions are compared as they are."""
    if reported is None:
        return False
    try:
        return compare_versions(reported, release) == 0
    except ValueError:
        return reported == release


def _move(w: Any, a: Any, status: str, reason: str | None, *, trusted: bool) -> tuple[str, str | None]:
    """Move an assignment to what its device reported (an untrusted confirmation to ``unverified``) and re-evaluate
    the rollout; return the state and reason recorded."""
    if status == "confirmed" and not trusted:
        status, reason = rules.UNVERIFIED, "unverified_report"
    a.state, a.reason, a.updated = status, reason, now()
    ro = rollout_sql.rollout(w.session, a.rollout_id, lock=True)
    assert ro is not None
    rollouts.evaluate(w, ro)
    return status, reason


def _assignment(device_id: str, rollout_id: int, release: Any) -> dict[str, Any]:
    """The assignment a poll hands out: the rollout and its release (a row or an ORM release)."""
    return {
        "rollout": rollout_id,
        "target_path": release.target_path,
        "version": release.version,
        "secure_version": release.secure_version,
        "length": release.length,
        "sha256": release.sha256,
        "download": f"/api/v1/devices/{device_id}/artifact",
    }
