"""Frozen read models of the fleet-wide views (fleet counts, device search, rollout progress, release documents).

The service (:class:`~medfw.server.fleet_views.FleetViewOps`) returns these to the console pages and to the
management API alike; :mod:`medfw.server.store_views` holds the SQL that fills them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "AssignmentRow",
    "DeviceDetail",
    "DeviceFilter",
    "DevicePage",
    "DeviceState",
    "DocumentKind",
    "FleetSummary",
    "ReleaseDocument",
    "RolloutHeader",
    "RolloutProgress",
    "RolloutSummary",
]


class DeviceState(StrEnum):
    """What a device search can filter on: its last reported status, or never seen, or decommissioned."""

    DOWNLOADING = "downloading"
    INSTALLED = "installed"
    BOOTED = "booted"
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    REJECTED = "rejected"
    NEVER = "never"
    DECOMMISSIONED = "decommissioned"


class DocumentKind(StrEnum):
    """The documents a release can carry besides its image: evidence for reviewers, VEX and CSAF for customers."""

    EVIDENCE = "evidence"
    VEX_CYCLONEDX = "vex-cyclonedx"
    VEX_OPENVEX = "vex-openvex"
    CSAF = "csaf"
    CSAF_SIGNATURE = "csaf-signature"


@dataclass(frozen=True)
class FleetSummary:
    """Active devices per model × version (with how many were not seen lately), per group, and failed ones."""

    rows: tuple[tuple[str, str, int, int], ...]  # model, version, devices, not seen within the window
    groups: tuple[tuple[str, int], ...]
    total: int
    stale: int
    failed: int
    stale_hours: int

    def in_use(self) -> dict[tuple[str, str], int]:
        """Devices per (model, reported version): the exposure of a release."""
        return {(m, v): n for m, v, n, _stale in self.rows if v}


@dataclass(frozen=True)
class DeviceFilter:
    """Device search: an id substring and exact filters; ``seen_hours`` keeps devices not seen for that long."""

    q: str = ""
    model: str = ""
    group: str = ""
    version: str = ""
    state: DeviceState | None = None
    seen_hours: int | None = None

    def query_string(self) -> dict[str, str]:
        """The non-empty fields, for links that keep the filter."""
        names = {"seen_hours": "seen"}
        return {names.get(k, k): str(v) for k, v in self.__dict__.items() if v not in ("", None)}


@dataclass(frozen=True)
class DeviceDetail:
    """One device as its page shows it (with when it was registered, and whether its credential is live)."""

    id: str
    model: str
    chip: str
    group: str
    version: str | None
    secure_version: int
    slot: str | None
    last_status: str | None
    last_seen: datetime | None
    created: datetime | None
    active: bool


@dataclass(frozen=True)
class DevicePage:
    """One page of devices and the total that match."""

    rows: tuple[DeviceDetail, ...]
    total: int
    page: int
    pages: int


@dataclass(frozen=True)
class AssignmentRow:
    """A device's place in one rollout."""

    rollout: int
    rollout_name: str
    rollout_state: str
    release: str
    version: str
    phase: int  # 1-based
    state: str
    reason: str | None
    updated: datetime | None
    current: bool


@dataclass(frozen=True)
class RolloutHeader:
    """A rollout's settings and its release (without counts)."""

    id: int
    name: str
    state: str
    target: Mapping[str, Any]
    phases: tuple[str, ...]  # each phase's device ids or share, as stored
    success_threshold: int
    error_threshold: int
    created: datetime | None
    release_id: int
    release: str
    version: str
    secure_version: int


@dataclass(frozen=True)
class RolloutProgress:
    """A rollout's state and its devices counted per phase and state, with failure reasons grouped."""

    id: int
    state: str
    state_reason: str | None
    current_phase: int  # 1-based
    phases: tuple[dict[str, int], ...]
    reasons: tuple[tuple[str, str, int], ...]  # state, reason, devices (most frequent first)

    @property
    def totals(self) -> dict[str, int]:
        """Devices per state over all phases."""
        c: Counter[str] = Counter()
        for p in self.phases:
            c.update(p)
        return dict(c)


@dataclass(frozen=True)
class RolloutSummary:
    """One line of the rollout list: the rollout, its release and its devices counted by state."""

    id: int
    name: str
    release: str
    version: str
    state: str
    state_reason: str | None
    current_phase: int  # 1-based
    phase_count: int
    counts: dict[str, int] = field(default_factory=dict)
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class ReleaseDocument:
    """A document attached to a release (its bytes are fetched separately)."""

    release_id: int
    kind: DocumentKind
    filename: str
    media_type: str
    sha256: str
    size: int
    attached: datetime | None
    attached_by: str
    summary: Mapping[str, Any] = field(default_factory=dict)
