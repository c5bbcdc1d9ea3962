"""CPE 2.3 names: parsing of formatted strings and NISTIR 7696 name matching (pure).

A CPE 2.3 formatted string has 13 colon-separated parts (``cpe:2.3:`` + 11 attributes). ``*`` is the logical
value ANY and ``-`` is NA. Inside a value a backslash escapes the next character (``\\:``, ``\\.``); an
unescaped ``*`` (any run of characters) or ``?`` (one character) at the start or end of a value is a wildcard.
CPE 2.2 URIs (``cpe:/a:vendor:product:version``) are accepted too and converted.

Matching follows NISTIR 7696 §6: each attribute of the *source* (the feed's criterion) is compared with the
*target* (the component's name); the names match when every attribute relation is SUPERSET or EQUAL. The
version attribute is compared with :func:`medfw.vuln.version.compare_versions` when both sides are plain
versions, so ``7.7`` equals ``7.7.0``.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from medfw.vuln.version import compare_versions

__all__ = [
    "ANY",
    "ATTRIBUTES",
    "NA",
    "Cpe",
    "Relation",
    "compare_attribute",
    "has_wildcard",
    "name_matches",
    "parse_cpe",
]

ANY = "*"
NA = "-"
ATTRIBUTES = (
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
)
_MAX_LEN = 1024


class Relation(enum.Enum):
    """NISTIR 7696 attribute comparison results."""

    SUPERSET = "superset"
    SUBSET = "subset"
    EQUAL = "equal"
    DISJOINT = "disjoint"
    UNDEFINED = "undefined"


@dataclass(frozen=True)
class Cpe:
    """A parsed CPE name; each value is ``*`` (ANY), ``-`` (NA) or a lower-case value.

    Values keep their CPE 2.3 escapes (``\\.``) and unescaped wildcards, so wildcards and literal ``*``/``?``
    stay distinct. :meth:`plain` returns a value with escapes removed.
    """

    part: str
    vendor: str
    product: str
    version: str = ANY
    update: str = ANY
    edition: str = ANY
    language: str = ANY
    sw_edition: str = ANY
    target_sw: str = ANY
    target_hw: str = ANY
    other: str = ANY

    @functools.cached_property
    def _values(self) -> tuple[str, ...]:
        return (
            self.part,
            self.vendor,
            self.product,
            self.version,
            self.update,
            self.edition,
            self.language,
            self.sw_edition,
            self.target_sw,
            self.target_hw,
            self.other,
        )

    def values(self) -> tuple[str, ...]:
        """Return the 11 attribute values in CPE order."""
        return self._values

    @functools.cached_property
    def key(self) -> str:
        """The ``vendor:product`` lookup key (escapes removed, lower case)."""
        return f"{self.plain(self.vendor)}:{self.plain(self.product)}"

    @staticmethod
    def plain(value: str) -> str:
        """Return ``value`` with CPE escapes removed."""
        return re.sub(r"\\(.)", r"\1", value) if "\\" in value else value

    def with_version(self, version: str) -> Cpe:
        """Return a copy with the version attribute set to ``version`` (escaped as CPE 2.3 requires)."""
        return Cpe(*[_escape(version) if a == "version" else v for a, v in zip(ATTRIBUTES, self.values(), strict=True)])

    def with_key(self, vendor: str, product: str) -> Cpe:
        """Return a copy with another vendor and product (plain values, escaped here)."""
        vals = list(self.values())
        vals[1], vals[2] = _escape(vendor), _escape(product)
        return Cpe(*vals)

    def __str__(self) -> str:
        return "cpe:2.3:" + ":".join(self.values())


def _escape(value: str) -> str:
    value = value.lower()
    if value in {ANY, NA}:
        return value
    return re.sub(r"([^a-z0-9_.\-])", r"\\\1", value)


def _split_unescaped(text: str) -> list[str]:
    if "\\" not in text:  # the common case: nothing escaped
        return text.split(":")
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                raise ValueError("CPE ends with a lone backslash")
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == ":":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _check_value(value: str, attr: str) -> str:
    if value == "":
        raise ValueError(f"empty {attr} value")
    if value in {ANY, NA}:
        return value
    if "\\" not in value and "*" not in value and "?" not in value:  # nothing escaped, no wildcard
        return value.lower()
    # canonical formatted-string form: '.', '-', '_' and alphanumerics are never quoted
    value = re.sub(r"\\([A-Za-z0-9._\-])", r"\1", value)
    # unescaped wildcards may only sit at the start or the end
    body = re.sub(r"\\.", "x", value)
    inner = body.lstrip("*?").rstrip("*?")
    if "*" in inner or "?" in inner:
        raise ValueError(f"wildcard inside the {attr} value {value!r}")
    if "**" in body:
        raise ValueError(f"doubled '*' in the {attr} value {value!r}")
    return value.lower()


def _from_uri(text: str) -> Cpe:
    parts = text[5:].split(":")
    if not parts or len(parts[0]) != 1:
        raise ValueError("CPE 2.2 URI needs a part (a, o or h)")
    vals: list[str] = []
    for attr, raw in zip(ATTRIBUTES, parts, strict=False):
        v = unquote(raw)
        vals.append(ANY if v == "" else NA if v == "-" else _escape(v) if attr != "part" else v.lower())
    if len(parts) > 7:
        raise ValueError("CPE 2.2 URI has too many parts")
    while len(vals) < len(ATTRIBUTES):
        vals.append(ANY)
    return Cpe(*vals)


def parse_cpe(text: str) -> Cpe:
    """Parse a CPE 2.3 formatted string (or a CPE 2.2 URI).

    Raises:
        ValueError: the string is not a well-formed CPE name (the message says which part).
    """
    return _parse_cached(text)


@functools.lru_cache(maxsize=65536)
def _parse_cached(text: str) -> Cpe:
    if len(text) > _MAX_LEN:
        raise ValueError("CPE name too long")
    if text.startswith("cpe:/"):
        return _from_uri(text)
    if not text.startswith("cpe:2.3:"):
        raise ValueError(f"not a CPE 2.3 name: {text[:40]!r}")
    parts = _split_unescaped(text[8:])
    if len(parts) != len(ATTRIBUTES):
        raise ValueError(f"CPE 2.3 name has {len(parts)} attributes, expected {len(ATTRIBUTES)}")
    if parts[0] not in {"a", "o", "h", ANY}:
        raise ValueError(f"CPE part must be a, o or h, got {parts[0]!r}")
    return Cpe(*[_check_value(v, a) for a, v in zip(ATTRIBUTES, parts, strict=True)])


def has_wildcard(value: str) -> bool:
    """Whether ``value`` holds an unescaped ``*`` or ``?`` (a wildcard; ``*`` alone is ANY)."""
    if "*" not in value and "?" not in value:
        return False
    body = re.sub(r"\\.", "", value)
    return "*" in body or "?" in body


def _wildcard_regex(value: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            out.append(re.escape(value[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


def _equal_values(source: str, target: str, attr: str) -> bool:
    if source == target:
        return True
    if attr == "version":
        try:
            return compare_versions(Cpe.plain(source), Cpe.plain(target)) == 0
        except ValueError:
            return False
    return False


def compare_attribute(source: str, target: str, attr: str = "") -> Relation:
    """Compare one attribute value of a source and a target name (NISTIR 7696 table 6-2)."""
    if source == ANY and target == ANY:
        return Relation.EQUAL
    if source == ANY:
        return Relation.SUPERSET
    if target == ANY:
        return Relation.SUBSET
    if NA in (source, target):
        return Relation.EQUAL if source == target else Relation.DISJOINT
    if has_wildcard(target):
        return Relation.UNDEFINED
    if has_wildcard(source):
        return Relation.SUPERSET if _wildcard_regex(source).match(target) else Relation.DISJOINT
    return Relation.EQUAL if _equal_values(source, target, attr) else Relation.DISJOINT


def name_matches(source: Cpe, target: Cpe, *, skip_version: bool = False) -> bool:
    """Return whether ``source`` matches ``target`` (every attribute SUPERSET or EQUAL).

    With ``skip_version`` the version attribute is left out (the caller checks a version range instead).
    """
    for attr, s, t in zip(ATTRIBUTES, source.values(), target.values(), strict=True):
        if skip_version and attr == "version":
            continue
        if compare_attribute(s, t, attr) not in (Relation.SUPERSET, Relation.EQUAL):
            return False
    return True
