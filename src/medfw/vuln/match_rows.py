"""What matching needs of a record, as flat rows prepared at import, and the rule a scan applies to them (pure).

A record's configurations are turned into rows of the ``vuln_match`` table, looked up by ``key``
(``cpe:<vendor>:<product>`` or ``purl:<base>``):

* ``CRITERION`` rows — when every configuration of the record is a plain disjunction (no ``negate``, no
  ``children``, no ``AND`` over two operands, no wildcard in a vendor, product, version or later attribute),
  whether the record applies to a component is decided criterion by criterion: one row per ``vulnerable``
  criterion (``vulnerable: false`` ones cannot change the outcome of a disjunction), in document order, with its
  version bounds already normalised by :func:`medfw.vuln.version.version_key` and its bound text rendered;
* ``TREE`` rows — otherwise (platform ``AND`` configurations, negations, wildcards) and for OSV records: one row
  per key; the scan evaluates the record's stored configurations (:mod:`medfw.vuln.configuration`) or OSV
  entries (:mod:`medfw.vuln.osv_ranges`);
* ``DEAD`` rows — a criterion whose bound is not a version can match nothing; the row only tells the coverage
  check that a record names the key.

:func:`row_matches` is the scan side: the same decision :func:`medfw.vuln.configuration.evaluate` makes for such a
criterion (NISTIR 7696 name match, bounds by the one version order), on pre-computed keys instead of strings.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from medfw.vuln.configuration import bounds_text, criterion_keys
from medfw.vuln.cpe import ANY, NA, Cpe, Relation, compare_attribute, has_wildcard, parse_cpe
from medfw.vuln.version import version_key

__all__ = [
    "MATCH_COLUMNS",
    "RowKind",
    "RowTuple",
    "TargetKey",
    "match_rows",
    "match_tuples",
    "row_matches",
    "target_key",
]


class RowKind(enum.IntEnum):
    """How a ``vuln_match`` row is used."""

    CRITERION = 0
    TREE = 1
    DEAD = 2


_LO = (("versionStartIncluding", True), ("versionStartExcluding", False))
_HI = (("versionEndIncluding", True), ("versionEndExcluding", False))
_OK = (Relation.SUPERSET, Relation.EQUAL)


def _wild(value: str) -> bool:
    return value not in (ANY, NA) and has_wildcard(value)


def _row_cpe(text: str) -> Cpe | None:
    """The parsed criterion when a row can decide it, None when only the tree evaluation can."""
    try:
        cpe = parse_cpe(text)
    except ValueError:
        return None
    if cpe.vendor in (ANY, NA) or cpe.product in (ANY, NA):
        return None
    bare = (text + ":").replace(":*:", "::").replace(":*:", "::")  # ANY values removed
    if ("?" in text or "*" in bare) and any(_wild(v) for v in cpe.values()[1:]):  # look closer
        return None
    return cpe


def _flat_criteria(configurations: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]] | None:
    """The vulnerable criteria of a plain disjunction in document order, or None when the record is not one."""
    out: list[Mapping[str, Any]] = []
    for conf in configurations:
        nodes = conf.get("nodes") or ()
        if conf.get("negate") or (str(conf.get("operator", "OR")).upper() == "AND" and len(nodes) > 1):
            return None
        for node in nodes:
            matches = node.get("cpeMatch") or ()
            and_node = str(node.get("operator", "OR")).upper() == "AND" and len(matches) > 1
            if node.get("negate") or node.get("children") or and_node:
                return None
            for m in matches:
                if ("versionStartIncluding" in m and "versionStartExcluding" in m) or (
                    "versionEndIncluding" in m and "versionEndExcluding" in m
                ):
                    return None  # two bounds on one side: left to the tree evaluation
                if m.get("vulnerable", True):
                    out.append(m)
    return out


def _bound(match: Mapping[str, Any], names: tuple[tuple[str, bool], ...]) -> tuple[bytes | None, bool]:
    for name, inclusive in names:
        if name in match:
            return version_key(str(match[name])), inclusive
    return None, False


#: the ``vuln_match`` columns in the order of a row tuple
MATCH_COLUMNS = (
    "key",
    "rid",
    "vuln_id",
    "source",
    "ord",
    "kind",
    "part",
    "criterion",
    "bound",
    "exact",
    "exact_key",
    "lo",
    "lo_incl",
    "hi",
    "hi_incl",
    "attrs",
)
#: a row of one record before its rid, vuln id and source are known: ``MATCH_COLUMNS`` without those three
RowTuple = tuple[Any, ...]
_CRITERION, _TREE, _DEAD = int(RowKind.CRITERION), int(RowKind.TREE), int(RowKind.DEAD)
_ANY_LATER = (ANY,) * 7  # update … other all ANY


def _criterion_row(key: str, ordinal: int, m: Mapping[str, Any], cpe: Cpe) -> RowTuple:
    text = str(m["criteria"])
    later = cpe.values()[4:]
    attrs = None if later == _ANY_LATER else orjson.dumps(list(later)).decode()
    bound = bounds_text(m)
    if cpe.version != ANY:  # a fixed version: bounds do not apply (as in the tree evaluation)
        exact_key = None
        if cpe.version != NA:
            with contextlib.suppress(ValueError):
                exact_key = version_key(Cpe.plain(cpe.version))
        return (
            key,
            ordinal,
            _CRITERION,
            cpe.part,
            text,
            bound,
            cpe.version,
            exact_key,
            None,
            False,
            None,
            False,
            attrs,
        )
    try:
        lo, lo_incl = _bound(m, _LO)
        hi, hi_incl = _bound(m, _HI)
    except ValueError:
        return (key, ordinal, _DEAD, cpe.part, text, bound, None, None, None, False, None, False, attrs)
    return (key, ordinal, _CRITERION, cpe.part, text, bound, None, None, lo, lo_incl, hi, hi_incl, attrs)


def _tree_rows(keys: set[str]) -> list[RowTuple]:
    return [(k, 0, _TREE, None, None, None, None, None, None, False, None, False, None) for k in sorted(keys)]


def match_tuples(data: Mapping[str, Any]) -> tuple[list[RowTuple], bool]:
    """Return the ``vuln_match`` rows of one normalized record as tuples in :data:`MATCH_COLUMNS` order without
    ``rid``, ``vuln_id`` and ``source`` (``row[:1] + (rid, vuln_id, source) + row[1:]`` is the stored row), and
    whether they are TREE rows.

    A record with OSV entries is evaluated as a whole (TREE rows). A rejected record has no rows: it never matches.
    """
    if data.get("rejected"):
        return [], False
    osv = data.get("osv")
    purls = {f"purl:{a['purl']}" for a in osv if a.get("purl")} if osv else set()
    configs = data.get("configurations") or []
    flat = None if purls else _flat_criteria(configs)
    parsed = [] if flat is None else [_row_cpe(str(m.get("criteria", ""))) for m in flat]
    if flat is None or any(c is None for c in parsed):
        keys = {f"cpe:{k}" for k in criterion_keys(configs)} | purls
        return _tree_rows(keys), bool(keys)
    rows = [_criterion_row(f"cpe:{c.key}", i, m, c) for i, (m, c) in enumerate(zip(flat, parsed, strict=True)) if c]
    return rows, False


def match_rows(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """:func:`match_tuples` as dicts by column name (without rid/source/vuln_id)."""
    names = MATCH_COLUMNS[:1] + MATCH_COLUMNS[4:]
    rows, tree = match_tuples(data)
    return [dict(zip(names, r, strict=True)) for r in rows], tree


@dataclass(frozen=True)
class TargetKey:
    """What :func:`row_matches` needs of a target: part, version (escaped), its sort key, later attributes."""

    part: str
    version: str
    key: bytes | None
    later: tuple[str, ...]


def target_key(cpe: Cpe) -> TargetKey:
    """Pre-compute a target's comparison data once per scan."""
    key = None
    if cpe.version not in (ANY, NA) and not _wild(cpe.version):
        try:
            key = version_key(Cpe.plain(cpe.version))
        except ValueError:
            key = None
    return TargetKey(cpe.part, cpe.version, key, cpe.values()[4:])


def _exact_matches(exact: str, exact_key: bytes | None, t: TargetKey) -> bool:
    # NISTIR 7696 on the version attribute, as compare_attribute decides it for a wildcard-free source
    tv = t.version
    if tv == ANY or _wild(tv):
        return False
    if NA in (exact, tv) or exact == tv:
        return exact == tv
    return exact_key is not None and exact_key == t.key


def row_matches(row: Sequence[Any], t: TargetKey) -> bool:
    """Whether a CRITERION row matches a target of the same key.

    ``row`` is (part, exact, exact_key, lo, lo_incl, hi, hi_incl, attrs) as stored.
    """
    part, exact, exact_key, lo, lo_incl, hi, hi_incl, attrs = row
    if part not in (ANY, t.part):
        return False
    if attrs is not None:
        later = orjson.loads(attrs)
        if any(compare_attribute(s, v) not in _OK for s, v in zip(later, t.later, strict=True)):
            return False
    if exact is not None:
        return _exact_matches(exact, exact_key, t)
    if lo is None and hi is None:
        return True
    v = t.key
    if v is None:
        return False
    if lo is not None and (v < lo or (v == lo and not lo_incl)):
        return False
    return hi is None or v < hi or (v == hi and bool(hi_incl))
