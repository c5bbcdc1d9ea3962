"""What is still open in a release: which decisions close a finding, and the one verdict of the bundle.

A finding is **closed** only by

* ``not_affected`` with a justification,
* ``resolved`` / ``resolved_with_pedigree`` (fixed) or ``false_positive``,
* ``exploitable`` with at least one response *and* a due date (``due YYYY-MM-DD`` in the decision's detail:
  CycloneDX analysis has no due-date field, so the date travels in the detail text and is shown with it).

Everything else — no decision, ``in_triage``, ``exploitable`` without a response or a date — is **open**.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfw.vuln.vocabulary import State

__all__ = ["Closure", "closure", "open_findings", "order_findings", "summarize_open"]

_DUE = re.compile(r"\bdue[:\s]\s*(\d{4}-\d{2}-\d{2})\b", re.IGNORECASE)
_FIXED = frozenset({State.RESOLVED, State.RESOLVED_WITH_PEDIGREE, State.FALSE_POSITIVE})
SEVERITY_ORDER = ("critical", "high", "medium", "low", "none", "unscored", "unknown")


@dataclass(frozen=True)
class Closure:
    """Whether a finding is closed, and in words why (or why not)."""

    closed: bool
    reason: str
    due: str | None = None


def _due(detail: str) -> str | None:
    m = _DUE.search(detail or "")
    if not m:
        return None
    try:
        dt.date.fromisoformat(m.group(1))
    except ValueError:
        return None
    return m.group(1)


def closure(finding: Mapping[str, Any]) -> Closure:
    """Classify one finding row (``id``, ``state``, ``justification``, ``response``, ``detail``)."""
    state = str(finding.get("state") or "")
    if not state:
        return Closure(False, "no decision")
    if state == State.NOT_AFFECTED:
        if finding.get("justification"):
            return Closure(True, f"not affected ({finding['justification']})")
        return Closure(False, "not_affected without a justification")
    if state in _FIXED:
        return Closure(True, state.replace("_", " "))
    if state == State.EXPLOITABLE:
        due = _due(str(finding.get("detail") or ""))
        if not finding.get("response"):
            return Closure(False, "exploitable without a response")
        if due is None:
            return Closure(False, "exploitable without a due date")
        return Closure(True, f"exploitable, {finding['response']} due {due}", due)
    return Closure(False, state.replace("_", " "))


def order_findings(findings: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """KEV-listed first, then by severity (critical first), then by id."""
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return sorted(
        findings,
        key=lambda f: (
            not f.get("kev"),
            rank.get(str(f.get("severity") or "unknown").lower(), len(rank)),
            str(f.get("id")),
            str(f.get("component")),
        ),
    )


def open_findings(findings: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The open findings, KEV first."""
    return [f for f in order_findings(findings) if not closure(f).closed]


def summarize_open(findings: Sequence[Mapping[str, Any]], *, shown: int = 5) -> str:
    """``"a, b, c and N more"`` of the open findings' ids (KEV first), or ``""`` when none is open."""
    ids = [f"{f.get('id')} ({f.get('component')})" for f in open_findings(findings)]
    if not ids:
        return ""
    head = ", ".join(ids[:shown])
    return head + (f" and {len(ids) - shown} more (all listed under Open items)" if len(ids) > shown else "")
