"""The C-version comparator, with the ordering pitfalls generic libraries get wrong."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from medfw.vuln.version import compare_versions, is_version, parse_version, version_key


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.1.1w", "1.1.1k", 1),  # OpenSSL letter releases
        ("1.1.1w", "1.1.1", 1),
        ("1.1.1w", "1.1.2", -1),
        ("1.0.2u", "1.0.2zj", -1),
        ("1.0.2zj", "1.0.2zl", -1),
        ("1.1.1z", "1.1.1za", -1),
        ("1.1.0l", "1.1.1", -1),
        ("1.2.12.1", "1.2.12", 1),  # four-part zlib version
        ("1.2.12.1", "1.2.13", -1),
        ("1.10", "1.9", 1),  # numeric, not bytewise
        ("10.0", "9.0", 1),
        ("v5.6.0", "5.6.0", 0),  # v prefix
        ("v5.6.0-stable", "5.6.0", 0),  # wolfSSL tag
        ("R0.16", "0.16", 0),  # FatFs style
        ("curl-7_88_1", "7.88.1", 0),  # curl tag
        ("7.7", "7.7.0", 0),  # curl: 7.7 equals 7.7.0
        ("3", "3.0.0", 0),
        ("3.0.0-alpha1", "3.0.0", -1),  # pre-releases
        ("3.0.0-alpha1", "3.0.0-beta1", -1),
        ("3.0.0-beta2", "3.0.0-rc1", -1),
        ("1.0rc1", "1.0", -1),
        ("0.9.7-beta3", "0.9.7", -1),
        ("0.9.6-cvs", "0.9.6", -1),
        ("1.1.1-pre9", "1.1.0l", 1),
        ("9e", "9", 1),  # libjpeg letter versions
        ("9e", "9f", -1),
        ("2023.10", "2025.10", -1),  # date versions
        ("1.0p1", "1.0", 1),
    ],
)
def test_ordering(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


@pytest.mark.parametrize("text", ["*", "-", "", "3.x", "2.x.1", "abc", "1.0 beta", "a" * 200])
def test_not_versions(text: str) -> None:
    assert not is_version(text)
    with pytest.raises(ValueError):
        parse_version(text)


def test_openssl_branch_sorts_in_release_order() -> None:
    releases = ["1.0.2", "1.0.2a", "1.0.2z", "1.0.2za", "1.0.2zl", "1.1.0", "1.1.1", "1.1.1w", "3.0.0", "3.0.13"]
    assert sorted(releases, key=parse_version) == releases


_part = st.one_of(
    st.integers(min_value=0, max_value=30).map(str),
    st.sampled_from(["a", "b", "k", "w", "z", "za", "rc1", "alpha2", "beta", "p1"]),
)
_version = (
    st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=4)
    .flatmap(
        lambda nums: st.tuples(
            st.just(".".join(map(str, nums))), st.sampled_from(["", "a", "w", "za", "-rc1", "-beta2"])
        )
    )
    .map("".join)
)


@settings(max_examples=200, deadline=None)
@given(_version, _version, _version)
def test_total_order(a: str, b: str, c: str) -> None:
    ab, bc, ac = compare_versions(a, b), compare_versions(b, c), compare_versions(a, c)
    assert compare_versions(b, a) == -ab
    if ab <= 0 and bc <= 0:
        assert ac <= 0
    assert (parse_version(a) == parse_version(b)) == (ab == 0)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parse_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_version(text)


_mixed = st.lists(
    st.one_of(st.integers(min_value=0, max_value=70000).map(str), st.sampled_from(["0", "0", "rc", "a", "p", "beta"])),
    min_size=1,
    max_size=6,
).flatmap(
    lambda parts: st.lists(st.sampled_from([".", "-", ""]), min_size=len(parts), max_size=len(parts)).map(
        lambda seps: "".join(p + s for p, s in zip(parts, seps, strict=True)).rstrip(".-")
    )
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_version, _mixed), st.one_of(_version, _mixed))
def test_version_key_sorts_as_compare_versions(a: str, b: str) -> None:
    assume(is_version(a) and is_version(b))
    ka, kb = version_key(a), version_key(b)
    assert (ka > kb) - (ka < kb) == compare_versions(a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("1", "1.0.1"), ("1", "1.0.rc1"), ("1.0.rc1", "1.0.0.rc1"), ("1.1.1", "1.1.1a"), ("255", "256"), ("9", "9e")],
)
def test_version_key_zero_runs_and_letters(a: str, b: str) -> None:
    assert (version_key(a) > version_key(b)) - (version_key(a) < version_key(b)) == compare_versions(a, b)
    assert version_key("7.7") == version_key("7.7.0")
