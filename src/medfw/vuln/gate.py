"""The CI gate of ``scan`` and ``rescan``: which findings (and coverage gaps) fail the job (``--fail-on``).

``--fail-on`` takes a comma-separated list of rules; a finding with a closing decision never fails:

* ``critical``, ``high``, ``medium``, ``low`` — an unhandled finding at or above that severity. An **unscored**
  finding (no imported source scores it) fails every severity rule: it may be at any severity, so it is never
  silently dropped;
* ``unscored`` — an unhandled finding no source scores;
* ``kev`` — an unhandled finding in CISA KEV;
* ``no-data`` — a component that no record of any imported source describes (coverage gap);
* ``new`` (rescan) — an open alert for a finding that is new since the previous scan; ``alert`` (rescan) — any
  open alert, the default of ``rescan``.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from medfw.errors import UsageError
from medfw.vuln.model import Finding

__all__ = ["SEVERITY_RANK", "FailOn", "failing_findings", "parse_fail_on"]

SEVERITY_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1, "none": 0, "unscored": 5}


class FailOn(StrEnum):
    """One ``--fail-on`` rule."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNSCORED = "unscored"
    KEV = "kev"
    NO_DATA = "no-data"
    NEW = "new"
    ALERT = "alert"


_SEVERITY_RULES = (FailOn.CRITICAL, FailOn.HIGH, FailOn.MEDIUM, FailOn.LOW)


def parse_fail_on(text: str | None) -> frozenset[FailOn]:
    """Parse ``kev,critical,no-data``.

    Raises:
        UsageError: an unknown rule.
    """
    if not text:
        return frozenset()
    out: set[FailOn] = set()
    for part in (p.strip() for p in text.split(",")):
        try:
            out.add(FailOn(part))
        except ValueError:
            names = ", ".join(r.value for r in FailOn)
            raise UsageError(f"unknown --fail-on rule {part!r} (one of {names})", field="--fail-on") from None
    return frozenset(out)


def finding_fails(f: Finding, rules: frozenset[FailOn]) -> bool:
    """Whether one finding fails the gate (see the module docstring)."""
    if f.handled:
        return False
    if FailOn.KEV in rules and f.kev:
        return True
    if FailOn.UNSCORED in rules and f.severity == "unscored":
        return True
    thresholds = [SEVERITY_RANK[r.value] for r in _SEVERITY_RULES if r in rules]
    return bool(thresholds) and SEVERITY_RANK.get(f.severity, 0) >= min(thresholds)


def failing_findings(findings: Iterable[Finding], rules: frozenset[FailOn]) -> list[Finding]:
    """The findings that fail the gate."""
    if not rules:
        return []
    return [f for f in findings if finding_fails(f, rules)]
