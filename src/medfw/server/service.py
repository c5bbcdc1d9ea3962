"""Fleet operations on the database: devices, tokens, releases, rollouts, polls and reports.

The web layer (:mod:`medfw.server.app`) authenticates and validates; this layer applies the rules of
:mod:`medfw.server.rollout` inside transactions and writes an audit event for every management action and every
device report.

Polls are the hot path. Each server process caches poll answers (and device credential digests) in memory, keyed by
device and the state it reports. Every change that can alter an answer bumps a generation counter stored in the
database (``fleet_state``); a process drops its cache as soon as it sees a new generation (its own changes at once,
other processes' within ``generation_check`` seconds). What devices report in polls (version, secure_version, slot,
last seen) is written in batches by :meth:`FleetService.flush_seen`, so an idle poll touches no table.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.errors import InputError
from medfw.server import rollout as rules
from medfw.server.credentials import (
    DEVICE_ID_RE,
    DeviceSecret,
    Role,
    hash_token,
    new_device_secret,
    new_token,
    parse_device_credential,
    verify_device_secret,
)
from medfw.server.models import ApiToken, Assignment, Device, FleetState, Release, Report, Rollout
from medfw.update.repository import ReleaseInfo

__all__ = ["ApiError", "FleetService", "PollResult"]


class ApiError(InputError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status


class _SerializedSink:
    """Lets request threads and the event loop share one audit log: one event is appended at a time."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` to the wrapped sink."""
        with self._lock:
            self._sink.record(event)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PollResult:
    """The answer to a poll: the assignment (or none) and its ETag."""

    body: dict[str, Any]
    etag: str


@dataclass
class _AuthEntry:
    salt: str
    digest: str


_Reported = tuple[str | None, int, str | None]
_MAX_CACHED = 500_000


@dataclass
class _Cache:
    generation: int = -1
    checked: float = float("-inf")
    auth: dict[str, _AuthEntry] = field(default_factory=dict)
    polls: dict[str, tuple[int, _Reported, PollResult]] = field(default_factory=dict)
    seen: dict[str, tuple[datetime, _Reported]] = field(default_factory=dict)


class FleetService:
    """All fleet state changes and queries.

    Args:
        sessions: a session factory bound to a migrated database.
        sink: where audit events go.
        poll_interval: seconds a device should wait between polls (returned in every poll answer).
        generation_check: how often (seconds) a process looks for changes made by other processes.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sink: AuditSink | None = None,
        *,
        poll_interval: int = 60,
        generation_check: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.sink: AuditSink = _SerializedSink(sink or NullSink())
        self.poll_interval = poll_interval
        self.generation_check = generation_check
        self._cache = _Cache()
        self._lock = threading.Lock()

    # ---- audit / cache -------------------------------------------------------------------------------------

    def _audit(
        self,
        type_: str,
        outcome: str,
        actor: str,
        *,
        reason: str | None = None,
        objects: dict[str, str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.sink.record(
            AuditEvent(type=type_, outcome=outcome, reason=reason, actor=actor, objects=objects or {}, data=data or {})
        )

    def _changed(self) -> None:
        """Bump the fleet generation (after a committed change that can alter poll answers)."""
        with self.sessions.begin() as s:
            s.execute(update(FleetState).where(FleetState.id == 1).values(generation=FleetState.generation + 1))
            generation = s.scalar(select(FleetState.generation).where(FleetState.id == 1))
        with self._lock:
            self._cache.polls.clear()
            self._cache.generation = int(generation or 0)
            self._cache.checked = time.monotonic()

    def _generation(self) -> int:
        """The fleet generation, re-read from the database at most every ``generation_check`` seconds."""
        now = time.monotonic()
        if now - self._cache.checked < self.generation_check:
            return self._cache.generation
        with self.sessions() as s:
            generation = int(s.scalar(select(FleetState.generation).where(FleetState.id == 1)) or 0)
        with self._lock:
            self._cache.checked = now
            if generation != self._cache.generation:
                self._cache.polls.clear()
                self._cache.auth.clear()
                self._cache.generation = generation
        return generation

    # ---- tokens --------------------------------------------------------------------------------------------

    def create_token(self, name: str, role: Role, *, actor: str = "cli") -> str:
        """Create a management token; the token is returned once and only its hash is stored."""
        token = new_token()
        with self.sessions.begin() as s:
            if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
                raise ApiError(409, f"a token named {name!r} exists", field="name")
            s.add(ApiToken(name=name, role=role.value, token_hash=hash_token(token), created=_now()))
        self._audit(
            "config.change",
            "success",
            actor,
            objects={"token": name},
            data={"action": "token.create", "role": role.value},
        )
        return token

    def tokens(self) -> list[dict[str, Any]]:
        """Every management token's name, role and creation time (never the token)."""
        with self.sessions() as s:
            rows = s.execute(select(ApiToken.name, ApiToken.role, ApiToken.created).order_by(ApiToken.name)).all()
        return [{"name": n, "role": r, "created": c.isoformat()} for n, r, c in rows]

    def revoke_token(self, name: str, *, actor: str) -> None:
        """Revoke a management token: it stops working at once (its console sessions end with it)."""
        with self.sessions.begin() as s:
            if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is None:
                raise ApiError(404, f"no token named {name!r}", field="name")
            s.execute(delete(ApiToken).where(ApiToken.name == name))
        self._audit("config.change", "success", actor, objects={"token": name}, data={"action": "token.revoke"})

    def authenticate_token(self, token: str) -> tuple[str, Role] | None:
        """Return (name, role) of a management token, or ``None``."""
        with self.sessions() as s:
            row = s.execute(
                select(ApiToken.name, ApiToken.role).where(ApiToken.token_hash == hash_token(token))
            ).first()
        if row is None:
            return None
        return row[0], Role(row[1])

    # ---- devices -------------------------------------------------------------------------------------------

    def add_device(self, device_id: str, *, model: str, chip: str = "", group: str = "default", actor: str) -> str:
        """Register a device and return its credential (shown once; stored hashed)."""
        if not DEVICE_ID_RE.match(device_id):
            raise ApiError(422, "device id must be 1-64 characters of [A-Za-z0-9._-]", field="id")
        secret = new_device_secret(device_id)
        try:
            with self.sessions.begin() as s:
                if s.get(Device, device_id) is not None:
                    raise ApiError(409, f"device {device_id} is already registered", field="id")
                s.add(_new_device(device_id, model=model, chip=chip, group=group, secret=secret, created=_now()))
        except IntegrityError:
            raise ApiError(409, f"device {device_id} is already registered", field="id") from None
        self._changed()
        self._audit(
            "device.register", "success", actor, objects={"device": device_id}, data={"model": model, "group": group}
        )
        return secret.credential

    def add_devices(self, devices: Sequence[tuple[str, str, str]], *, group: str = "default", actor: str) -> list[str]:
        """Register many ``(id, model, chip)`` devices in one transaction (factory provisioning); return credentials.

        All or nothing: one invalid or already registered id refuses the whole batch.
        """
        creds: list[str] = []
        now = _now()
        try:
            with self.sessions.begin() as s:
                for device_id, model, chip in devices:
                    if not DEVICE_ID_RE.match(device_id):
                        raise ApiError(422, f"bad device id {device_id!r}", field="id")
                    secret = new_device_secret(device_id)
                    s.add(_new_device(device_id, model=model, chip=chip, group=group, secret=secret, created=now))
                    creds.append(secret.credential)
        except IntegrityError:
            raise ApiError(409, "a device of this batch is already registered", field="id") from None
        self._changed()
        self._audit("device.register", "success", actor, data={"count": len(creds), "group": group, "batch": True})
        return creds

    def delete_device(self, device_id: str, *, actor: str) -> None:
        """Decommission a device: its credential stops working; its history stays."""
        with self.sessions.begin() as s:
            dev = s.get(Device, device_id)
            if dev is None:
                raise ApiError(404, f"no device {device_id}")
            s.execute(delete(Assignment).where(Assignment.device_id == device_id, Assignment.state == "waiting"))
            dev.credential_hash = ""
            dev.last_status = "decommissioned"
        with self._lock:
            self._cache.auth.pop(device_id, None)
        self._changed()
        self._audit("device.register", "success", actor, objects={"device": device_id}, data={"action": "decommission"})

    def set_group(self, device_id: str, group: str, *, actor: str) -> dict[str, Any]:
        """Move a device to another group (rollouts created later see the new group)."""
        with self.sessions.begin() as s:
            dev = s.get(Device, device_id)
            if dev is None:
                raise ApiError(404, f"no device {device_id}")
            before, dev.group = dev.group, group
            out = _device_dict(dev)
        self._audit(
            "config.change", "success", actor, objects={"device": device_id}, data={"group": group, "was": before}
        )
        return out

    def authenticate_device_cached(self, credential: str) -> str | bool | None:
        """Check a credential against the in-memory digests: the device id, ``None`` (refused), or ``False`` when
        the digest is not cached yet (call :meth:`authenticate_device`)."""
        parsed = parse_device_credential(credential)
        if parsed is None:
            return None
        device_id, secret = parsed
        self._generation()
        entry = self._cache.auth.get(device_id)
        if entry is None:
            return False
        return device_id if verify_device_secret(entry.salt, entry.digest, secret) else None

    def authenticate_device(self, credential: str) -> str | None:
        """Return the device id a credential belongs to, or ``None`` (constant-time digest check)."""
        parsed = parse_device_credential(credential)
        if parsed is None:
            return None
        device_id, secret = parsed
        self._generation()
        entry = self._cache.auth.get(device_id)
        if entry is None:
            with self.sessions.kw["bind"].connect() as conn:
                row = conn.execute(_CREDENTIAL, {"device_id": device_id}).first()
            if row is None or not row[1]:
                return None
            entry = _AuthEntry(row[0], row[1])
            with self._lock:
                if len(self._cache.auth) >= _MAX_CACHED:
                    self._cache.auth.clear()
                self._cache.auth[device_id] = entry
        return device_id if verify_device_secret(entry.salt, entry.digest, secret) else None

    def device_rows(self, *, group: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """List devices (optionally of one group/model) with what they last reported."""
        self.flush_seen()
        q = select(Device).order_by(Device.id)
        if group is not None:
            q = q.where(Device.group == group)
        if model is not None:
            q = q.where(Device.model == model)
        with self.sessions() as s:
            return [_device_dict(d) for d in s.scalars(q)]

    def groups(self) -> list[dict[str, Any]]:
        """Groups with their device counts."""
        with self.sessions() as s:
            rows = s.execute(select(Device.group, func.count()).group_by(Device.group).order_by(Device.group)).all()
        return [{"name": g, "devices": n} for g, n in rows]

    def fleet(self) -> list[dict[str, Any]]:
        """How many devices run each (model, version, secure_version)."""
        self.flush_seen()
        with self.sessions() as s:
            rows = s.execute(
                select(Device.model, Device.version, Device.secure_version, func.count())
                .where(Device.credential_hash != "")
                .group_by(Device.model, Device.version, Device.secure_version)
                .order_by(Device.model, Device.version)
            ).all()
        return [{"model": m, "version": v, "secure_version": sv, "devices": n} for m, v, sv, n in rows]

    # ---- releases ------------------------------------------------------------------------------------------

    def sync_releases(self, releases: Sequence[ReleaseInfo], *, actor: str) -> list[dict[str, Any]]:
        """Record the releases listed in the TUF targets metadata (new ones only; releases are immutable)."""
        added: list[str] = []
        with self.sessions.begin() as s:
            known = set(s.scalars(select(Release.target_path)))
            for r in releases:
                if r.target_path in known:
                    continue
                s.add(
                    Release(
                        target_path=r.target_path,
                        model=r.model,
                        chip=r.chip,
                        image_format=r.image_format,
                        version=r.version,
                        secure_version=r.secure_version,
                        length=r.length,
                        sha256=r.sha256,
                        sbom=dict(r.sbom),
                        created=_now(),
                    )
                )
                added.append(r.target_path)
        if added:
            self._audit("release.publish", "success", actor, data={"action": "sync", "added": added})
        return self.releases()

    def releases(self) -> list[dict[str, Any]]:
        """All known releases."""
        with self.sessions() as s:
            return [_release_dict(r) for r in s.scalars(select(Release).order_by(Release.id))]

    def _release(self, s: Session, ref: str | int) -> Release:
        q = select(Release)
        q = q.where(Release.id == ref) if isinstance(ref, int) else q.where(Release.target_path == ref)
        rel = s.scalar(q)
        if rel is None:
            raise ApiError(404, f"no release {ref}", field="release")
        return rel

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
        actor: str,
    ) -> dict[str, Any]:
        """Create and start a rollout of ``release``.

        Targets are the release's model's devices, narrowed by ``group``, an explicit ``devices`` list and/or the
        currently reported ``version`` (a filter). Devices of another model are never targeted; a device whose
        reported secure_version is above the release's is marked ``skipped`` (``secure_version_lower``).
        """
        specs = rules.parse_phases(list(phases))
        for what, value in (("success_threshold", success_threshold), ("error_threshold", error_threshold)):
            if not 1 <= value <= 100:
                raise ApiError(422, f"{what} must be 1..100", field=what)
        now = _now()
        self.flush_seen()
        with self.sessions.begin() as s:
            rel = self._release(s, release)
            q = select(Device).where(Device.model == rel.model, Device.credential_hash != "").order_by(Device.id)
            if group is not None:
                q = q.where(Device.group == group)
            if devices:
                q = q.where(Device.id.in_(list(devices)))
            if version is not None:
                q = q.where(Device.version == version)
            targets = list(s.scalars(q))
            if not targets:
                raise ApiError(422, "no registered device of this model matches the rollout target", field="target")
            busy = set(
                s.scalars(
                    select(Assignment.device_id)
                    .join(Rollout, Rollout.id == Assignment.rollout_id)
                    .where(
                        Rollout.state.in_([rules.RolloutState.RUNNING, rules.RolloutState.PAUSED]),
                        Assignment.state.in_([*rules.ACTIVE_STATES, "waiting"]),
                        Assignment.device_id.in_([d.id for d in targets]),
                    )
                )
            )
            if busy:
                raise ApiError(409, f"{len(busy)} device(s) are in another active rollout", field="target")
            ro = Rollout(
                name=name or f"{rel.target_path}",
                release_id=rel.id,
                target={"group": group, "devices": list(devices or []), "version": version, "model": rel.model},
                phases=specs,
                success_threshold=success_threshold,
                error_threshold=error_threshold,
                state=rules.RolloutState.RUNNING.value,
                current_phase=0,
                created=now,
                updated=now,
            )
            s.add(ro)
            s.flush()
            sizes = rules.phase_sizes(specs, len(targets))
            i = 0
            for phase, size in enumerate(sizes):
                for dev in targets[i : i + size]:
                    why = rules.ineligibility(
                        device_model=dev.model,
                        device_secure_version=dev.secure_version,
                        release_model=rel.model,
                        release_secure_version=rel.secure_version,
                    )
                    state = "skipped" if why else ("pending" if phase == 0 else "waiting")
                    s.add(
                        Assignment(
                            rollout_id=ro.id, device_id=dev.id, phase=phase, state=state, reason=why, updated=now
                        )
                    )
                i += size
            s.flush()
            self._evaluate(s, ro)
            rollout_id = ro.id
        self._changed()
        self._audit(
            "rollout.change",
            "success",
            actor,
            objects={"rollout": str(rollout_id), "release": rel.target_path, "release_sha256": rel.sha256},
            data={
                "action": "create",
                "devices": len(targets),
                "phases": specs,
                "success": success_threshold,
                "error": error_threshold,
            },
        )
        return self.rollout(rollout_id)

    def rollouts(self) -> list[dict[str, Any]]:
        """All rollouts with their per-phase counts."""
        with self.sessions() as s:
            ids = list(s.scalars(select(Rollout.id).order_by(Rollout.id)))
        return [self.rollout(i) for i in ids]

    def rollout(self, rollout_id: int) -> dict[str, Any]:
        """One rollout with its per-phase counts."""
        with self.sessions() as s:
            ro = s.get(Rollout, rollout_id)
            if ro is None:
                raise ApiError(404, f"no rollout {rollout_id}")
            rel = s.get(Release, ro.release_id)
            assert rel is not None
            rows = s.execute(
                select(Assignment.phase, Assignment.state, Assignment.reason, func.count())
                .where(Assignment.rollout_id == rollout_id)
                .group_by(Assignment.phase, Assignment.state, Assignment.reason)
            ).all()
        per_phase: list[Counter[str]] = [Counter() for _ in ro.phases]
        reasons: Counter[tuple[str, str]] = Counter()
        for phase, state, reason, n in rows:
            per_phase[phase][state] += n
            if reason and (state in rules.ERROR_STATES or state == "skipped"):
                reasons[(state, reason)] += n
        return {
            "id": ro.id,
            "name": ro.name,
            "release": rel.target_path,
            "version": rel.version,
            "secure_version": rel.secure_version,
            "target": ro.target,
            "state": ro.state,
            "state_reason": ro.state_reason,
            "current_phase": ro.current_phase + 1,
            "success_threshold": ro.success_threshold,
            "error_threshold": ro.error_threshold,
            "phases": [
                {"phase": i + 1, "spec": spec, "counts": dict(sorted(per_phase[i].items()))}
                for i, spec in enumerate(ro.phases)
            ],
            "reasons": [
                {"state": state, "reason": reason, "devices": n}
                for (state, reason), n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            "created": ro.created.isoformat(),
            "updated": ro.updated.isoformat(),
        }

    def control_rollout(self, rollout_id: int, action: str, *, actor: str) -> dict[str, Any]:
        """``pause``, ``resume`` or ``cancel`` a rollout."""
        allowed = {
            "pause": ({rules.RolloutState.RUNNING}, rules.RolloutState.PAUSED),
            "resume": ({rules.RolloutState.PAUSED}, rules.RolloutState.RUNNING),
            "cancel": ({rules.RolloutState.RUNNING, rules.RolloutState.PAUSED}, rules.RolloutState.CANCELLED),
        }
        if action not in allowed:
            raise ApiError(404, f"unknown rollout action {action!r}")
        sources, target = allowed[action]
        with self.sessions.begin() as s:
            ro = s.get(Rollout, rollout_id, with_for_update=True)
            if ro is None:
                raise ApiError(404, f"no rollout {rollout_id}")
            if ro.state not in sources:
                raise ApiError(409, f"cannot {action} a {ro.state} rollout", field="state")
            ro.state = target.value
            ro.state_reason = f"{action}d by {actor}" if action != "cancel" else f"cancelled by {actor}"
            ro.updated = _now()
            if target is rules.RolloutState.CANCELLED:
                s.execute(
                    update(Assignment)
                    .where(Assignment.rollout_id == rollout_id, Assignment.state.in_(["waiting", "pending"]))
                    .values(state="cancelled", reason="rollout_cancelled", updated=_now())
                )
            if target is rules.RolloutState.RUNNING:
                self._evaluate(s, ro)
        self._changed()
        self._audit("rollout.change", "success", actor, objects={"rollout": str(rollout_id)}, data={"action": action})
        return self.rollout(rollout_id)

    def _counts(self, s: Session, ro: Rollout) -> rules.PhaseCounts:
        rows = s.execute(
            select(Assignment.state, func.count())
            .where(Assignment.rollout_id == ro.id, Assignment.phase <= ro.current_phase)
            .group_by(Assignment.state)
        ).all()
        c: Counter[str] = Counter(dict(rows))
        return rules.PhaseCounts(
            total=sum(c.values()),
            waiting=c["waiting"],
            active=sum(c[x] for x in rules.ACTIVE_STATES),
            confirmed=c["confirmed"],
            failed=sum(c[x] for x in rules.ERROR_STATES),
            skipped=c["skipped"],
            cancelled=c["cancelled"],
        )

    def _evaluate(self, s: Session, ro: Rollout) -> None:
        """Advance, finish or pause a running rollout according to its counts (inside the caller's transaction)."""
        while ro.state == rules.RolloutState.RUNNING:
            counts = self._counts(s, ro)
            last = ro.current_phase >= len(ro.phases) - 1
            decision = rules.decide(
                counts,
                success_threshold=ro.success_threshold,
                error_threshold=ro.error_threshold,
                last_phase=last,
            )
            if decision is rules.Decision.WAIT:
                return
            ro.updated = _now()
            if decision is rules.Decision.PAUSE:
                ro.state = rules.RolloutState.PAUSED.value
                ro.state_reason = f"error_threshold: {counts.failed}/{counts.considered} devices failed"
                self._audit(
                    "rollout.change",
                    "denied",
                    "server",
                    reason="error_threshold",
                    objects={"rollout": str(ro.id)},
                    data={
                        "action": "pause",
                        "failed": counts.failed,
                        "considered": counts.considered,
                        "phase": ro.current_phase + 1,
                    },
                )
                return
            if decision is rules.Decision.FINISH:
                self._finish(s, ro)
                return
            ro.current_phase += 1
            s.execute(
                update(Assignment)
                .where(
                    Assignment.rollout_id == ro.id,
                    Assignment.phase == ro.current_phase,
                    Assignment.state == "waiting",
                )
                .values(state="pending", updated=_now())
            )
            self._audit(
                "rollout.change",
                "success",
                "server",
                objects={"rollout": str(ro.id)},
                data={"action": "advance", "phase": ro.current_phase + 1},
            )

    def _finish(self, s: Session, ro: Rollout) -> None:
        """End a rollout whose last phase is done: ``finished``, or ``nothing_to_do`` when no device was updated."""
        updated = s.scalar(
            select(func.count())
            .select_from(Assignment)
            .where(
                Assignment.rollout_id == ro.id,
                Assignment.state.in_(["confirmed", *rules.ERROR_STATES]),
                func.coalesce(Assignment.reason, "") != "already_installed",
            )
        )
        if updated:
            ro.state = rules.RolloutState.FINISHED.value
            ro.state_reason = "success_threshold reached in the last phase"
        else:
            ro.state = rules.RolloutState.NOTHING_TO_DO.value
            ro.state_reason = "no device needed this release (all skipped or already on it)"
        self._audit(
            "rollout.change",
            "success",
            "server",
            objects={"rollout": str(ro.id)},
            data={"action": "finish", "state": ro.state},
        )

    # ---- device API ----------------------------------------------------------------------------------------

    def poll_cached(
        self, device_id: str, *, version: str | None, secure_version: int, slot: str | None
    ) -> PollResult | None:
        """The cached answer to a poll, or ``None`` when it must be computed (:meth:`poll`). Records the poll."""
        reported: _Reported = (version, secure_version, slot)
        generation = self._generation()
        with self._lock:
            self._cache.seen[device_id] = (_now(), reported)
            hit = self._cache.polls.get(device_id)
        if hit is not None and hit[0] == generation and hit[1] == reported:
            return hit[2]
        return None

    def poll(self, device_id: str, *, version: str | None, secure_version: int, slot: str | None) -> PollResult:
        """Record what a device reports and return its current assignment (cached while nothing changes)."""
        cached = self.poll_cached(device_id, version=version, secure_version=secure_version, slot=slot)
        if cached is not None:
            return cached
        generation = self._generation()
        body, changed = self._poll_db(device_id, version=version, secure_version=secure_version)
        if changed:
            self._changed()
            generation = self._cache.generation
        etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32] + '"'
        result = PollResult(body=body, etag=etag)
        with self._lock:
            if self._cache.generation == generation:
                if len(self._cache.polls) >= _MAX_CACHED:
                    self._cache.polls.clear()
                self._cache.polls[device_id] = (generation, (version, secure_version, slot), result)
        return result

    def _poll_db(self, device_id: str, *, version: str | None, secure_version: int) -> tuple[dict[str, Any], bool]:
        """Compute a poll answer: one Core query on the common path, the ORM when an assignment must change."""
        engine = self.sessions.kw["bind"]
        with engine.connect() as conn:
            row = conn.execute(_ACTIVE_ASSIGNMENT, {"device_id": device_id}).first()
        if row is None:
            return self._poll_body(device_id, None), False
        why = rules.ineligibility(
            device_model=row.device_model,
            device_secure_version=secure_version,
            release_model=row.model,
            release_secure_version=row.secure_version,
        )
        if why is None and not (version == row.version and row.state == "pending"):
            return self._poll_body(device_id, _assignment_dict(device_id, row.rollout_id, row)), False
        return self._poll_update(device_id, version=version, secure_version=secure_version)

    def _poll_update(self, device_id: str, *, version: str | None, secure_version: int) -> tuple[dict[str, Any], bool]:
        changed = False
        with self.sessions.begin() as s:
            dev = s.get(Device, device_id)
            if dev is None:
                raise ApiError(404, f"no device {device_id}")
            row = s.execute(
                select(Assignment, Rollout, Release)
                .join(Rollout, Rollout.id == Assignment.rollout_id)
                .join(Release, Release.id == Rollout.release_id)
                .where(*_active_assignment_of(device_id))
                .order_by(Rollout.id.desc())
            ).first()
            assignment: dict[str, Any] | None = None
            if row is not None:
                a, ro, rel = row
                why = rules.ineligibility(
                    device_model=dev.model,
                    device_secure_version=secure_version,
                    release_model=rel.model,
                    release_secure_version=rel.secure_version,
                )
                if why is not None:
                    a.state, a.reason, a.updated = "skipped", why, _now()
                    self._evaluate(s, ro)
                    changed = True
                elif version == rel.version and a.state == "pending":
                    a.state, a.reason, a.updated = "confirmed", "already_installed", _now()
                    self._evaluate(s, ro)
                    changed = True
                else:
                    assignment = _assignment_dict(device_id, ro.id, rel)
        return self._poll_body(device_id, assignment), changed

    def _poll_body(self, device_id: str, assignment: dict[str, Any] | None) -> dict[str, Any]:
        return {"device": device_id, "assignment": assignment, "poll_interval": self.poll_interval}

    def assigned_target(self, device_id: str) -> str:
        """The target path of the release assigned to a device (for the artifact download)."""
        with self.sessions() as s:
            path = s.scalar(
                select(Release.target_path)
                .join(Rollout, Rollout.release_id == Release.id)
                .join(Assignment, Assignment.rollout_id == Rollout.id)
                .where(*_active_assignment_of(device_id))
                .order_by(Rollout.id.desc())
            )
        if path is None:
            raise ApiError(404, "no release is assigned to this device")
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
    ) -> dict[str, Any]:
        """Store a device status report, move its assignment along and re-evaluate the rollout."""
        if status not in rules.REPORT_STATUSES:
            raise ApiError(422, f"unknown status {status!r}", field="status")
        if status in rules.ERROR_STATES and not reason:
            raise ApiError(422, f"a {status} report needs a reason", field="reason")
        now = _now()
        self.flush_seen()
        with self.sessions.begin() as s:
            dev = s.get(Device, device_id)
            if dev is None:
                raise ApiError(404, f"no device {device_id}")
            a: Assignment | None = None
            if rollout_id is not None:
                a = s.scalar(
                    select(Assignment).where(Assignment.rollout_id == rollout_id, Assignment.device_id == device_id)
                )
                if a is None:
                    raise ApiError(404, f"device {device_id} is not part of rollout {rollout_id}", field="rollout")
            s.add(
                Report(
                    device_id=device_id,
                    rollout_id=rollout_id,
                    status=status,
                    reason=reason,
                    detail=detail,
                    version=version,
                    secure_version=secure_version,
                    slot=slot,
                    created=now,
                )
            )
            dev.last_status = status
            if version is not None:
                dev.version = version
            if secure_version is not None:
                dev.secure_version = secure_version
            if slot is not None:
                dev.slot = slot
            if a is not None and a.state not in rules.FINAL_STATES:
                a.state, a.reason, a.updated = status, reason, now
                ro = s.get(Rollout, a.rollout_id, with_for_update=True)
                assert ro is not None
                self._evaluate(s, ro)
        self._changed()
        outcome = "failure" if status in rules.ERROR_STATES else "success"
        self._audit(
            "ota.report",
            outcome,
            f"device:{device_id}",
            reason=reason,
            objects={"device": device_id, **({"rollout": str(rollout_id)} if rollout_id is not None else {})},
            data={
                "status": status,
                "version": version,
                "secure_version": secure_version,
                "slot": slot,
                "detail": detail,
            },
        )
        return {"device": device_id, "status": status, "accepted": True}

    def reports(
        self, *, device_id: str | None = None, rollout_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Most recent reports first (optionally of one device and/or one rollout)."""
        q = select(Report).order_by(Report.id.desc()).limit(max(1, min(limit, 1000)))
        if device_id is not None:
            q = q.where(Report.device_id == device_id)
        if rollout_id is not None:
            q = q.where(Report.rollout_id == rollout_id)
        with self.sessions() as s:
            return [
                {
                    "id": r.id,
                    "device": r.device_id,
                    "rollout": r.rollout_id,
                    "status": r.status,
                    "reason": r.reason,
                    "detail": r.detail,
                    "version": r.version,
                    "secure_version": r.secure_version,
                    "slot": r.slot,
                    "created": r.created.isoformat(),
                }
                for r in s.scalars(q)
            ]

    def flush_seen(self) -> None:
        """Write what polling devices reported (version, secure_version, slot, last seen), in one transaction."""
        with self._lock:
            seen, self._cache.seen = self._cache.seen, {}
        if not seen:
            return
        rows = [
            {"b_id": device_id, "b_seen": when, "b_version": version, "b_svn": secure_version, "b_slot": slot}
            for device_id, (when, (version, secure_version, slot)) in seen.items()
        ]
        with self.sessions.kw["bind"].begin() as conn:
            conn.execute(_SEEN_UPDATE, rows)  # one executemany

    def record_denied(self, what: str, *, actor: str, reason: str, data: dict[str, Any] | None = None) -> None:
        """Audit a refused request (bad credential, wrong role, a device acting for another).

        ``what`` is ``device`` (device API: recorded as ``ota.report``) or ``management`` (``config.change``).
        """
        type_ = "ota.report" if what == "device" else "config.change"
        self._audit(type_, "denied", actor, reason=reason, data={"action": "authenticate", **(data or {})})


_SEEN_UPDATE = (
    update(Device)
    .where(Device.id == bindparam("b_id"))
    .values(
        last_seen=bindparam("b_seen"),
        version=bindparam("b_version"),
        secure_version=bindparam("b_svn"),
        slot=bindparam("b_slot"),
    )
)

_CREDENTIAL = select(Device.credential_salt, Device.credential_hash).where(Device.id == bindparam("device_id"))

_ACTIVE_ASSIGNMENT = (
    select(
        Assignment.state,
        Rollout.id.label("rollout_id"),
        Release.target_path,
        Release.model,
        Release.version,
        Release.secure_version,
        Release.length,
        Release.sha256,
        Device.model.label("device_model"),
    )
    .select_from(Assignment)
    .join(Rollout, Rollout.id == Assignment.rollout_id)
    .join(Release, Release.id == Rollout.release_id)
    .join(Device, Device.id == Assignment.device_id)
    .where(
        Assignment.device_id == bindparam("device_id"),
        Assignment.state.in_(sorted(rules.ACTIVE_STATES)),
        Rollout.state == rules.RolloutState.RUNNING.value,
    )
    .order_by(Rollout.id.desc())
    .limit(1)
)


def _new_device(
    device_id: str, *, model: str, chip: str, group: str, secret: DeviceSecret, created: datetime
) -> Device:
    """A newly registered device row holding the hashed ``secret``."""
    return Device(
        id=device_id,
        model=model,
        chip=chip,
        group=group,
        credential_salt=secret.salt,
        credential_hash=secret.digest,
        secure_version=0,
        created=created,
    )


def _active_assignment_of(device_id: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a device's assignment in a running rollout (the query joins Assignment and Rollout)."""
    return (
        Assignment.device_id == device_id,
        Assignment.state.in_(list(rules.ACTIVE_STATES)),
        Rollout.state == rules.RolloutState.RUNNING,
    )


def _assignment_dict(device_id: str, rollout_id: int, release: Any) -> dict[str, Any]:
    """The assignment a poll hands out: the rollout and its release (a :class:`Release` or a row with its columns)."""
    return {
        "rollout": rollout_id,
        "target_path": release.target_path,
        "version": release.version,
        "secure_version": release.secure_version,
        "length": release.length,
        "sha256": release.sha256,
        "download": f"/api/v1/devices/{device_id}/artifact",
    }


def _device_dict(d: Device) -> dict[str, Any]:
    return {
        "id": d.id,
        "model": d.model,
        "chip": d.chip,
        "group": d.group,
        "version": d.version,
        "secure_version": d.secure_version,
        "slot": d.slot,
        "last_status": d.last_status,
        "last_seen": d.last_seen.isoformat() if d.last_seen else None,
        "active": bool(d.credential_hash),
    }


def _release_dict(r: Release) -> dict[str, Any]:
    return {
        "id": r.id,
        "target_path": r.target_path,
        "model": r.model,
        "chip": r.chip,
        "image_format": r.image_format,
        "version": r.version,
        "secure_version": r.secure_version,
        "length": r.length,
        "sha256": r.sha256,
        "sbom": r.sbom,
    }
