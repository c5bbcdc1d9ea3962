"""The pure rollout rules: phases, eligibility, advance/pause decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import UsageError
from medfw.server.rollout import Decision, PhaseCounts, decide, ineligibility, parse_phases, phase_sizes


def test_parse_phases() -> None:
    assert parse_phases(["10%", " 5 ", "100%"]) == ["10%", "5", "100%"]
    for bad in ([], ["0"], ["0%"], ["101%"], ["1.5"], ["-1"], ["%"], ["10%%"], ["1"] * 21):
        with pytest.raises(UsageError):
            parse_phases(bad)


def test_phase_sizes() -> None:
    assert phase_sizes(["10%", "100%"], 50) == [5, 45]
    assert phase_sizes(["5", "100%"], 50) == [5, 45]
    assert phase_sizes(["1%", "50%", "100%"], 10) == [1, 5, 4]
    assert phase_sizes(["10", "10"], 3) == [3, 0]
    assert phase_sizes(["50%"], 7) == [7]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(1, 100).map(lambda p: f"{p}%"), st.integers(1, 1000).map(str)), min_size=1, max_size=6
    ),
    st.integers(0, 5000),
)
def test_phase_sizes_cover_every_device_once(specs: list[str], total: int) -> None:
    sizes = phase_sizes(specs, total)
    assert len(sizes) == len(specs)
    assert sum(sizes) == total and all(s >= 0 for s in sizes)


def test_ineligibility() -> None:
    kw = {"device_model": "pump", "device_secure_version": 2}
    assert ineligibility(**kw, release_model="pump", release_secure_version=2) is None
    assert ineligibility(**kw, release_model="pump", release_secure_version=3) is None
    assert ineligibility(**kw, release_model="pump", release_secure_version=1) == "secure_version_lower"
    assert ineligibility(**kw, release_model="vent", release_secure_version=9) == "model_mismatch"


def test_decide() -> None:
    t = {"success_threshold": 80, "error_threshold": 20}
    assert decide(PhaseCounts(total=10, active=10), **t, last_phase=False) is Decision.WAIT
    assert decide(PhaseCounts(total=10, confirmed=8, active=2), **t, last_phase=False) is Decision.ADVANCE
    assert decide(PhaseCounts(total=10, confirmed=8, active=2), **t, last_phase=True) is Decision.WAIT
    assert decide(PhaseCounts(total=10, confirmed=9, failed=1), **t, last_phase=True) is Decision.FINISH
    assert decide(PhaseCounts(total=10, confirmed=8, failed=2), **t, last_phase=True) is Decision.PAUSE
    # skipped and cancelled devices do not count
    assert decide(PhaseCounts(total=10, skipped=9, confirmed=1), **t, last_phase=True) is Decision.FINISH
    assert decide(PhaseCounts(total=3, skipped=3), **t, last_phase=False) is Decision.ADVANCE
    assert decide(PhaseCounts(total=5, skipped=4, failed=1), **t, last_phase=False) is Decision.PAUSE
