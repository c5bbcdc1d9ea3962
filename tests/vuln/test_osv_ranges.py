"""OSV range evaluation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.vuln.osv_ranges import affected_by, in_range
from medfw.vuln.version import compare_versions


def test_introduced_fixed() -> None:
    ev = [{"introduced": "8.14.0"}, {"fixed": "8.18.0"}]
    assert in_range("8.14.0", ev) == "8.14.0 <= v < 8.18.0"
    assert in_range("8.17.9", ev) is not None
    assert in_range("8.18.0", ev) is None
    assert in_range("8.13.0", ev) is None


def test_zero_and_last_affected_with_letters() -> None:
    ev = [{"introduced": "0"}, {"last_affected": "1.1.1w"}]
    assert in_range("1.1.1k", ev) == "v <= 1.1.1w"
    assert in_range("1.1.1w", ev) is not None
    assert in_range("1.1.1za", ev) is None


def test_several_ranges_in_one_event_list() -> None:
    ev = [{"introduced": "2.0"}, {"fixed": "2.3"}, {"introduced": "1.0"}, {"fixed": "1.5"}]
    assert in_range("1.2", ev) == "1.0 <= v < 1.5"
    assert in_range("1.7", ev) is None
    assert in_range("2.1", ev) == "2.0 <= v < 2.3"


def test_limit() -> None:
    ev = [{"introduced": "1.0"}, {"limit": "1.4"}]
    assert in_range("1.3", ev) is not None
    assert in_range("1.4", ev) is None


def test_versions_list_and_git_ignored() -> None:
    entry = {
        "versions": ["v1.4.8", "v1.5.0"],
        "ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}],
    }
    assert affected_by(entry, "1.5.0") == "listed version v1.5.0"
    assert affected_by(entry, "1.4.9") is None


_ver = st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9)).map(lambda t: ".".join(map(str, t)))


@settings(max_examples=150, deadline=None)
@given(_ver, _ver, _ver)
def test_matches_simple_interval(v: str, a: str, b: str) -> None:
    lo, hi = sorted([a, b], key=lambda x: tuple(map(int, x.split("."))))
    inside = compare_versions(lo, v) <= 0 < compare_versions(hi, v)
    assert (in_range(v, [{"introduced": lo}, {"fixed": hi}]) is not None) == inside
