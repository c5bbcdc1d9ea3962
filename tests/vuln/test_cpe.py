"""CPE 2.3 parsing and NISTIR 7696 name matching."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.vuln.cpe import ANY, NA, Cpe, Relation, compare_attribute, name_matches, parse_cpe


def test_parse_formatted_string() -> None:
    c = parse_cpe("cpe:2.3:a:haxx:libcurl:7.61.0:*:*:*:*:*:*:*")
    assert (c.part, c.vendor, c.product, c.version, c.update) == ("a", "haxx", "libcurl", "7.61.0", ANY)
    assert c.key == "haxx:libcurl"
    assert str(c) == "cpe:2.3:a:haxx:libcurl:7.61.0:*:*:*:*:*:*:*"


def test_escaped_characters() -> None:
    c = parse_cpe(r"cpe:2.3:a:foo\:bar:baz\!qux:1\.0:*:*:*:*:*:*:*")
    assert Cpe.plain(c.vendor) == "foo:bar"
    assert Cpe.plain(c.product) == "baz!qux"
    assert c.version == "1.0"  # quoting of '.' is canonicalised away
    assert name_matches(parse_cpe("cpe:2.3:a:foo\\:bar:baz\\!qux:1.0:*:*:*:*:*:*:*"), c)


def test_escaped_wildcard_is_literal() -> None:
    literal = parse_cpe(r"cpe:2.3:a:x:y:1\*:*:*:*:*:*:*:*")
    assert not name_matches(literal, parse_cpe("cpe:2.3:a:x:y:12:*:*:*:*:*:*:*"))
    wildcard = parse_cpe("cpe:2.3:a:x:y:1*:*:*:*:*:*:*:*")
    assert name_matches(wildcard, parse_cpe("cpe:2.3:a:x:y:12:*:*:*:*:*:*:*"))


def test_cpe22_uri() -> None:
    assert str(parse_cpe("cpe:/a:openssl:openssl:1.0.1f")) == "cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*"


@pytest.mark.parametrize(
    "bad",
    [
        "cpe:2.3:a:x:y",  # too few parts
        "cpe:2.3:q:x:y:1:*:*:*:*:*:*:*",  # bad part
        "cpe:2.3:a:x:y:1*2:*:*:*:*:*:*:*",  # wildcard inside
        "cpe:2.3:a::y:1:*:*:*:*:*:*:*",  # empty value
        "cpe:2.3:a:x:y:1:*:*:*:*:*:*:*\\",  # lone backslash
        "foo",
    ],
)
def test_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cpe(bad)


@pytest.mark.parametrize(
    ("source", "target", "relation"),
    [
        (ANY, ANY, Relation.EQUAL),
        (ANY, "1.0", Relation.SUPERSET),
        ("1.0", ANY, Relation.SUBSET),
        (NA, NA, Relation.EQUAL),
        (NA, "1.0", Relation.DISJOINT),
        ("1.0", NA, Relation.DISJOINT),
        (ANY, NA, Relation.SUPERSET),
        ("1.?", "1.0", Relation.SUPERSET),
        ("1.?", "1.10", Relation.DISJOINT),
        ("*tls", "mbed_tls", Relation.SUPERSET),
        ("1.0", "1.*", Relation.UNDEFINED),
        ("foo", "bar", Relation.DISJOINT),
    ],
)
def test_attribute_relations(source: str, target: str, relation: Relation) -> None:
    assert compare_attribute(source, target) is relation


def test_version_attribute_uses_version_equality() -> None:
    assert name_matches(parse_cpe("cpe:2.3:a:x:y:7.7:*:*:*:*:*:*:*"), parse_cpe("cpe:2.3:a:x:y:7.7.0:*:*:*:*:*:*:*"))
    assert not name_matches(
        parse_cpe("cpe:2.3:a:x:y:1.1.1:*:*:*:*:*:*:*"), parse_cpe("cpe:2.3:a:x:y:1.1.1w:*:*:*:*:*:*:*")
    )


def test_update_attribute_must_match() -> None:
    beta = parse_cpe("cpe:2.3:a:openssl:openssl:1.0.1:beta1:*:*:*:*:*:*")
    final = parse_cpe("cpe:2.3:a:openssl:openssl:1.0.1:*:*:*:*:*:*:*")
    assert not name_matches(beta, final)
    assert name_matches(final, parse_cpe("cpe:2.3:a:openssl:openssl:1.0.1:beta1:*:*:*:*:*:*"))


def test_platform_part_differs() -> None:
    assert not name_matches(
        parse_cpe("cpe:2.3:h:espressif:esp32:-:*:*:*:*:*:*:*"), parse_cpe("cpe:2.3:a:espressif:esp32:1:*:*:*:*:*:*:*")
    )


_value = st.text(alphabet="abcxyz019._-", min_size=1, max_size=8).filter(lambda v: v not in {"-"})


@settings(max_examples=100, deadline=None)
@given(st.lists(_value, min_size=11, max_size=11))
def test_roundtrip(values: list[str]) -> None:
    values[0] = "a"
    c = Cpe(*[parse_cpe("cpe:2.3:a:" + ":".join(["v"] * 10)).values()[0], *values[1:]])
    again = parse_cpe(str(c))
    assert name_matches(again, c) and name_matches(c, again)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_parse_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_cpe("cpe:2.3:" + text)
