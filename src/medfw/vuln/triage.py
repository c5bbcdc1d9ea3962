"""Triage: severity from CVSS vectors, and the priority order of findings (pure).

Severity comes from one CVSS vector per vulnerability, chosen in this order: v3.1 from the primary scorer
(NVD, or the CNA), v4.0 primary, v3.1 from anyone (CISA-ADP), v4.0, v3.0, v2.0. Scores are recomputed from the
vector with the ``cvss`` package rather than trusted from the feed.

Priority: unhandled findings before handled ones; then known exploitation (CISA KEV, SSVC ``Exploitation:
active``, or a decision ``exploitable``), then proof-of-concept or EPSS ≥ 0.1, then the rest; inside each tier
network-reachable (``AV:N``) first, then higher CVSS score, then higher EPSS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

__all__ = ["EPSS_LIKELY", "CvssChoice", "choose_cvss", "prioritise", "score_vector"]

EPSS_LIKELY = 0.1
_ORDER = (("3.1", True), ("4.0", True), ("3.1", False), ("4.0", False), ("3.0", True), ("3.0", False), ("2.0", None))


@dataclasses.dataclass(frozen=True)
class CvssChoice:
    """The vector used for a vulnerability and what it yields."""

    vector: str | None
    score: float | None
    severity: str
    network: bool


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


def _tier(f: Any) -> int:
    state = f.decision.state if f.decision is not None else None
    exploitation = str(f.ssvc.get("exploitation", ""))
    if f.kev or exploitation == "active" or state == "exploitable":
        return 0
    if exploitation == "poc" or (f.epss is not None and f.epss >= EPSS_LIKELY):
        return 1
    return 2


def prioritise(findings: Iterable[Any]) -> list[Any]:
    """Return findings sorted by priority with ``priority`` set (1 = first); they must be dataclasses."""
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
    return [dataclasses.replace(f, priority=i) for i, f in enumerate(ordered, start=1)]
