"""Tables of the device-trust part of the fleet server: certificates, revocation, enrollment, signed claims, the
units' audit trails, maintenance windows, rollout options and key-rotation campaigns (migration 0006)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from medfw.server.models import Base

__all__ = [
    "DeviceClaims",
    "DeviceIdentityRow",
    "DeviceTrail",
    "EnrollmentRequest",
    "GroupWindow",
    "ModelGroup",
    "PreauthorizedSerial",
    "RevokedCertificate",
    "RolloutOptions",
    "RotationCampaign",
    "RotationUnit",
    "TrailEntry",
]


class DeviceIdentityRow(Base):
    """The certificate a device authenticates with (the latest one seen)."""

    __tablename__ = "device_identities"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    enrolled_via: Mapped[str] = mapped_column(String(32))
    certificate: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RevokedCertificate(Base):
    """The server's revocation list: a revoked serial never authenticates again."""

    __tablename__ = "revoked_certificates"

    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PreauthorizedSerial(Base):
    """A serial an operator pre-authorised: it enrols itself on first contact."""

    __tablename__ = "preauthorized_serials"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EnrollmentRequest(Base):
    """A unit with a valid factory certificate whose serial was not pre-authorised: held for approval."""

    __tablename__ = "enrollment_requests"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    chip: Mapped[str] = mapped_column(String(32))
    serial: Mapped[str] = mapped_column(String(64))
    certificate: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ModelGroup(Base):
    """The group a model's units enrol into (``default`` when not set)."""

    __tablename__ = "model_groups"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    group: Mapped[str] = mapped_column("group_name", String(64))


class DeviceClaims(Base):
    """The last verified signed claims of a device and the replay counters per kind."""

    __tablename__ = "device_claims"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    last_seq: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    claims: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verified: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceTrail(Base):
    """What the server holds of a unit's own audit trail: head of the verified chain, the latest signed checkpoint."""

    __tablename__ = "device_trails"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    head: Mapped[str] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    log_size: Mapped[int] = mapped_column(Integer, default=0)
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    last_refusal: Mapped[str | None] = mapped_column(String(256), nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrailEntry(Base):
    """One verified entry of a unit's audit trail (the canonical record and its seal)."""

    __tablename__ = "device_trail_entries"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[str] = mapped_column(Text)
    tag: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ts: Mapped[str] = mapped_column(String(40))


class GroupWindow(Base):
    """A group's maintenance window: installs are assigned only on ``days`` between ``start``/``end`` (minutes of
    the day, in ``timezone``; ``end < start`` spans midnight)."""

    __tablename__ = "group_windows"

    group: Mapped[str] = mapped_column("group_name", String(64), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    days: Mapped[list[int]] = mapped_column(JSON)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)


class RolloutOptions(Base):
    """Per-rollout options beyond the release and phases."""

    __tablename__ = "rollout_options"

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    campaign_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RotationCampaign(Base):
    """A fleet key-rotation campaign: a dual-signed release rolled out, the new key burned, the old slot revoked."""

    __tablename__ = "rotation_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"))
    old_slot: Mapped[int] = mapped_column(Integer)
    old_key_digest: Mapped[str] = mapped_column(String(64))
    new_key_digest: Mapped[str] = mapped_column(String(64))
    new_key_fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    approvals: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RotationUnit(Base):
    """One unit's progress in a campaign."""

    __tablename__ = "rotation_units"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("rotation_campaigns.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))
