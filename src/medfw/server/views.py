"""What the fleet service returns: frozen dataclasses, never ORM rows or HTTP bodies.

The web layer serialises them through the response models of :mod:`medfw.server.schemas` (validated by
attribute), so the OpenAPI schema and these records stay one-to-one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AssignmentView",
    "DeviceCreated",
    "DeviceView",
    "FleetRow",
    "GroupView",
    "PhaseView",
    "PollResult",
    "ReasonView",
    "ReleaseView",
    "ReportAck",
    "ReportView",
    "RolloutView",
    "TokenCreated",
    "TokenView",
]


@dataclass(frozen=True)
class DeviceView:
    """A registered device and what it last reported."""

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


@dataclass(frozen=True)
class DeviceCreated:
    """A newly registered device and its credential (shown once)."""

    id: str
    credential: str


@dataclass(frozen=True)
class GroupView:
    """A device group and its size."""

    name: str
    devices: int


@dataclass(frozen=True)
class FleetRow:
    """How many devices run one (model, version, secure_version)."""

    model: str
    version: str | None
    secure_version: int
    devices: int


@dataclass(frozen=True)
class ReleaseView:
    """A release recorded from the TUF targets metadata."""

    id: int
    target_path: str
    model: str
    chip: str
    image_format: str
    version: str
    secure_version: int
    length: int
    sha256: str
    sbom: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReasonView:
    """How many devices of a rollout ended in ``state`` for ``reason``."""

    state: str
    reason: str
    devices: int


@dataclass(frozen=True)
class PhaseView:
    """One rollout phase: its 1-based number, its spec and its devices counted by state."""

    phase: int
    spec: str
    counts: Mapping[str, int]


@dataclass(frozen=True)
class RolloutView:
    """A rollout with its per-phase counts."""

    id: int
    name: str
    release: str
    version: str
    secure_version: int
    target: Mapping[str, Any]
    state: str
    state_reason: str | None
    current_phase: int  # 1-based
    success_threshold: int
    error_threshold: int
    phases: tuple[PhaseView, ...]
    reasons: tuple[ReasonView, ...]
    created: str
    updated: str
    trust: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportView:
    """A stored device report."""

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


@dataclass(frozen=True)
class ReportAck:
    """The acknowledgement of a stored report."""

    device: str
    status: str
    accepted: bool = True


@dataclass(frozen=True)
class TokenCreated:
    """A new management token (shown once)."""

    name: str
    role: str
    token: str


@dataclass(frozen=True)
class TokenView:
    """A management token as listed (never its secret)."""

    name: str
    role: str
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None
    active: bool


@dataclass(frozen=True)
class AssignmentView:
    """The release a device should install."""

    rollout: int
    target_path: str
    version: str
    secure_version: int
    length: int
    sha256: str
    download: str


@dataclass(frozen=True)
class PollResult:
    """The answer to a poll: the JSON body (device, assignment, poll_interval) and its ETag."""

    body: Mapping[str, Any]
    etag: str
