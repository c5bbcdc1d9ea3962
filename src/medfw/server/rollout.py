"""The pure rollout rules: phase sizes, eligibility of a device for a release, and when a phase advances or pauses.

Nothing here touches the database; :mod:`medfw.server.service` applies these decisions.

Phases are given as a list of specs, each either a device count (``"5"``) or a percentage of all targeted devices
(``"10%"``). Devices (ordered by id) fill the phases in order, the first phase being the canary; the last phase
always takes every remaining device. A phase *advances* when the confirmed share reaches the success threshold,
and the rollout *pauses* automatically when the failed share (reverted or rejected) reaches the error threshold.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medfw.errors import UsageError
from medfw.update.agent_model import ReportStatus

__all__ = [
    "ACTIVE_STATES",
    "ERROR_STATES",
    "FINAL_STATES",
    "Decision",
    "PhaseCounts",
    "RolloutState",
    "decide",
    "ineligibility",
    "parse_phases",
    "phase_sizes",
]

_PHASE_RE = re.compile(r"^(?:(\d{1,3})%|(\d{1,7}))$")

#: assignment states in which the device is offered the release
ACTIVE_STATES = frozenset({"pending", "deferred", "downloading", "installed", "booted"})
#: assignment states that count against the error threshold
ERROR_STATES = frozenset({"reverted", "rejected"})
#: assignment states after which nothing more happens
FINAL_STATES = frozenset({"confirmed", "reverted", "rejected", "skipped", "cancelled"})
#: device report statuses, in the order an update goes through them (the agent's protocol owns the set)
REPORT_STATUSES = tuple(s.value for s in ReportStatus)
#: a confirmation that cannot count: unsigned (shared-secret unit on a server that does not allow them)
UNVERIFIED = "unverified"
#: report statuses about the unit's keys, not the update: they never move an assignment
KEY_STATUSES = frozenset({ReportStatus.KEY_ROTATED.value, ReportStatus.KEY_ROTATION_FAILED.value})


class RolloutState(enum.StrEnum):
    """Lifecycle of a rollout."""

    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"
    #: finished without updating any device (every one skipped or already on the release)
    NOTHING_TO_DO = "nothing_to_do"


class Decision(enum.StrEnum):
    """What to do with a rollout after a phase's counts changed."""

    WAIT = "wait"
    ADVANCE = "advance"
    FINISH = "finish"
    PAUSE = "pause"


def parse_phases(specs: Sequence[str]) -> list[str]:
    """Validate phase specs (``"N"`` or ``"P%"`` with 1 ≤ P ≤ 100, N ≥ 1); return them normalised.

    Raises:
        UsageError: empty list, more than 20 phases, or a malformed spec.
    """
    if not specs or len(specs) > 20:
        raise UsageError("a rollout needs 1 to 20 phases", field="phases")
    out: list[str] = []
    for spec in specs:
        m = _PHASE_RE.match(spec.strip())
        if m is None:
            raise UsageError(f"phase {spec!r} is neither a count nor a percentage", field="phases")
        value = int(m.group(1) or m.group(2))
        if value < 1 or (m.group(1) is not None and value > 100):
            raise UsageError(f"phase {spec!r} is out of range", field="phases")
        out.append(spec.strip())
    return out


def phase_sizes(specs: Sequence[str], total: int) -> list[int]:
    """Split ``total`` devices over the phases; the last phase takes the remainder (possibly 0 elsewhere)."""
    sizes: list[int] = []
    left = total
    for i, spec in enumerate(specs):
        if i == len(specs) - 1:
            sizes.append(left)
            break
        n = math.ceil(total * int(spec[:-1]) / 100) if spec.endswith("%") else int(spec)
        n = min(n, left)
        sizes.append(n)
        left -= n
    return sizes


def ineligibility(
    *, device_model: str, device_secure_version: int, release_model: str, release_secure_version: int
) -> str | None:
    """Return why a device must not get a release (``model_mismatch``, ``secure_version_lower``), or ``None``."""
    if device_model != release_model:
        return "model_mismatch"
    if release_secure_version < device_secure_version:
        return "secure_version_lower"
    return None


@dataclass(frozen=True)
class PhaseCounts:
    """How the devices of one phase stand."""

    total: int = 0
    waiting: int = 0
    active: int = 0
    confirmed: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0

    @property
    def considered(self) -> int:
        """Devices that count for thresholds (skipped and cancelled ones do not)."""
        return self.total - self.skipped - self.cancelled


def decide(counts: PhaseCounts, *, success_threshold: int, error_threshold: int, last_phase: bool) -> Decision:
    """Decide on a running rollout from its current phase's counts.

    ``counts`` cover every device of the phases started so far. The error threshold wins over the success
    threshold; phases with no considered devices advance; the last phase finishes once the success threshold is
    met and no device is still updating.
    """
    n = counts.considered
    if n > 0 and counts.failed * 100 >= error_threshold * n:
        return Decision.PAUSE
    if n == 0 or counts.confirmed * 100 >= success_threshold * n:
        if not last_phase:
            return Decision.ADVANCE
        return Decision.FINISH if counts.active == 0 and counts.waiting == 0 else Decision.WAIT
    return Decision.WAIT
