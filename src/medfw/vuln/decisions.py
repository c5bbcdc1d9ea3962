"""Patch-or-justify decisions: validation, the append-only history, and the audit trail.

A decision binds one (SBOM serial, component bom-ref, vulnerability) to a CycloneDX analysis. Rules enforced
(CycloneDX 1.6 semantics, tightened so every decision is defensible):

* ``state`` is a CycloneDX ``impactAnalysisState``; ``detail`` (the reasoning) is required;
* ``not_affected`` requires a ``justification``, and only ``not_affected`` may carry one;
* ``exploitable`` requires at least one ``response`` (what is being done about it);
* responses are CycloneDX ``analysis.response`` values;
* the vulnerability must be known to the index and the component must be in the SBOM.

Decisions are only ever appended; the latest one per (serial, component, vulnerability) is current. Every
decision is recorded to the audit sink as a ``vuln.decision`` event.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from medfw.audit.sink import AuditEvent, AuditSink
from medfw.errors import InputError, UsageError
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Decision, ScanInput
from medfw.vuln.vocabulary import check_analysis

__all__ = ["current_decisions", "decision_history", "import_decisions", "record_decision", "validate_decision"]


def validate_decision(state: str, justification: str | None, responses: Sequence[str], detail: str) -> None:
    """Check a decision's fields against the rules in the module docstring.

    Raises:
        UsageError: a value is unknown or the combination is invalid.
    """
    problem = check_analysis(state, justification, responses)
    if problem is not None:
        field = (
            "state"
            if "state" in problem.split(" ")[:3]
            else "justification"
            if "justification" in problem
            else "response"
        )
        raise UsageError(problem, field=field)
    if not detail.strip():
        raise UsageError("a decision needs a detail explaining it", field="detail")


def _to_decision(row: dict[str, Any]) -> Decision:
    return Decision(
        serial=row["serial"],
        component_ref=row["component_ref"],
        vuln_id=row["vuln_id"],
        state=row["state"],
        justification=row["justification"],
        responses=tuple(json.loads(row["responses"])),
        detail=row["detail"],
        author=row["author"],
        timestamp=dt.datetime.fromisoformat(row["created_at"]),
        source=row["source"],
    )


def decision_history(index: VulnIndex, serial: str | None = None) -> list[Decision]:
    """Return every decision (for one SBOM serial, or all), oldest first."""
    return [_to_decision(r) for r in index.decision_rows(serial)]


def current_decisions(index: VulnIndex, serial: str) -> dict[tuple[str, str], Decision]:
    """Return the current decision per (component ref, vulnerability) of one SBOM."""
    out: dict[tuple[str, str], Decision] = {}
    for d in decision_history(index, serial):
        out[(d.component_ref, d.vuln_id)] = d
    return out


def record_decision(
    index: VulnIndex,
    sbom: ScanInput,
    vuln_id: str,
    component_ref: str,
    *,
    state: str,
    detail: str,
    justification: str | None = None,
    responses: Sequence[str] = (),
    author: str,
    sink: AuditSink,
    source: str = "api",
    now: dt.datetime | None = None,
) -> Decision:
    """Validate, append and audit one decision; return it.

    Raises:
        UsageError: invalid state/justification/response combination, or missing detail.
        InputError: the SBOM has no serial, the component is not in it, or the vulnerability is unknown.
    """
    validate_decision(state, justification, responses, detail)
    if not sbom.serial:
        raise InputError("the SBOM has no serialNumber; decisions are bound to it", field="serialNumber")
    if component_ref not in {c.ref for c in sbom.components}:
        raise InputError(f"component {component_ref!r} is not in the SBOM", field="bom-ref")
    if not index.known_vuln(vuln_id):
        raise InputError(f"unknown vulnerability {vuln_id}: no imported feed record names it", field="vulnerability")
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    d = Decision(
        sbom.serial, component_ref, vuln_id, state, justification, tuple(responses), detail, author, when, source
    )
    _append(index, sbom, d, sink)
    return d


def import_decisions(
    index: VulnIndex, decisions: Sequence[Decision], *, sink: AuditSink, known_refs: dict[str, set[str]] | None = None
) -> tuple[int, int]:
    """Append imported decisions (from VEX) that differ from the current ones; return (added, unchanged).

    ``known_refs`` maps SBOM serials to their bom-refs, for the SBOMs that are known (registered releases);
    a decision naming a component missing from a known SBOM is an error.

    Raises:
        UsageError: an imported decision breaks the rules of :func:`validate_decision`.
        InputError: unknown vulnerability, or a component not in its (known) SBOM.
    """
    for d in decisions:
        validate_decision(d.state, d.justification, d.responses, d.detail)
        if not index.known_vuln(d.vuln_id):
            raise InputError(f"unknown vulnerability {d.vuln_id}: no imported feed record names it")
        refs = (known_refs or {}).get(d.serial)
        if refs is not None and d.component_ref not in refs:
            raise InputError(f"component {d.component_ref!r} is not in SBOM {d.serial}", field="bom-ref")
    added = unchanged = 0
    cache: dict[str, dict[tuple[str, str], Decision]] = {}
    for d in decisions:
        cur = cache.setdefault(d.serial, current_decisions(index, d.serial)).get((d.component_ref, d.vuln_id))
        same = cur is not None and (cur.state, cur.justification, cur.responses, cur.detail) == (
            d.state,
            d.justification,
            d.responses,
            d.detail,
        )
        if same:
            unchanged += 1
            continue
        sbom = ScanInput(d.serial, 0, "", (), "")
        _append(index, sbom, d, sink)
        cache[d.serial][(d.component_ref, d.vuln_id)] = d
        added += 1
    return added, unchanged


def _append(index: VulnIndex, sbom: ScanInput, d: Decision, sink: AuditSink) -> int:
    row_id = index.add_decision(
        {
            "serial": d.serial,
            "component_ref": d.component_ref,
            "vuln_id": d.vuln_id,
            "state": d.state,
            "justification": d.justification,
            "responses": json.dumps(list(d.responses)),
            "detail": d.detail,
            "author": d.author,
            "created_at": d.timestamp.isoformat(),
            "source": d.source,
        }
    )
    sink.record(
        AuditEvent(
            type="vuln.decision",
            outcome="success",
            reason=d.state,
            actor=d.author,
            objects={
                "sbom_serial": d.serial,
                "sbom_sha256": sbom.sha256,
                "component": d.component_ref,
                "vulnerability": d.vuln_id,
            },
            data={
                "decision_id": row_id,
                "state": d.state,
                "justification": d.justification,
                "responses": list(d.responses),
                "detail": d.detail,
                "source": d.source,
            },
        )
    )
    return row_id
