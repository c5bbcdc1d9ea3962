"""NVD configuration evaluation against a set of component identities (pure).

A CVE's ``configurations`` list holds alternatives (any one true makes the CVE apply). Each configuration
combines its ``nodes`` with ``operator`` (``OR`` when absent, ``AND`` for "app running on platform") and may be
``negate``d; each node combines its ``cpeMatch`` criteria (and, in the legacy 1.1 shape, ``children``) the same way.
A criterion matches a target when the CPE names match (NISTIR 7696) and, for a ``*`` version, the target version
lies inside the ``versionStart*``/``versionEnd*`` bounds.

Only criteria with ``vulnerable: true`` in a configuration that evaluates true produce hits; ``vulnerable:
false`` criteria (the platform a flaw needs) only decide whether the configuration holds, and a negated node's
matches are never hits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfw.vuln.cpe import ANY, NA, Cpe, name_matches, parse_cpe
from medfw.vuln.version import compare_versions

__all__ = ["Hit", "Target", "bounds_text", "criterion_keys", "evaluate", "version_in_bounds"]

_BOUNDS = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding", "versionEndExcluding")


@dataclass(frozen=True)
class Target:
    """One identity of one component, as a CPE name with the component's version filled in.

    Attributes:
        ref: the component's bom-ref.
        cpe: the identity (vendor/product possibly replaced by an alias).
        identity: what the component declared (its CPE or purl) and the alias used, for the match reason.
    """

    ref: str
    cpe: Cpe
    identity: str


@dataclass(frozen=True)
class Hit:
    """A vulnerable criterion matched by a target inside a configuration that holds."""

    ref: str
    criterion: str
    bound: str
    identity: str


_SEEDED: dict[str, Cpe] = {}
_MAX_SEEDED = 262144


def seed_parsed(cpes: Mapping[str, Sequence[str]] | None) -> None:
    """Accept criteria parsed at import (criteria → the 11 attribute values), so a scan does not parse them again."""
    if len(_SEEDED) > _MAX_SEEDED:
        _SEEDED.clear()
    for text, values in (cpes or {}).items():
        if text not in _SEEDED:
            _SEEDED[text] = Cpe(*values)


def clear_seeded() -> None:
    """Forget the criteria seeded by :func:`seed_parsed` (a scan does after each batch of records)."""
    _SEEDED.clear()
    _PLAIN.clear()


def _parse(criteria: str) -> Cpe | None:
    seeded = _SEEDED.get(criteria)
    if seeded is not None:
        return seeded
    return _parse_text(criteria)


@functools.lru_cache(maxsize=65536)
def _parse_text(criteria: str) -> Cpe | None:
    try:
        return parse_cpe(criteria)
    except ValueError:
        return None


def bounds_text(match: Mapping[str, Any]) -> str:
    """Render a criterion's version bounds (``7.32.0 <= v < 8.9.1``; ``all versions``; ``v = 1.0.1f``)."""
    lo = (
        f"{match['versionStartIncluding']} <= "
        if "versionStartIncluding" in match
        else f"{match['versionStartExcluding']} < "
        if "versionStartExcluding" in match
        else ""
    )
    hi = (
        f" <= {match['versionEndIncluding']}"
        if "versionEndIncluding" in match
        else f" < {match['versionEndExcluding']}"
        if "versionEndExcluding" in match
        else ""
    )
    if lo or hi:
        return f"{lo}v{hi}"
    cpe = _parse(str(match.get("criteria", "")))
    if cpe is None or cpe.version == ANY:
        return "all versions"
    return f"v = {Cpe.plain(cpe.version)}"


def version_in_bounds(version: str, match: Mapping[str, Any]) -> bool:
    """Return whether ``version`` lies inside the criterion's bounds (False if any side does not parse)."""
    try:
        if "versionStartIncluding" in match and compare_versions(version, match["versionStartIncluding"]) < 0:
            return False
        if "versionStartExcluding" in match and compare_versions(version, match["versionStartExcluding"]) <= 0:
            return False
        if "versionEndIncluding" in match and compare_versions(version, match["versionEndIncluding"]) > 0:
            return False
        if "versionEndExcluding" in match and compare_versions(version, match["versionEndExcluding"]) >= 0:
            return False
    except ValueError:
        return False
    return True


_PLAIN: dict[str, bool] = {}


def _plain_head(text: str, crit: Cpe) -> bool:
    """Whether only part/vendor/product constrain the name (no wildcards, every later attribute ANY)."""
    plain = _PLAIN.get(text)
    if plain is None:
        vals = crit.values()
        plain = all(v == ANY for v in vals[4:]) and not any(c in v for v in vals[:3] for c in "*?\\")
        if len(_PLAIN) > _MAX_SEEDED:
            _PLAIN.clear()
        _PLAIN[text] = plain
    return plain


def _criterion_matches(match: Mapping[str, Any], target: Target) -> bool:
    text = str(match.get("criteria", ""))
    crit = _parse(text)
    if crit is None:
        return False
    if crit.version != ANY:
        return name_matches(crit, target.cpe)
    if _plain_head(text, crit):
        # targets are looked up by vendor:product, so only the part is left to compare
        if crit.part not in (ANY, target.cpe.part) or crit.key != target.cpe.key:
            return False
    elif not name_matches(crit, target.cpe, skip_version=True):
        return False
    if not any(b in match for b in _BOUNDS):
        return True
    tv = target.cpe.version
    if tv in (ANY, NA):
        return False
    return version_in_bounds(Cpe.plain(tv), match)


def criterion_keys(configurations: Sequence[Mapping[str, Any]], *, vulnerable_only: bool = True) -> set[str]:
    """Return the ``vendor:product`` keys named by the criteria (by default only ``vulnerable: true`` ones)."""
    keys: set[str] = set()

    def walk(node: Mapping[str, Any]) -> None:
        for m in node.get("cpeMatch", ()):
            if vulnerable_only and not m.get("vulnerable", True):
                continue
            cpe = _parse(str(m.get("criteria", "")))
            if cpe is not None:
                keys.add(cpe.key)
        for child in node.get("children", ()):
            walk(child)

    for conf in configurations:
        for node in conf.get("nodes", ()):
            walk(node)
    return keys


def _eval_node(node: Mapping[str, Any], targets: Mapping[str, Sequence[Target]]) -> tuple[bool, list[Hit]]:
    results: list[bool] = []
    hits: list[Hit] = []
    for m in node.get("cpeMatch", ()):
        cpe = _parse(str(m.get("criteria", "")))
        matched = False
        if cpe is not None:
            for t in targets.get(cpe.key, ()):
                if _criterion_matches(m, t):
                    matched = True
                    if m.get("vulnerable", True):
                        hits.append(Hit(t.ref, str(m["criteria"]), bounds_text(m), t.identity))
        results.append(matched)
    for child in node.get("children", ()):
        ok, child_hits = _eval_node(child, targets)
        results.append(ok)
        if ok:
            hits.extend(child_hits)
    value = all(results) if str(node.get("operator", "OR")).upper() == "AND" else any(results)
    if node.get("negate", False):
        return (not value, [])
    return (value, hits if value else [])


def evaluate(configurations: Sequence[Mapping[str, Any]], targets: Mapping[str, Sequence[Target]]) -> list[Hit]:
    """Evaluate ``configurations`` against targets grouped by ``vendor:product`` key; return the hits.

    Targets only need to be present under their own key; criteria are looked up by their ``vendor:product``.
    """
    hits: list[Hit] = []
    for conf in configurations:
        node_results = [_eval_node(n, targets) for n in conf.get("nodes", ())]
        if not node_results:
            continue
        values = [v for v, _ in node_results]
        value = all(values) if str(conf.get("operator", "OR")).upper() == "AND" else any(values)
        if conf.get("negate", False):
            continue  # a negated configuration can hold but names nothing vulnerable
        if value:
            for ok, node_hits in node_results:
                if ok:
                    hits.extend(node_hits)
    return hits
