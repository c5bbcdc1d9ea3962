"""OSV ``affected[]`` evaluation for a version string (pure), following the OSV schema's evaluation rules.

A version is affected when it is listed in ``versions`` or lies inside a ``SEMVER``/``ECOSYSTEM`` range: events
are walked in version order — ``introduced`` (``0`` = everything) turns affected on, ``fixed`` turns it off at
and after the fix, ``last_affected`` turns it off after, and a ``limit`` caps the range. Versions compare with
:mod:`medfw.vuln.version` (right for C libraries). ``GIT`` ranges need a commit graph and are not evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medfw.vuln.version import compare_versions, parse_version

__all__ = ["affected_by", "in_range"]


def _sort_key(event: Mapping[str, str]) -> tuple[int, Any]:
    value = next(iter(event.values()))
    if value == "0":
        return (0, ())
    try:
        return (1, parse_version(value))
    except ValueError:
        return (2, value)


def in_range(version: str, events: Sequence[Mapping[str, str]]) -> str | None:
    """Return the bound text when ``version`` is inside the range, else None."""
    try:
        parse_version(version)
    except ValueError:
        return None
    limits = [e["limit"] for e in events if "limit" in e and e["limit"] != "*"]
    try:
        if limits and all(compare_versions(version, lim) >= 0 for lim in limits):
            return None
        affected = False
        lo = hi = ""
        for ev in sorted((e for e in events if "limit" not in e), key=_sort_key):
            kind, value = next(iter(ev.items()))
            if kind == "introduced" and (value == "0" or compare_versions(version, value) >= 0):
                affected, lo, hi = True, value, ""
            elif (kind == "fixed" and compare_versions(version, value) >= 0) or (
                kind == "last_affected" and compare_versions(version, value) > 0
            ):
                affected = False
            elif affected and not hi and kind in ("fixed", "last_affected"):
                hi = f" < {value}" if kind == "fixed" else f" <= {value}"
    except ValueError:
        return None
    if not affected:
        return None
    return f"{'' if lo == '0' else lo + ' <= '}v{hi}"


def affected_by(entry: Mapping[str, Any], version: str) -> str | None:
    """Return why ``version`` is affected by one OSV ``affected[]`` entry (bound text), or None."""
    for v in entry.get("versions", ()):
        try:
            if compare_versions(v, version) == 0:
                return f"listed version {v}"
        except ValueError:
            if v == version:
                return f"listed version {v}"
    for r in entry.get("ranges", ()):
        if r.get("type") not in ("SEMVER", "ECOSYSTEM"):
            continue
        bound = in_range(version, r.get("events", ()))
        if bound is not None:
            return f"{r['type']} {bound}"
    return None
