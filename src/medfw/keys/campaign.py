"""The rules of a fleet key-rotation campaign, per unit (pure: no I/O).

A campaign rolls out a release signed with both the old and the new Secure Boot key. On each unit, once that
release is *confirmed*, the new key's digest is burned into a free eFuse digest slot (only where the chip has one)
and then the old slot is revoked — the conservative rule of :mod:`medfw.keys.rotation`: never before the new image
confirmed, never when no other usable slot would remain. A unit whose new image never confirms keeps the old key.

The server derives each unit's progress from its assignment and the key slots the unit reported in *signed* claims;
the unit executes the step the server hands it (:func:`unit_step`), re-checking the same rules itself.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfw.errors import PolicyViolationError

__all__ = [
    "CampaignRefusedError",
    "UnitProgress",
    "UnitState",
    "check_start",
    "progress",
    "remaining_after_revoke",
    "unit_step",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class UnitState(enum.StrEnum):
    """Where one unit stands in a campaign."""

    WAITING = "waiting"
    UPDATING = "updating"
    CONFIRMED = "confirmed"  # the dual-signed release runs, confirmed; new key not burned yet
    KEY_ADDED = "key_added"  # the new key digest is burned; the old slot is still to revoke
    ROTATED = "rotated"  # new key usable, old slot revoked
    KEPT_OLD_KEY = "kept_old_key"  # the release never confirmed (reverted/rejected/cancelled): old key kept
    BLOCKED = "blocked"  # cannot rotate (no free slot, new key revoked, rotation refused by the unit)


@dataclass(frozen=True)
class UnitProgress:
    """A unit's state and why."""

    state: UnitState
    reason: str | None = None


class CampaignRefusedError(PolicyViolationError):
    """A campaign that must not start (the reason names the rule)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, field="campaign")
        self.reason = reason


def _slots(key_slots: Sequence[Mapping[str, Any]] | None) -> list[tuple[int, str | None, bool]]:
    out = []
    for s in key_slots or ():
        try:
            out.append((int(s["slot"]), s.get("digest"), bool(s.get("revoked"))))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _has_usable(slots: list[tuple[int, str | None, bool]], digest: str) -> bool:
    return any(d == digest and not r for _i, d, r in slots)


def remaining_after_revoke(key_slots: Sequence[Mapping[str, Any]] | None, old_slot: int) -> list[int]:
    """The usable digest slots a unit keeps when ``old_slot`` is revoked."""
    return [i for i, d, r in _slots(key_slots) if d and not r and i != old_slot]


def progress(
    *,
    assignment_state: str | None,
    key_slots: Sequence[Mapping[str, Any]] | None,
    old_slot: int,
    new_digest: str,
    failure: str | None = None,
) -> UnitProgress:
    """A unit's progress from its assignment state and its last signed key slots."""
    slots = _slots(key_slots)
    old_revoked = any(i == old_slot and r for i, _d, r in slots)
    new_usable = _has_usable(slots, new_digest)
    if new_usable and old_revoked:
        return UnitProgress(UnitState.ROTATED)
    if any(d == new_digest and r for _i, d, r in slots):
        return UnitProgress(UnitState.BLOCKED, "new_key_revoked")
    if failure:
        return UnitProgress(UnitState.BLOCKED, failure)
    if assignment_state in ("reverted", "rejected", "cancelled", "skipped"):
        return UnitProgress(UnitState.KEPT_OLD_KEY, assignment_state)
    if assignment_state == "confirmed":
        return UnitProgress(UnitState.KEY_ADDED if new_usable else UnitState.CONFIRMED)
    if assignment_state in (None, "waiting", "pending"):
        return UnitProgress(UnitState.WAITING)
    return UnitProgress(UnitState.UPDATING, assignment_state)


def check_start(*, old_slot: int, new_digest: str, units: Mapping[str, Sequence[Mapping[str, Any]] | None]) -> None:
    """Refuse a campaign that cannot be safe: a malformed new digest, an old slot out of range, a new key that a
    unit already revoked, or an old slot that holds the new key.

    Raises:
        CampaignRefusedError: with reason ``bad_digest``, ``bad_slot``, ``new_key_revoked`` or ``old_slot_is_new_key``.
    """
    if not _HEX64.match(new_digest):
        raise CampaignRefusedError("the new key digest must be 64 lowercase hex digits", reason="bad_digest")
    if not 0 <= old_slot <= 2:
        raise CampaignRefusedError(f"old slot {old_slot} is not a digest slot (0..2)", reason="bad_slot")
    for device_id, key_slots in units.items():
        for i, d, r in _slots(key_slots):
            if d == new_digest and r:
                raise CampaignRefusedError(
                    f"unit {device_id} has already revoked the new key (slot {i}): rotating to it would brick",
                    reason="new_key_revoked",
                )
            if d == new_digest and i == old_slot:
                raise CampaignRefusedError(
                    f"unit {device_id} holds the new key in the old slot {old_slot}", reason="old_slot_is_new_key"
                )


def unit_step(
    *, key_slots: Sequence[Mapping[str, Any]] | None, old_slot: int, old_digest: str | None, new_digest: str
) -> str:
    """What the unit does next: ``burn`` the new digest, ``revoke`` the old slot, or ``done``.

    Raises:
        CampaignRefusedError: ``old_slot_mismatch`` (the old slot holds another key than the campaign's),
            ``would_revoke_all`` (no other usable slot would remain), ``new_key_revoked``.
    """
    slots = _slots(key_slots)
    if any(d == new_digest and r for _i, d, r in slots):
        raise CampaignRefusedError("the new key is revoked on this unit", reason="new_key_revoked")
    old = next(((d, r) for i, d, r in slots if i == old_slot), None)
    if old is not None and old[0] and old_digest and old[0] != old_digest:
        raise CampaignRefusedError(
            f"slot {old_slot} holds another key than the campaign's old key", reason="old_slot_mismatch"
        )
    if not _has_usable(slots, new_digest):
        return "burn"
    if old is not None and old[1]:
        return "done"
    if not remaining_after_revoke(key_slots, old_slot):
        raise CampaignRefusedError("revoking the old slot would leave no usable key", reason="would_revoke_all")
    return "revoke"
