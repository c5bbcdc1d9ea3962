"""Every SQL statement of the fleet server: devices, tokens, releases, reports, polls and the generation counter.

The service composes these inside its transactions (:meth:`Store.transaction`); nothing here applies a rule or
writes an audit event. Rollout and assignment statements are in :mod:`medfw.server.store_rollouts`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from medfw.server import rollout as rules
from medfw.server.cache import AuthEntry
from medfw.server.models import ApiToken, Assignment, Device, Release, Report, Rollout
from medfw.server.rows import device_view, release_view, report_view, token_view
from medfw.server.store_state import ASSIGNMENTS, FLEET, StateStore
from medfw.server.trust_models import DeviceIdentityRow
from medfw.server.views import DeviceView, FleetRow, GroupView, ReleaseView, ReportView, TokenView
from medfw.update.repository import ReleaseInfo

__all__ = ["ASSIGNMENTS", "FLEET", "Store", "active_assignment_of", "device_view", "is_outage"]


def is_outage(exc: DBAPIError) -> bool:
    """A lost or refused database connection (not a constraint violation or a bad value)."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc.orig).lower()
    # SQLite reports constraint-free failures of bad values as OperationalError too; these are not outages
    return not any(word in text for word in ("syntax", "no such table", "no such column"))


class Store(StateStore):
    """SQL over one database (the generation counters and the audit outbox: :class:`StateStore`).

    Args:
        sessions: a session factory bound to a migrated database.
    """

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back on any exception."""
        with self.sessions.begin() as s:
            yield s

    # ---- tokens ----------------------------------------------------------------------------------------------

    @staticmethod
    def token(s: Session, name: str) -> ApiToken | None:
        """A token row by name (to change inside the caller's transaction)."""
        return s.scalar(select(ApiToken).where(ApiToken.name == name))

    @staticmethod
    def add_token(
        s: Session, *, name: str, role: str, token_hash: str, created: datetime, expires: datetime | None
    ) -> None:
        """Store a token's hash."""
        s.add(ApiToken(name=name, role=role, token_hash=token_hash, created=created, expires=expires))

    def token_by_hash(self, token_hash: str) -> tuple[str, str, datetime | None, datetime | None] | None:
        """``(name, role, expires, revoked)`` of the token with this hash."""
        q = select(ApiToken.name, ApiToken.role, ApiToken.expires, ApiToken.revoked)
        with self.sessions() as s:
            row = s.execute(q.where(ApiToken.token_hash == token_hash)).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    def token_used(self, name: str, when: datetime) -> None:
        """Record a token's last use."""
        with self.engine.begin() as conn:
            conn.execute(update(ApiToken).where(ApiToken.name == name).values(last_used=when))

    def tokens(self) -> list[TokenView]:
        """Every token, oldest first (never its hash)."""
        when = datetime.now(UTC)
        with self.sessions() as s:
            return [token_view(t, when) for t in s.scalars(select(ApiToken).order_by(ApiToken.id))]

    # ---- devices ---------------------------------------------------------------------------------------------

    @staticmethod
    def device(s: Session, device_id: str) -> Device | None:
        """A device row (to change inside the caller's transaction)."""
        return s.get(Device, device_id)

    @staticmethod
    def add_device(s: Session, device: Device) -> None:
        """Insert a device row."""
        s.add(device)

    @staticmethod
    def add_device_rows(s: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many device rows (one executemany per 10,000)."""
        for i in range(0, len(rows), 10_000):
            s.execute(insert(Device), list(rows[i : i + 10_000]))

    @staticmethod
    def withdraw_waiting(s: Session, device_id: str) -> None:
        """Remove a device's assignments that have not started (decommissioning)."""
        s.execute(delete(Assignment).where(Assignment.device_id == device_id, Assignment.state == "waiting"))

    def credential(self, device_id: str) -> AuthEntry | None:
        """A device's credential digests; ``None`` for an unknown or decommissioned device."""
        with self.engine.connect() as conn:
            row = conn.execute(_CREDENTIAL, {"device_id": device_id}).first()
        if row is None or not row[1]:
            return None
        return AuthEntry(row[0], row[1], row[2], row[3], row[4])

    def credentials(self) -> Iterator[tuple[str, AuthEntry]]:
        """Every active device's credential digests (one query; the poll cache's warm-up)."""
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=10_000).execute(_ALL_CREDENTIALS)
            for row in rows:
                yield row[0], AuthEntry(row[1], row[2], row[3], row[4], row[5])

    def certified_devices(self) -> Iterator[str]:
        """Every device that has a certificate (one query; with the poll cache's warm-up)."""
        with self.engine.connect() as conn:
            yield from conn.scalars(select(DeviceIdentityRow.device_id))

    def assigned_devices(self) -> set[str]:
        """Devices with an active assignment in a running rollout (one query)."""
        with self.engine.connect() as conn:
            return set(conn.scalars(_ASSIGNED))

    def devices(self, *, group: str | None = None, model: str | None = None) -> list[DeviceView]:
        """Devices (of one group/model) ordered by id."""
        q = select(Device).order_by(Device.id)
        if group is not None:
            q = q.where(Device.group == group)
        if model is not None:
            q = q.where(Device.model == model)
        with self.sessions() as s:
            return [device_view(d) for d in s.scalars(q)]

    def groups(self) -> list[GroupView]:
        """Groups with their device counts."""
        with self.sessions() as s:
            rows = s.execute(select(Device.group, func.count()).group_by(Device.group).order_by(Device.group)).all()
        return [GroupView(name=g, devices=n) for g, n in rows]

    def fleet(self) -> list[FleetRow]:
        """Active devices per (model, version, secure_version)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Device.model, Device.version, Device.secure_version, func.count())
                .where(Device.credential_hash != "")
                .group_by(Device.model, Device.version, Device.secure_version)
                .order_by(Device.model, Device.version)
            ).all()
        return [FleetRow(model=m, version=v, secure_version=sv, devices=n) for m, v, sv, n in rows]

    def write_seen(self, rows: Sequence[dict[str, Any]]) -> None:
        """Write what polling devices reported (``b_id``, ``b_seen``, ``b_version``, ``b_svn``, ``b_slot``)."""
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one statement over arrays: far less work than an executemany
                conn.execute(
                    _SEEN_UNNEST, {k: [r[f"b_{k}"] for r in rows] for k in ("id", "seen", "version", "svn", "slot")}
                )
            else:
                conn.execute(_SEEN_UPDATE, list(rows))  # one executemany

    # ---- releases --------------------------------------------------------------------------------------------

    @staticmethod
    def release_paths(s: Session) -> set[str]:
        """Target paths of every recorded release."""
        return set(s.scalars(select(Release.target_path)))

    @staticmethod
    def add_release(s: Session, r: ReleaseInfo, *, created: datetime) -> None:
        """Record a release of the TUF targets metadata."""
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
                created=created,
            )
        )

    def releases(self) -> list[ReleaseView]:
        """Every recorded release, oldest first."""
        with self.sessions() as s:
            return [release_view(r) for r in s.scalars(select(Release).order_by(Release.id))]

    @staticmethod
    def release(s: Session, ref: str | int) -> Release | None:
        """A release by id or target path."""
        q = select(Release)
        q = q.where(Release.id == ref) if isinstance(ref, int) else q.where(Release.target_path == ref)
        return s.scalar(q)

    # ---- polls and reports -----------------------------------------------------------------------------------

    def active_assignment_row(self, device_id: str) -> Any:
        """The device's assignment in a running rollout joined with its release (one Core query), or ``None``."""
        with self.engine.connect() as conn:
            return conn.execute(_ACTIVE_ASSIGNMENT, {"device_id": device_id}).first()

    @staticmethod
    def active_assignment(s: Session, device_id: str) -> tuple[Assignment, Rollout, Release] | None:
        """The device's assignment in a running rollout, with its rollout and release (ORM, to change them)."""
        row = s.execute(
            select(Assignment, Rollout, Release)
            .join(Rollout, Rollout.id == Assignment.rollout_id)
            .join(Release, Release.id == Rollout.release_id)
            .where(*active_assignment_of(device_id))
            .order_by(Rollout.id.desc())
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    def assigned_target(self, device_id: str) -> str | None:
        """The target path of the release assigned to a device."""
        with self.sessions() as s:
            return s.scalar(
                select(Release.target_path)
                .join(Rollout, Rollout.release_id == Release.id)
                .join(Assignment, Assignment.rollout_id == Rollout.id)
                .where(*active_assignment_of(device_id))
                .order_by(Rollout.id.desc())
            )

    def reports(self, *, device_id: str | None, rollout_id: int | None = None, limit: int) -> list[ReportView]:
        """Most recent reports first (optionally of one device and/or one rollout)."""
        q = select(Report).order_by(Report.id.desc()).limit(limit)
        if device_id is not None:
            q = q.where(Report.device_id == device_id)
        if rollout_id is not None:
            q = q.where(Report.rollout_id == rollout_id)
        with self.sessions() as s:
            return [report_view(r) for r in s.scalars(q)]


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

_SEEN_UNNEST = text(
    "UPDATE devices SET last_seen = v.seen, version = v.version, secure_version = v.svn, slot = v.slot"
    " FROM unnest(CAST(:id AS varchar[]), CAST(:seen AS timestamptz[]), CAST(:version AS varchar[]),"
    " CAST(:svn AS integer[]), CAST(:slot AS varchar[])) AS v(id, seen, version, svn, slot)"
    " WHERE devices.id = v.id"
)

_CREDENTIAL = select(
    Device.credential_salt,
    Device.credential_hash,
    Device.prev_credential_salt,
    Device.prev_credential_hash,
    Device.prev_valid_until,
).where(Device.id == bindparam("device_id"))

_ALL_CREDENTIALS = select(
    Device.id,
    Device.credential_salt,
    Device.credential_hash,
    Device.prev_credential_salt,
    Device.prev_credential_hash,
    Device.prev_valid_until,
).where(Device.credential_hash != "")

_ASSIGNED = (
    select(Assignment.device_id)
    .join(Rollout, Rollout.id == Assignment.rollout_id)
    .where(
        Assignment.state.in_(sorted(rules.ACTIVE_STATES)),
        Rollout.state == rules.RolloutState.RUNNING.value,
    )
)

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


def active_assignment_of(device_id: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a device's assignment in a running rollout (the query joins Assignment and Rollout)."""
    return (
        Assignment.device_id == device_id,
        Assignment.state.in_(list(rules.ACTIVE_STATES)),
        Rollout.state == rules.RolloutState.RUNNING,
    )
