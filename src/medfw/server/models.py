"""SQLAlchemy 2 tables of the fleet server (the schema the Alembic migrations build).

Secrets are never stored: device credentials and management tokens are kept as keyed hashes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["ApiToken", "Assignment", "AuditOutbox", "Base", "Device", "FleetState", "Release", "Report", "Rollout"]


class Base(DeclarativeBase):
    """Declarative base of the server tables."""


class Device(Base):
    """A registered device and what it last reported."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    chip: Mapped[str] = mapped_column(String(32), default="")
    group: Mapped[str] = mapped_column("group_name", String(64), default="default", index=True)
    credential_salt: Mapped[str] = mapped_column(String(64))
    credential_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    secure_version: Mapped[int] = mapped_column(Integer, default=0)
    slot: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    prev_credential_salt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_credential_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Release(Base):
    """A release known from the TUF targets metadata (the server never signs releases)."""

    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_path: Mapped[str] = mapped_column(String(256), unique=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    chip: Mapped[str] = mapped_column(String(32), default="")
    image_format: Mapped[str] = mapped_column(String(32), default="")
    version: Mapped[str] = mapped_column(String(64))
    secure_version: Mapped[int] = mapped_column(Integer)
    length: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    sbom: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Rollout(Base):
    """A staged rollout of one release to a set of devices."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    phases: Mapped[list[str]] = mapped_column(JSON)
    success_threshold: Mapped[int] = mapped_column(Integer)
    error_threshold: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    current_phase: Mapped[int] = mapped_column(Integer, default=0)
    acknowledged_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Assignment(Base):
    """One device in one rollout: its phase and how far its update went."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("rollout_id", "device_id", name="uq_assignment_rollout_device"),
        Index("ix_assignment_device_state", "device_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    phase: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Report(Base):
    """A status report sent by a device."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    secure_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    slot: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A management API token (admin, operator or read-only), stored as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditOutbox(Base):
    """Audit events committed with the state change they record, waiting to be appended to the audit log."""

    __tablename__ = "audit_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FleetState(Base):
    """One row: the generation counter that invalidates cached poll answers in every server process."""

    __tablename__ = "fleet_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
