"""The one VEX vocabulary: analysis states, justifications and responses, and their mappings between formats.

medfw records every decision in CycloneDX 1.6 terms (the richest of the three vocabularies). This module owns
those closed sets and the documented mappings to OpenVEX 0.2 and CSAF 2.0; every reader and writer (SBOM
manifests, the scanner, VEX and CSAF documents) goes through it.

State (CycloneDX ``analysis.state``) → OpenVEX ``status`` → CSAF ``product_status``:

==========================  =====================  =====================
CycloneDX                   OpenVEX 0.2            CSAF 2.0
==========================  =====================  =====================
not_affected                not_affected           known_not_affected
false_positive              not_affected           known_not_affected
exploitable                 affected               known_affected
resolved                    fixed                  fixed
resolved_with_pedigree      fixed                  fixed
in_triage                   under_investigation    under_investigation
==========================  =====================  =====================

Justification (CycloneDX → OpenVEX ``justification`` = CSAF ``flags[].label``, the five CISA labels):
``code_not_present`` → ``vulnerable_code_not_present``; ``code_not_reachable``, ``requires_configuration`` →
``vulnerable_code_not_in_execute_path``; ``requires_dependency`` → ``component_not_present``;
``requires_environment``, ``protected_at_perimeter`` → ``vulnerable_code_cannot_be_controlled_by_adversary``;
``protected_by_compiler``, ``protected_at_runtime``, ``protected_by_mitigating_control`` →
``inline_mitigations_already_exist``. The reverse direction takes the first (native) entry of each group.

Response (CycloneDX ``analysis.response``) → CSAF ``remediations[].category``: ``update`` → ``vendor_fix``,
``rollback`` → ``mitigation``, ``workaround_available`` → ``workaround``, ``will_not_fix`` → ``no_fix_planned``,
``can_not_fix`` → ``none_available``. OpenVEX carries responses only in ``action_statement`` prose.

**Lossless round trips.** Where a target vocabulary is coarser (``false_positive`` vs ``not_affected``, nine
justifications vs five, responses in OpenVEX), the writer adds one machine-readable annotation,
``medfw-analysis: {"author", "justification", "response", "state"}`` (canonical JSON), in a free-text field the
format reserves for notes — OpenVEX ``status_notes``, CSAF ``vulnerabilities[].notes`` (category ``other``) and
CycloneDX ``analysis`` carries all of it natively (author in the ``medfw:author`` property). A reader that finds
the annotation takes state, justification, responses and author from it, so CycloneDX → OpenVEX → CSAF →
CycloneDX gives back every field exactly; a reader of a foreign document without it uses the native fields
and the tables above.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "ALL_JUSTIFICATION_LABELS",
    "HANDLED_STATES",
    "Analysis",
    "CsafRemediation",
    "CsafStatus",
    "Justification",
    "OpenVexStatus",
    "Response",
    "State",
    "VexJustification",
    "annotation",
    "check_analysis",
    "csaf_remediations",
    "csaf_status",
    "normalize_vuln_id",
    "openvex_status",
    "parse_annotation",
    "parse_justification",
    "state_from_csaf",
    "state_from_openvex",
    "vex_justification",
]


class State(StrEnum):
    """CycloneDX 1.6 ``impactAnalysisState``."""

    RESOLVED = "resolved"
    RESOLVED_WITH_PEDIGREE = "resolved_with_pedigree"
    EXPLOITABLE = "exploitable"
    IN_TRIAGE = "in_triage"
    FALSE_POSITIVE = "false_positive"
    NOT_AFFECTED = "not_affected"


class Justification(StrEnum):
    """CycloneDX 1.6 ``impactAnalysisJustification``."""

    CODE_NOT_PRESENT = "code_not_present"
    CODE_NOT_REACHABLE = "code_not_reachable"
    REQUIRES_CONFIGURATION = "requires_configuration"
    REQUIRES_DEPENDENCY = "requires_dependency"
    REQUIRES_ENVIRONMENT = "requires_environment"
    PROTECTED_BY_COMPILER = "protected_by_compiler"
    PROTECTED_AT_RUNTIME = "protected_at_runtime"
    PROTECTED_AT_PERIMETER = "protected_at_perimeter"
    PROTECTED_BY_MITIGATING_CONTROL = "protected_by_mitigating_control"


class Response(StrEnum):
    """CycloneDX 1.6 ``analysis.response[]``."""

    CAN_NOT_FIX = "can_not_fix"
    WILL_NOT_FIX = "will_not_fix"
    UPDATE = "update"
    ROLLBACK = "rollback"
    WORKAROUND_AVAILABLE = "workaround_available"


class OpenVexStatus(StrEnum):
    """OpenVEX 0.2 statement ``status``."""

    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"


class VexJustification(StrEnum):
    """The five CISA justification labels: OpenVEX 0.2 ``justification`` and CSAF 2.0 ``flags[].label``."""

    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = "vulnerable_code_cannot_be_controlled_by_adversary"
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


class CsafStatus(StrEnum):
    """CSAF 2.0 ``product_status`` keys."""

    FIRST_AFFECTED = "first_affected"
    FIRST_FIXED = "first_fixed"
    FIXED = "fixed"
    KNOWN_AFFECTED = "known_affected"
    KNOWN_NOT_AFFECTED = "known_not_affected"
    LAST_AFFECTED = "last_affected"
    RECOMMENDED = "recommended"
    UNDER_INVESTIGATION = "under_investigation"


class CsafRemediation(StrEnum):
    """CSAF 2.0 ``remediations[].category``."""

    MITIGATION = "mitigation"
    NO_FIX_PLANNED = "no_fix_planned"
    NONE_AVAILABLE = "none_available"
    VENDOR_FIX = "vendor_fix"
    WORKAROUND = "workaround"


#: states after which a finding needs no further action
HANDLED_STATES = frozenset({State.RESOLVED, State.RESOLVED_WITH_PEDIGREE, State.FALSE_POSITIVE, State.NOT_AFFECTED})

_TO_OPENVEX = {
    State.NOT_AFFECTED: OpenVexStatus.NOT_AFFECTED,
    State.FALSE_POSITIVE: OpenVexStatus.NOT_AFFECTED,
    State.EXPLOITABLE: OpenVexStatus.AFFECTED,
    State.RESOLVED: OpenVexStatus.FIXED,
    State.RESOLVED_WITH_PEDIGREE: OpenVexStatus.FIXED,
    State.IN_TRIAGE: OpenVexStatus.UNDER_INVESTIGATION,
}
_FROM_OPENVEX = {
    OpenVexStatus.NOT_AFFECTED: State.NOT_AFFECTED,
    OpenVexStatus.AFFECTED: State.EXPLOITABLE,
    OpenVexStatus.FIXED: State.RESOLVED,
    OpenVexStatus.UNDER_INVESTIGATION: State.IN_TRIAGE,
}
_TO_CSAF = {
    State.NOT_AFFECTED: CsafStatus.KNOWN_NOT_AFFECTED,
    State.FALSE_POSITIVE: CsafStatus.KNOWN_NOT_AFFECTED,
    State.EXPLOITABLE: CsafStatus.KNOWN_AFFECTED,
    State.RESOLVED: CsafStatus.FIXED,
    State.RESOLVED_WITH_PEDIGREE: CsafStatus.FIXED,
    State.IN_TRIAGE: CsafStatus.UNDER_INVESTIGATION,
}
_FROM_CSAF = {
    CsafStatus.KNOWN_NOT_AFFECTED: State.NOT_AFFECTED,
    CsafStatus.KNOWN_AFFECTED: State.EXPLOITABLE,
    CsafStatus.FIRST_AFFECTED: State.EXPLOITABLE,
    CsafStatus.LAST_AFFECTED: State.EXPLOITABLE,
    CsafStatus.FIXED: State.RESOLVED,
    CsafStatus.FIRST_FIXED: State.RESOLVED,
    CsafStatus.UNDER_INVESTIGATION: State.IN_TRIAGE,
}
# the first CycloneDX justification of each group is the native inverse of its label
_TO_VEX_JUST = {
    Justification.CODE_NOT_PRESENT: VexJustification.VULNERABLE_CODE_NOT_PRESENT,
    Justification.CODE_NOT_REACHABLE: VexJustification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
    Justification.REQUIRES_CONFIGURATION: VexJustification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
    Justification.REQUIRES_DEPENDENCY: VexJustification.COMPONENT_NOT_PRESENT,
    Justification.REQUIRES_ENVIRONMENT: VexJustification.VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY,
    Justification.PROTECTED_AT_PERIMETER: VexJustification.VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY,
    Justification.PROTECTED_BY_MITIGATING_CONTROL: VexJustification.INLINE_MITIGATIONS_ALREADY_EXIST,
    Justification.PROTECTED_BY_COMPILER: VexJustification.INLINE_MITIGATIONS_ALREADY_EXIST,
    Justification.PROTECTED_AT_RUNTIME: VexJustification.INLINE_MITIGATIONS_ALREADY_EXIST,
}
_FROM_VEX_JUST: dict[VexJustification, Justification] = {}
for _cdx, _label in _TO_VEX_JUST.items():
    _FROM_VEX_JUST.setdefault(_label, _cdx)
_TO_REMEDIATION = {
    Response.UPDATE: CsafRemediation.VENDOR_FIX,
    Response.ROLLBACK: CsafRemediation.MITIGATION,
    Response.WORKAROUND_AVAILABLE: CsafRemediation.WORKAROUND,
    Response.WILL_NOT_FIX: CsafRemediation.NO_FIX_PLANNED,
    Response.CAN_NOT_FIX: CsafRemediation.NONE_AVAILABLE,
}
_FROM_REMEDIATION = {v: k for k, v in _TO_REMEDIATION.items()}

#: every justification label medfw accepts on input (CycloneDX and CISA/OpenVEX/CSAF)
ALL_JUSTIFICATION_LABELS = frozenset({*Justification, *VexJustification})

ANNOTATION_PREFIX = "medfw-analysis: "
_ANNOTATION = re.compile(r"(?:^|\n)medfw-analysis: (\{.*\})\s*$", re.DOTALL)
_CVE = re.compile(r"^cve-\d{4}-\d{4,}$", re.IGNORECASE)


def normalize_vuln_id(text: str) -> str:
    """Return a vulnerability id in its canonical spelling (``cve-2024-1`` → ``CVE-2024-1``; others trimmed)."""
    value = text.strip()
    return value.upper() if _CVE.match(value) else value


def openvex_status(state: State) -> OpenVexStatus:
    """Map a CycloneDX state to the OpenVEX status."""
    return _TO_OPENVEX[State(state)]


def state_from_openvex(status: str) -> State:
    """Map an OpenVEX status to a CycloneDX state.

    Raises:
        ValueError: unknown status.
    """
    return _FROM_OPENVEX[OpenVexStatus(status)]


def csaf_status(state: State) -> CsafStatus:
    """Map a CycloneDX state to the CSAF ``product_status`` key."""
    return _TO_CSAF[State(state)]


def state_from_csaf(status: str) -> State | None:
    """Map a CSAF ``product_status`` key to a CycloneDX state (None for ``recommended``, which is no VEX status).

    Raises:
        ValueError: unknown key.
    """
    return _FROM_CSAF.get(CsafStatus(status))


def vex_justification(justification: Justification) -> VexJustification:
    """Map a CycloneDX justification to the CISA label (OpenVEX justification, CSAF flag label)."""
    return _TO_VEX_JUST[Justification(justification)]


def parse_justification(label: str) -> Justification:
    """Read a justification in either vocabulary (CycloneDX, or a CISA label mapped to its native inverse).

    Raises:
        ValueError: neither vocabulary knows ``label``.
    """
    if label in Justification.__members__.values():
        return Justification(label)
    return _FROM_VEX_JUST[VexJustification(label)]


def csaf_remediations(responses: Iterable[str]) -> list[CsafRemediation]:
    """Map CycloneDX responses to CSAF remediation categories (order kept, duplicates dropped)."""
    return list(dict.fromkeys(_TO_REMEDIATION[Response(r)] for r in responses))


def responses_from_csaf(categories: Iterable[str]) -> tuple[Response, ...]:
    """Map CSAF remediation categories back to CycloneDX responses (unknown categories skipped)."""
    out = [_FROM_REMEDIATION[CsafRemediation(c)] for c in categories if c in CsafRemediation.__members__.values()]
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Analysis:
    """One VEX statement's analysis in CycloneDX terms, independent of any document format.

    Attributes:
        state: the analysis state.
        justification: why not affected (``not_affected`` only).
        responses: what is being done.
        detail: the reasoning, free text.
        author: who made the statement.
        timestamp: when (UTC).
    """

    state: State
    justification: Justification | None
    responses: tuple[Response, ...]
    detail: str
    author: str
    timestamp: dt.datetime


def check_analysis(state: str, justification: str | None, responses: Iterable[str]) -> str | None:
    """Return why a (state, justification, responses) combination is invalid, or None when it is valid.

    Rules: known values only; ``not_affected`` needs a justification and only it may carry one; ``exploitable``
    needs at least one response.
    """
    if state not in State.__members__.values():
        return f"unknown analysis state {state!r} (one of {', '.join(State)})"
    if justification is not None and justification not in Justification.__members__.values():
        return f"unknown justification {justification!r} (one of {', '.join(Justification)})"
    if state == State.NOT_AFFECTED and justification is None:
        return "state not_affected requires a justification"
    if state != State.NOT_AFFECTED and justification is not None:
        return f"a justification is only valid with not_affected, not with {state}"
    resp = list(responses)
    for r in resp:
        if r not in Response.__members__.values():
            return f"unknown response {r!r} (one of {', '.join(Response)})"
    if state == State.EXPLOITABLE and not resp:
        return "state exploitable requires a response (update, workaround_available, …)"
    return None


def annotation(a: Analysis) -> str:
    """Return the ``medfw-analysis:`` line that carries the exact analysis through a coarser format."""
    exact = {
        "author": a.author,
        "justification": None if a.justification is None else str(a.justification),
        "response": [str(r) for r in a.responses],
        "state": str(a.state),
    }
    return ANNOTATION_PREFIX + json.dumps(exact, sort_keys=True, separators=(",", ":"))


def parse_annotation(text: str) -> tuple[str, Mapping[str, Any] | None]:
    """Split free text into (the text before the annotation, the annotation's fields or None).

    An annotation that is not valid JSON, or whose values are not of the vocabulary, counts as absent.
    """
    m = _ANNOTATION.search(text)
    if m is None:
        return text, None
    try:
        exact = json.loads(m.group(1))
    except json.JSONDecodeError:
        return text, None
    if not isinstance(exact, dict) or not isinstance(exact.get("response", []), list):
        return text, None
    if check_analysis(str(exact.get("state")), exact.get("justification"), exact.get("response", [])) is not None:
        return text, None
    return text[: m.start()], exact
