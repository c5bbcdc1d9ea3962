"""Request and response bodies of the fleet server API (they document the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from medfw.server.credentials import DURATION_PATTERN
from medfw.server.rollout import REPORT_STATUSES
from medfw.server.validation import (
    DEVICE_ID_PATTERN,
    NAME_PATTERN,
    Id32,
    PrintableText,
    ReportedVersion,
    SlotName,
)

__all__ = [
    "Assignment",
    "ControlResult",
    "CredentialRotate",
    "DeviceCreate",
    "DeviceCreated",
    "DeviceOut",
    "DeviceReprovision",
    "Error",
    "FleetRow",
    "GroupChange",
    "GroupOut",
    "PhaseOut",
    "PollOut",
    "ReleaseOut",
    "ReportIn",
    "ReportOut",
    "ReportStored",
    "RolloutCreate",
    "RolloutOut",
    "TokenCreate",
    "TokenCreated",
    "TokenOut",
]

_ID = DEVICE_ID_PATTERN
_NAME = NAME_PATTERN
_CHIP = r"^[A-Za-z0-9_-]{0,32}$"
_TARGET_PATH = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}/[A-Za-z0-9][A-Za-z0-9._+-]{0,190}$"
_PHASE = r"^[0-9]{1,7}%?$"
_REASON = r"^[A-Za-z0-9_.:-]{1,128}$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=512)


class Error(BaseModel):
    """Every refused request: the reason, never a stack trace."""

    detail: str


class DeviceCreate(_In):
    """Register a device."""

    id: str = Field(pattern=_ID)
    model: str = Field(pattern=_NAME)
    chip: str = Field(default="", pattern=_CHIP)
    group: str = Field(default="default", pattern=_NAME)


class GroupChange(_In):
    """Move a device to a group."""

    group: str = Field(pattern=_NAME)


class DeviceCreated(BaseModel):
    """A registered device and its credential (returned once, stored hashed)."""

    id: str
    credential: str


class DeviceOut(BaseModel):
    """A device and what it last reported."""

    id: str
    model: str
    chip: str
    group: str
    version: str | None
    secure_version: int
    slot: str | None
    last_status: str | None
    last_seen: str | None
    active: bool


class GroupOut(BaseModel):
    """A device group."""

    name: str
    devices: int


class FleetRow(BaseModel):
    """How many devices run one version."""

    model: str
    version: str | None
    secure_version: int
    devices: int


class ReleaseOut(BaseModel):
    """A release from the TUF targets metadata."""

    id: int
    target_path: str
    model: str
    chip: str
    image_format: str
    version: str
    secure_version: int
    length: int
    sha256: str
    sbom: dict[str, Any]


class RolloutCreate(_In):
    """Start a staged rollout. Target: the release's model, narrowed by group, device list and/or version."""

    release: Id32 | Annotated[str, Field(pattern=_TARGET_PATH)]
    name: PrintableText | None = Field(default=None, max_length=128)
    group: str | None = Field(default=None, pattern=_NAME)
    devices: list[Annotated[str, Field(pattern=_ID)]] | None = Field(default=None, max_length=100_000)
    version: ReportedVersion | None = None
    phases: list[Annotated[str, Field(pattern=_PHASE)]] = Field(
        default_factory=lambda: ["10%", "100%"], min_length=1, max_length=20
    )
    success_threshold: int = Field(default=90, ge=1, le=100)
    error_threshold: int = Field(default=10, ge=1, le=100)
    require_approval: bool = False


class PhaseOut(BaseModel):
    """One phase: its 1-based number, its spec and its devices counted by state."""

    phase: int
    spec: str
    counts: dict[str, int]


class ReasonCount(BaseModel):
    """How many devices of a rollout ended in ``state`` for ``reason``."""

    state: str
    reason: str
    devices: int


class RolloutOut(BaseModel):
    """A rollout and its per-phase counts."""

    id: int
    name: str
    release: str
    version: str
    secure_version: int
    target: dict[str, Any]
    state: str
    state_reason: str | None
    current_phase: int = Field(description="1-based number of the phase in progress")
    success_threshold: int
    error_threshold: int
    phases: list[PhaseOut]
    reasons: list[ReasonCount] = Field(description="why devices failed or were skipped, grouped, most frequent first")
    created: str
    updated: str
    trust: dict[str, Any] = Field(
        default_factory=dict,
        description="device trust: require_approval, deferred (reason -> units), outside_window (group -> units), "
        "windows, campaign",
    )


class ControlResult(RolloutOut):
    """The rollout after pause/resume/cancel."""


class Assignment(BaseModel):
    """The release a device should install."""

    rollout: int
    target_path: str
    version: str
    secure_version: int
    length: int
    sha256: str
    download: str


class PollOut(BaseModel):
    """Answer to a poll."""

    device: str
    assignment: Assignment | None
    poll_interval: int
    metadata: str | None = Field(default=None, description="TUF metadata base URL when served by a static host")


class ReportIn(_In):
    """A device status report."""

    status: str = Field(pattern=f"^({'|'.join(REPORT_STATUSES)})$")
    reason: str | None = Field(default=None, pattern=_REASON)
    detail: PrintableText | None = Field(default=None, max_length=2048)
    rollout: Id32 | None = None
    version: ReportedVersion | None = None
    secure_version: int | None = Field(default=None, ge=0, le=2**31 - 1)
    slot: SlotName | None = None
    claims: str | None = Field(
        default=None,
        max_length=16384,
        description="JWS of the report's fields and the unit's state, signed with the unit's certified key "
        "(required from certificate units)",
    )


class TrailEntryIn(_In):
    """One sealed entry of a unit's own audit log."""

    seq: int = Field(ge=0, le=2**53)
    record: str = Field(max_length=16384)
    tag: str = Field(pattern=r"^[0-9a-f]{64}$")


class TrailUpload(_In):
    """A batch of a unit's audit trail and its signed checkpoint claims (first, count, head, log_size)."""

    entries: list[TrailEntryIn] = Field(max_length=256)
    checkpoint: str = Field(max_length=16384)


class TrailStored(BaseModel):
    """How much of the unit's trail the server holds after the upload."""

    device: str
    size: int
    added: int
    head: str


class ReportStored(BaseModel):
    """Acknowledgement of a report."""

    device: str
    status: str
    accepted: bool


class ReportOut(BaseModel):
    """A stored report."""

    id: int
    device: str
    rollout: int | None
    status: str
    reason: str | None
    detail: str | None
    version: str | None
    secure_version: int | None
    slot: str | None
    created: str


class TokenCreate(_In):
    """Create a management token, valid for ``expires_in`` (``10m``, ``12h``, ``90d``; default: until revoked)."""

    name: str = Field(pattern=_NAME)
    role: str = Field(pattern=r"^(admin|operator|read-only)$")
    expires_in: str | None = Field(default=None, pattern=DURATION_PATTERN)


class TokenOut(BaseModel):
    """A management token as listed (never its secret)."""

    name: str
    role: str
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None
    active: bool


class CredentialRotate(_In):
    """Rotate a device credential; the old one keeps working for ``grace`` (``0``: refused at once)."""

    grace: str = Field(default="0", pattern=DURATION_PATTERN)


class DeviceReprovision(_In):
    """Register a decommissioned device id again."""

    model: str = Field(pattern=_NAME)
    chip: str = Field(default="", pattern=_CHIP)
    group: str = Field(default="default", pattern=_NAME)


class TokenCreated(BaseModel):
    """A new token (shown once)."""

    name: str
    role: str
    token: str
