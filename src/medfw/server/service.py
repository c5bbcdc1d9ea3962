"""Fleet operations: devices, tokens, releases, rollouts, polls and reports — the rules, not the SQL, not HTTP.

Every state change runs as one unit of work (:class:`~medfw.server.work.Work`): one transaction through the
:class:`~medfw.server.store.Store`, and its audit events appended once it has committed. Queries return frozen
dataclasses (:mod:`medfw.server.views`); refusals raise domain errors (:mod:`medfw.server.errors`) that the web
layer maps to HTTP statuses in one place.

Polls are the hot path: answers and credential digests are cached per process (:mod:`medfw.server.cache`), and
what devices report in polls is written in batches by :meth:`FleetService.flush_seen`, so an idle poll touches
no table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from medfw.server import rollouts
from medfw.server import store_rollouts as rollout_sql
from medfw.server.access import AccessOps
from medfw.server.credentials import (
    DEVICE_ID_RE,
    DeviceSecret,
    new_device_secret,
)
from medfw.server.deferral import DeferralOps
from medfw.server.errors import Conflict, Invalid, NotFound
from medfw.server.fleet_views import FleetViewOps
from medfw.server.models import Device
from medfw.server.polls import DeviceOps
from medfw.server.rollouts import RolloutSpec
from medfw.server.store import device_view
from medfw.server.views import (
    DeviceView,
    FleetRow,
    GroupView,
    PollResult,
    ReleaseView,
    RolloutView,
)
from medfw.server.work import now
from medfw.update.repository import ReleaseInfo

__all__ = ["FleetService", "PollResult", "RolloutSpec"]


class FleetService(FleetViewOps, DeferralOps, DeviceOps, AccessOps):
    """All fleet state changes and queries (the device API is in :class:`~medfw.server.polls.DeviceOps`; device trust —
    certificates, enrollment, signed claims, audit trails, campaigns, deferral — in :mod:`medfw.server.deferral` and
    the modules it builds on)."""

    # ---- devices -------------------------------------------------------------------------------------------

    def add_device(self, device_id: str, *, model: str, chip: str = "", group: str = "default", actor: str) -> str:
        """Register a device and return its credential (shown once; stored hashed)."""
        if not DEVICE_ID_RE.match(device_id):
            raise Invalid("device id must be 1-64 characters of [A-Za-z0-9._-]", field="id")
        secret = new_device_secret(device_id)
        try:
            with self.work() as w:
                if self.store.device(w.session, device_id) is not None:
                    raise Conflict(f"device {device_id} is already registered", field="id")
                self.store.add_device(w.session, _new_device(device_id, model, chip, group, secret))
                w.changed = True
                w.audit(
                    "device.register",
                    "success",
                    actor,
                    objects={"device": device_id},
                    data={"model": model, "group": group},
                )
        except IntegrityError:
            raise Conflict(f"device {device_id} is already registered", field="id") from None
        return secret.credential

    def add_devices(self, devices: Sequence[tuple[str, str, str]], *, group: str = "default", actor: str) -> list[str]:
        """Register many ``(id, model, chip)`` devices in one transaction (factory provisioning); return credentials.

        All or nothing: one invalid or already registered id refuses the whole batch.
        """
        creds: list[str] = []
        rows: list[dict[str, object]] = []
        created = now()
        for device_id, model, chip in devices:
            if not DEVICE_ID_RE.match(device_id):
                raise Invalid(f"bad device id {device_id!r}", field="id")
            secret = new_device_secret(device_id)
            rows.append(_device_row(device_id, model, chip, group, secret, created=created))
            creds.append(secret.credential)
        try:
            with self.work() as w:
                self.store.add_device_rows(w.session, rows)
                w.changed = True
                w.audit("device.register", "success", actor, data={"count": len(creds), "group": group, "batch": True})
        except IntegrityError:
            raise Conflict("a device of this batch is already registered", field="id") from None
        return creds

    def delete_device(self, device_id: str, *, actor: str) -> None:
        """Decommission a device: its credential stops working; its history stays."""
        with self.work() as w:
            dev = self.store.device(w.session, device_id)
            if dev is None:
                raise NotFound(f"no device {device_id}")
            self.store.withdraw_waiting(w.session, device_id)
            dev.credential_hash = ""
            dev.last_status = "decommissioned"
            w.changed = True
            w.audit("device.register", "success", actor, objects={"device": device_id}, data={"action": "decommission"})
        self.cache.drop_auth(device_id)
        self.revoke_device_certificates(device_id, reason="decommissioned", actor=actor)

    def set_group(self, device_id: str, group: str, *, actor: str) -> DeviceView:
        """Move a device to another group (rollouts created later see the new group)."""
        with self.work() as w:
            dev = self.store.device(w.session, device_id)
            if dev is None:
                raise NotFound(f"no device {device_id}")
            before, dev.group = dev.group, group
            w.audit(
                "config.change", "success", actor, objects={"device": device_id}, data={"group": group, "was": before}
            )
            return device_view(dev)

    def device_rows(self, *, group: str | None = None, model: str | None = None) -> list[DeviceView]:
        """List devices (optionally of one group/model) with what they last reported."""
        self.flush_seen()
        return self.store.devices(group=group, model=model)

    def groups(self) -> list[GroupView]:
        """Groups with their device counts."""
        return self.store.groups()

    def fleet(self) -> list[FleetRow]:
        """How many active devices run each (model, version, secure_version)."""
        self.flush_seen()
        return self.store.fleet()

    # ---- releases ------------------------------------------------------------------------------------------

    def sync_releases(self, releases: Sequence[ReleaseInfo], *, actor: str) -> list[ReleaseView]:
        """Record the releases listed in the TUF targets metadata (new ones only; releases are immutable).

        Two processes syncing at once both try to insert; the loser sees the unique path conflict and retries.
        """
        for attempt in range(2):
            try:
                with self.work() as w:
                    known = self.store.release_paths(w.session)
                    added = [r for r in releases if r.target_path not in known]
                    for r in added:
                        self.store.add_release(w.session, r, created=now())
                    if added:
                        data = {"action": "sync", "added": [r.target_path for r in added]}
                        w.audit("release.publish", "success", actor, data=data)
                break
            except IntegrityError:
                if attempt:
                    raise
        return self.releases()

    def releases(self) -> list[ReleaseView]:
        """All known releases."""
        return self.store.releases()

    # ---- rollouts ------------------------------------------------------------------------------------------

    def create_rollout(
        self,
        *,
        release: str | int,
        name: str | None = None,
        group: str | None = None,
        devices: Sequence[str] | None = None,
        version: str | None = None,
        phases: Sequence[str] = ("10%", "100%"),
        success_threshold: int = 90,
        error_threshold: int = 10,
        require_approval: bool = False,
        actor: str,
    ) -> RolloutView:
        """Create and start a rollout of ``release`` (see :func:`medfw.server.rollouts.create`).

        ``require_approval``: each unit installs only after its user approved the release on the unit.
        """
        spec = RolloutSpec(release, name, group, devices, version, tuple(phases), success_threshold, error_threshold)
        self.flush_seen()
        with self.work() as w:
            rollout_id = rollouts.create(w, spec, actor=actor)
            self.set_rollout_approval(w, rollout_id, require_approval)
        return self.rollout(rollout_id)

    def rollouts(self) -> list[RolloutView]:
        """All rollouts with their per-phase counts."""
        with self.sessions() as s:
            views = [v for i in rollout_sql.rollout_ids(s) if (v := rollout_sql.rollout_view(s, i)) is not None]
        return [replace(v, trust=self.rollout_trust(v.id)) for v in views]

    def rollout(self, rollout_id: int) -> RolloutView:
        """One rollout with its per-phase counts."""
        with self.sessions() as s:
            view = rollout_sql.rollout_view(s, rollout_id)
        if view is None:
            raise NotFound(f"no rollout {rollout_id}")
        return replace(view, trust=self.rollout_trust(rollout_id))

    def control_rollout(self, rollout_id: int, action: str, *, actor: str) -> RolloutView:
        """``pause``, ``resume`` or ``cancel`` a rollout."""
        with self.work() as w:
            rollouts.control(w, rollout_id, action, actor=actor)
        return self.rollout(rollout_id)


def _device_row(
    device_id: str, model: str, chip: str, group: str, secret: DeviceSecret, *, created: datetime
) -> dict[str, object]:
    """The columns of a newly registered device holding the hashed ``secret``."""
    return {
        "id": device_id,
        "model": model,
        "chip": chip,
        "group": group,
        "credential_salt": secret.salt,
        "credential_hash": secret.digest,
        "secure_version": 0,
        "created": created,
    }


def _new_device(device_id: str, model: str, chip: str, group: str, secret: DeviceSecret) -> Device:
    """A newly registered device row holding the hashed ``secret``."""
    return Device(**_device_row(device_id, model, chip, group, secret, created=now()))
