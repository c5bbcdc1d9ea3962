"""The per-unit rules of a key-rotation campaign."""

from __future__ import annotations

import pytest

from medfw.keys.campaign import CampaignRefusedError, UnitState, check_start, progress, unit_step

OLD, NEW, OTHER = "aa" * 32, "bb" * 32, "cc" * 32


def _slots(*slots: tuple[str | None, bool]) -> list[dict[str, object]]:
    return [{"slot": i, "digest": d, "revoked": r} for i, (d, r) in enumerate(slots)]


def test_unit_steps_burn_then_revoke_then_done() -> None:
    assert (
        unit_step(key_slots=_slots((OLD, False), (None, False)), old_slot=0, old_digest=OLD, new_digest=NEW) == "burn"
    )
    assert (
        unit_step(key_slots=_slots((OLD, False), (NEW, False)), old_slot=0, old_digest=OLD, new_digest=NEW) == "revoke"
    )
    assert unit_step(key_slots=_slots((OLD, True), (NEW, False)), old_slot=0, old_digest=OLD, new_digest=NEW) == "done"


def test_unit_step_refusals() -> None:
    with pytest.raises(CampaignRefusedError) as e:
        unit_step(key_slots=_slots((OLD, False), (NEW, True)), old_slot=0, old_digest=OLD, new_digest=NEW)
    assert e.value.reason == "new_key_revoked"
    with pytest.raises(CampaignRefusedError) as e:
        unit_step(key_slots=_slots((OTHER, False), (NEW, False)), old_slot=0, old_digest=OLD, new_digest=NEW)
    assert e.value.reason == "old_slot_mismatch"


def test_progress_from_assignment_and_signed_key_slots() -> None:
    kw = {"old_slot": 0, "new_digest": NEW}
    assert progress(assignment_state="pending", key_slots=None, **kw).state is UnitState.WAITING
    assert progress(assignment_state="downloading", key_slots=None, **kw).state is UnitState.UPDATING
    assert progress(assignment_state="confirmed", key_slots=_slots((OLD, False)), **kw).state is UnitState.CONFIRMED
    added = progress(assignment_state="confirmed", key_slots=_slots((OLD, False), (NEW, False)), **kw)
    assert added.state is UnitState.KEY_ADDED
    assert (
        progress(assignment_state="confirmed", key_slots=_slots((OLD, True), (NEW, False)), **kw).state
        is UnitState.ROTATED
    )
    kept = progress(assignment_state="reverted", key_slots=_slots((OLD, False)), **kw)
    assert (kept.state, kept.reason) == (UnitState.KEPT_OLD_KEY, "reverted")
    blocked = progress(assignment_state="confirmed", key_slots=_slots((OLD, False)), failure="no_free_slot", **kw)
    assert (blocked.state, blocked.reason) == (UnitState.BLOCKED, "no_free_slot")


def test_check_start() -> None:
    check_start(old_slot=0, new_digest=NEW, units={"a": _slots((OLD, False)), "b": None})
    for units, reason in (
        ({"a": _slots((OLD, False), (NEW, True))}, "new_key_revoked"),
        ({"a": _slots((NEW, False))}, "old_slot_is_new_key"),
    ):
        with pytest.raises(CampaignRefusedError) as e:
            check_start(old_slot=0, new_digest=NEW, units=units)
        assert e.value.reason == reason
    with pytest.raises(CampaignRefusedError):
        check_start(old_slot=0, new_digest="XYZ", units={})
    with pytest.raises(CampaignRefusedError):
        check_start(old_slot=5, new_digest=NEW, units={})
