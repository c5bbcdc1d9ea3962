"""The device API of the fleet service: polls (cached), artifact lookup, reports, buffered poll data."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

from medfw.server import rollout as rules
from medfw.server import rollouts
from medfw.server.cache import Reported
from medfw.server.errors import NotFound
from medfw.server.reports import ReportOps
from medfw.server.store import is_outage
from medfw.server.views import PollResult
from medfw.server.work import now
from medfw.vuln.version import compare_versions

__all__ = ["VOLATILE", "DeviceOps", "same_version"]

VOLATILE = "_volatile"
log = logging.getLogger("medfw.server")


class DeviceOps(ReportOps):
    """Polls, downloads and reports of devices (reports: :class:`~medfw.server.reports.ReportOps`)."""

    # ---- device API ----------------------------------------------------------------------------------------

    def poll_cached(
        self, device_id: str, *, version: str | None, secure_version: int, slot: str | None
    ) -> PollResult | None:
        """The answer to a poll without a database read (an idle device, or a busy one's cached answer), or
        ``None`` when it must be computed (:meth:`poll`). Records the poll."""
        reported: Reported = (version, secure_version, slot)
        generation, _ = self.cache.current()
        self.cache.seen(device_id, now(), reported)
        if self.cache.idle(device_id):
            return self._idle_answer(device_id)
        return self.cache.poll(device_id, reported, generation)

    def poll(self, device_id: str, *, version: str | None, secure_version: int, slot: str | None) -> PollResult:
        """Record what a device reports and return its current assignment (cached while nothing changes)."""
        cached = self.poll_cached(device_id, version=version, secure_version=secure_version, slot=slot)
        if cached is not None:
            return cached
        self.cache.refresh_busy(self.busy_devices)
        generations = self.cache.current()
        if self.cache.idle(device_id):
            return self._idle_answer(device_id)
        body, changed = self._poll_db(device_id, version=version, secure_version=secure_version)
        if changed:
            generations = (self.cache.generation, self.cache.assignments)
        volatile = bool(body.pop(VOLATILE, False))  # depends on the clock (a maintenance window): never cached
        result = PollResult(body=body, etag=_etag(body))
        if not volatile:
            self.cache.store_poll(device_id, (version, secure_version, slot), generations, result)
        return result

    def busy_devices(self) -> set[str]:
        """Devices whose poll answer needs the database: an active assignment in a running rollout, or
        something :meth:`poll_extras` adds (:meth:`extras_devices`). Every other device gets the idle answer."""
        return self.store.assigned_devices() | self.extras_devices()

    def extras_devices(self) -> set[str]:
        """Devices :meth:`poll_extras` may add something for without an assignment (implemented by
        :mod:`medfw.server.deferral`)."""
        return set()

    def _idle_answer(self, device_id: str) -> PollResult:
        """The answer of a device with nothing to do (no assignment, nothing else to add)."""
        body: dict[str, Any] = {"device": device_id, "assignment": None, "poll_interval": self.poll_interval}
        if self.artifact_base_url:
            body["metadata"] = f"{self.artifact_base_url}/metadata/"
        return PollResult(body=body, etag=_etag(body))

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
                    w.moved = True
                elif same_version(version, rel.version) and a.state == "pending":
                    a.state, a.reason, a.updated = "confirmed", "already_installed", now()
                    rollouts.evaluate(w, ro)
                    w.moved = True
                else:
                    assignment = self._assignment(device_id, ro.id, rel)
        return self._poll_body(device_id, assignment), w.changed or w.moved

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


def _etag(body: dict[str, Any]) -> str:
    """The ETag of a poll answer: a digest of its canonical JSON."""
    return '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'


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
