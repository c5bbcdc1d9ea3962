"""Triage: severity with the source that gave it, and the priority order of findings (pure).

Severity precedence (one rule, the first source that scores the vulnerability wins):

1. NVD primary CVSS (NIST's own analysis);
2. NVD secondary CVSS (scores NVD carries from the CNA or others);
3. the CVE 5 CNA container's CVSS (the vendor or CNA that assigned the CVE);
4. the CVE 5 ADP containers' CVSS (CISA-ADP vulnrichment);
5. a vendor's qualitative rating (OpenSSL Low/Moderate/High/Critical in its CNA record, curl's severity table);
6. OSV CVSS vectors.

Inside a CVSS tier the vector version order is 3.1, 4.0, 3.0, 2.0. Scores are recomputed from the vector with the
``cvss`` package rather than trusted from the feed; an unparsable vector does not count. A vulnerability no
imported source scores is ``unscored`` (never a bare "unknown"), with the reason.

Priority: unhandled findings before handled ones; then known exploitation (CISA KEV, SSVC ``Exploitation:
active``, or a decision ``exploitable``), then proof-of-concept or EPSS ≥ 0.1, then the rest; inside each tier
network-reachable (``AV:N``) first, then higher CVSS score, then higher EPSS.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from medfw.vuln.vocabulary import State

__all__ = [
    "EPSS_LIKELY",
    "SEVERITY_PRECEDENCE",
    "CvssChoice",
    "choose_cvss",
    "choose_severity",
    "prioritise",
    "score_vector",
]

#: the tiers of the severity precedence, in order (see the module docstring)
SEVERITY_PRECEDENCE = ("nvd-primary", "nvd-secondary", "cve5-cna", "cve5-adp", "vendor-rating", "osv")
_VERSIONS = ("3.1", "4.0", "3.0", "2.0")

EPSS_LIKELY = 0.1
_ORDER = (("3.1", True), ("4.0", True), ("3.1", False), ("4.0", False), ("3.0", True), ("3.0", False), ("2.0", None))


@dataclasses.dataclass(frozen=True)
class CvssChoice:
    """The vector used for a vulnerability and what it yields."""

    vector: str | None
    score: float | None
    severity: str
    network: bool
    source: str = ""
    reason: str = ""


@functools.lru_cache(maxsize=65536)
def score_vector(version: str, vector: str) -> CvssChoice:
    """Score one vector; an unparsable vector yields severity ``unknown``."""
    try:
        if version.startswith("4"):
            c4 = CVSS4(vector)
            return CvssChoice(vector, float(c4.base_score), str(c4.severity).lower(), "AV:N" in vector)
        if version.startswith("3"):
            c3 = CVSS3(vector)
            return CvssChoice(vector, float(c3.scores()[0]), str(c3.severities()[0]).lower(), "AV:N" in vector)
        c2 = CVSS2(vector)
        s = float(c2.scores()[0])
        sev = "high" if s >= 7.0 else "medium" if s >= 4.0 else "low"
        return CvssChoice(vector, s, sev, "AV:N" in vector)
    except (CVSSError, ValueError, KeyError, IndexError):
        return CvssChoice(vector, None, "unknown", "AV:N" in vector)


def choose_cvss(entries: Sequence[Mapping[str, Any]]) -> CvssChoice:
    """Choose and score the vector used for severity (see the module docstring)."""
    for version, primary in _ORDER:
        for e in entries:
            if e.get("version") != version or not e.get("vector"):
                continue
            if primary is not None and bool(e.get("primary")) != primary:
                continue
            choice = score_vector(version, str(e["vector"]))
            if choice.score is not None:
                return choice
    return CvssChoice(None, None, "unknown", False)


def _cvss_tiers(records: Sequence[Any]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    tiers: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        entries = r.data.get("cvss")
        if not entries:
            continue
        if r.source == "nvd":
            for e in entries:
                tiers.setdefault("nvd-primary" if e.get("primary") else "nvd-secondary", []).append(e)
        elif r.source in ("cve5-cna", "cve5-adp", "osv"):
            tiers.setdefault(r.source, []).extend(entries)
    return [(t, tiers[t]) for t in SEVERITY_PRECEDENCE if t in tiers]


def _label(tier: str, entry: Mapping[str, Any]) -> str:
    who = str(entry.get("source") or "")
    names = {
        "nvd-primary": "NVD primary",
        "nvd-secondary": f"NVD secondary ({who})",
        "cve5-cna": f"CNA ({who})",
        "cve5-adp": who or "ADP",
        "osv": "OSV",
    }
    return f"{names[tier]} CVSS {entry.get('version')}"


def _scored(version: str, e: Mapping[str, Any]) -> CvssChoice:
    """An entry's score: pre-computed at import (``medfw.vuln.prepared``) or computed now."""
    if "score" in e:
        score = e["score"]
        return CvssChoice(
            str(e["vector"]), None if score is None else float(score), str(e["severity"]), bool(e["network"])
        )
    return score_vector(version, str(e["vector"]))


def choose_severity(records: Sequence[Any]) -> CvssChoice:
    """Severity, score and the source that gave them, by :data:`SEVERITY_PRECEDENCE`.

    ``records`` are stored records (``source`` and ``data``) of one vulnerability, any sources.
    """
    tiers = _cvss_tiers(records)
    for tier, entries in tiers:
        if tier == "osv":
            continue
        for version in _VERSIONS:
            for e in entries:
                if e.get("version") == version and e.get("vector"):
                    c = _scored(version, e)
                    if c.score is not None:
                        return CvssChoice(c.vector, c.score, c.severity, c.network, _label(tier, e))
    for r in records:
        for rating in r.data.get("ratings") or []:
            sev = str(rating.get("severity", ""))
            if sev in ("low", "medium", "high", "critical"):
                label = f"vendor rating {rating.get('rating')} ({rating.get('source') or r.source})"
                return CvssChoice(None, None, sev, False, label)
    for tier, entries in tiers:
        if tier != "osv":
            continue
        for version in _VERSIONS:
            for e in entries:
                if e.get("version") == version and e.get("vector"):
                    c = _scored(version, e)
                    if c.score is not None:
                        return CvssChoice(c.vector, c.score, c.severity, c.network, _label(tier, e))
    return _unscored(frozenset(r.source for r in records))


@functools.lru_cache(maxsize=256)
def _unscored(sources: frozenset[str]) -> CvssChoice:
    """The choice for a vulnerability no record scores, by the sources of its records (a few sets in a scan)."""
    held = sorted(sources)
    reason = f"no imported source scores it (records: {', '.join(held)})" if held else "no record of it is stored"
    return CvssChoice(None, None, "unscored", False, "", reason)


def _tier(f: Any) -> int:
    state = f.decision.state if f.decision is not None else None
    exploitation = str(f.ssvc.get("exploitation", ""))
    if f.kev or exploitation == "active" or state == State.EXPLOITABLE:
        return 0
    if exploitation == "poc" or (f.epss is not None and f.epss >= EPSS_LIKELY):
        return 1
    return 2


def prioritise(findings: Iterable[Any], *, in_place: bool = False) -> list[Any]:
    """Return findings sorted by priority with ``priority`` set (1 = first); they must be dataclasses.

    With ``in_place``, findings the caller has just made (and shares with no one) get their priority set on
    themselves instead of on copies (a scan's ten thousand findings)."""
    ordered = sorted(
        findings,
        key=lambda f: (
            f.handled,
            _tier(f),
            not f.network,
            -(f.score or 0.0),
            -(f.epss or 0.0),
            f.vuln_id,
            f.component_ref,
        ),
    )
    if in_place and all(hasattr(f, "__dict__") for f in ordered):
        for i, f in enumerate(ordered, start=1):
            f.__dict__["priority"] = i
        return ordered
    return [_with_priority(f, i) for i, f in enumerate(ordered, start=1)]


def _with_priority(f: Any, priority: int) -> Any:
    """A copy of the (frozen) dataclass ``f`` with ``priority`` set; a plain field copy, as ``replace`` without
    re-running ``__init__`` (ten times cheaper on a scan's thousands of findings)."""
    if not hasattr(f, "__dict__"):
        return dataclasses.replace(f, priority=priority)
    new = object.__new__(type(f))
    new.__dict__.update(f.__dict__)
    new.__dict__["priority"] = priority
    return new
