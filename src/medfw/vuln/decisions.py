"""Patch-or-justify decisions: validation, the append-only history, and the audit trail.

A decision binds one (SBOM serial, component bom-ref, vulnerability) to a CycloneDX analysis, and — through its
scope (:mod:`medfw.vuln.decision_scope`) — to the component identity and version it was made for, so later
releases can inherit it (:mod:`medfw.vuln.carryover`). Rules enforced (CycloneDX 1.6 semantics, tightened so
every decision is defensible; the vocabulary is :mod:`medfw.vuln.vocabulary`):

* ``state`` is a CycloneDX ``impactAnalysisState``; ``detail`` (the reasoning) is required;
* ``not_affected`` requires a ``justification``, and only ``not_affected`` may carry one;
* ``exploitable`` requires at least one ``response`` (what is being done about it);
* ``fixed_in`` (the version that fixes it) only with ``resolved``; ``applies_to`` is a version range that
  contains the component's version;
* the vulnerability must be known to the index (ids are case-insensitive: ``cve-2024-1`` is ``CVE-2024-1``)
  and the component must be in the SBOM (a wrong ref is refused with the candidate refs).

Decisions are only ever appended; the latest one per (serial, component, vulnerability) is current. A batch is
written in one transaction. Every decision is recorded to the audit sink as a ``vuln.decision`` event.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from medfw.audit.sink import AuditEvent, AuditSink
from medfw.errors import InputError, UsageError
from medfw.vuln.decision_scope import Scope, component_identities, load_scopes
from medfw.vuln.model import Decision, ScanInput
from medfw.vuln.version import is_version
from medfw.vuln.version_range import parse_range
from medfw.vuln.vocabulary import State, check_analysis, normalize_vuln_id

if TYPE_CHECKING:  # the writes load SQLAlchemy when they run: reading decisions (a scan) does not
    from sqlalchemy import Connection

    from medfw.vuln.index import VulnIndex
    from medfw.vuln.scan_reads import ScanReads

__all__ = [
    "DecisionRequest",
    "append_decisions",
    "audit_decisions",
    "current_decisions",
    "decision_history",
    "import_decisions",
    "insert_decisions",
    "record_decision",
    "record_decisions",
    "validate_decision",
]


def validate_decision(state: str, justification: str | None, responses: Sequence[str], detail: str) -> None:
    """Check a decision's fields against the rules in the module docstring.

    Raises:
        UsageError: a value is unknown or the combination is invalid.
    """
    problem = check_analysis(state, justification, responses)
    if problem is not None:
        words = problem.split()
        field = "response" if "response" in problem else "justification" if "justification" in words else "state"
        raise UsageError(problem, field=field)
    if not detail.strip():
        raise UsageError("a decision needs a detail explaining it", field="detail")


@dataclass(frozen=True)
class DecisionRequest:
    """One decision to record (CLI, API or a batch file line)."""

    vuln_id: str
    component_ref: str
    state: str
    detail: str
    justification: str | None = None
    responses: tuple[str, ...] = ()
    author: str = ""
    fixed_in: str | None = None
    applies_to: str | None = None


def _to_decision(row: Mapping[str, Any], scope: Scope | None) -> Decision:
    carried = None
    if scope is not None and scope.carried_from_decision is not None:
        carried = f"release {scope.carried_from_release} (decision {scope.carried_from_decision})"
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
        decision_id=int(row["id"]),
        fixed_in=None if scope is None else scope.fixed_in,
        carried_from=carried,
    )


def decision_history(index: ScanReads, serial: str | None = None) -> list[Decision]:
    """Return every decision (for one SBOM serial, or all), oldest first."""
    rows = index.decision_rows(serial)
    scopes = load_scopes(index, [int(r["id"]) for r in rows])
    return [_to_decision(r, scopes.get(int(r["id"]))) for r in rows]


def current_decisions(index: ScanReads, serial: str) -> dict[tuple[str, str], Decision]:
    """Return the current decision per (component ref, vulnerability) of one SBOM."""
    out: dict[tuple[str, str], Decision] = {}
    for d in decision_history(index, serial):
        out[(d.component_ref, d.vuln_id)] = d
    return out


def _candidates(sbom: ScanInput, wanted: str) -> list[str]:
    refs = [c.ref for c in sbom.components]
    by_name = [c.ref for c in sbom.components if wanted.lower() in (c.name.lower(), c.ref.lower())]
    partial = [c.ref for c in sbom.components if wanted.lower() in c.ref.lower() or wanted.lower() in c.name.lower()]
    close = difflib.get_close_matches(wanted, refs, n=5, cutoff=0.4)
    return list(dict.fromkeys([*by_name, *partial, *close]))[:10] or refs[:10]


def _check_request(index: VulnIndex, sbom: ScanInput, req: DecisionRequest, where: str) -> tuple[str, Scope]:
    validate_decision(req.state, req.justification, req.responses, req.detail)
    comp = next((c for c in sbom.components if c.ref == req.component_ref), None)
    if comp is None:
        cands = _candidates(sbom, req.component_ref)
        raise InputError(
            f"{where}component {req.component_ref!r} is not in the SBOM; candidates: {', '.join(cands)}",
            field="bom-ref",
        )
    vuln_id = normalize_vuln_id(req.vuln_id)
    if not index.known_vuln(vuln_id):
        raise InputError(
            f"{where}unknown vulnerability {vuln_id}: no imported feed record names it", field="vulnerability"
        )
    if req.fixed_in is not None:
        if req.state != State.RESOLVED:
            raise UsageError(f"{where}--fixed-in is only valid with state resolved", field="fixed_in")
        if not is_version(req.fixed_in):
            raise UsageError(f"{where}--fixed-in {req.fixed_in!r} is not a version", field="fixed_in")
    if req.applies_to is not None:
        try:
            rng = parse_range(req.applies_to)
        except ValueError as e:
            raise UsageError(f"{where}{e}", field="applies_to") from None
        if not rng.contains(comp.version):
            raise UsageError(
                f"{where}the range {req.applies_to!r} does not contain the component's version {comp.version}",
                field="applies_to",
            )
    return vuln_id, Scope(component_identities(comp), comp.version, req.applies_to, req.fixed_in)


def record_decisions(
    index: VulnIndex,
    sbom: ScanInput,
    requests: Sequence[DecisionRequest],
    *,
    author: str,
    sink: AuditSink,
    source: str = "api",
    now: dt.datetime | None = None,
) -> list[Decision]:
    """Validate every request, then append them all in one transaction and audit each; return the decisions.

    Raises:
        UsageError: an invalid state/justification/response/fixed-in/range, or a missing detail.
        InputError: the SBOM has no serial, a component is not in it (candidates listed), or a vulnerability
            is unknown. Nothing is written when any request fails.
    """
    if not sbom.serial:
        raise InputError("the SBOM has no serialNumber; decisions are bound to it", field="serialNumber")
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    items: list[tuple[Decision, Scope]] = []
    for i, req in enumerate(requests):
        where = f"decision {i + 1}: " if len(requests) > 1 else ""
        vuln_id, scope = _check_request(index, sbom, req, where)
        d = Decision(
            sbom.serial,
            req.component_ref,
            vuln_id,
            req.state,
            req.justification,
            tuple(req.responses),
            req.detail,
            req.author or author,
            when,
            source,
            fixed_in=req.fixed_in,
        )
        items.append((d, scope))
    return append_decisions(index, items, sink=sink, sbom_sha256=sbom.sha256)


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
    fixed_in: str | None = None,
    applies_to: str | None = None,
) -> Decision:
    """Validate, append and audit one decision; return it (see :func:`record_decisions`)."""
    req = DecisionRequest(
        vuln_id, component_ref, state, detail, justification, tuple(responses), author, fixed_in, applies_to
    )
    return record_decisions(index, sbom, [req], author=author, sink=sink, source=source, now=now)[0]


def import_decisions(
    index: VulnIndex, decisions: Sequence[Decision], *, sink: AuditSink, known: Mapping[str, ScanInput] | None = None
) -> tuple[int, int]:
    """Append imported decisions (from VEX) that differ from the current ones; return (added, unchanged).

    ``known`` maps SBOM serials to the SBOMs that are known (registered releases); a decision naming a
    component missing from a known SBOM is an error. All are written in one transaction.

    Raises:
        UsageError: an imported decision breaks the rules of :func:`validate_decision`.
        InputError: unknown vulnerability, or a component not in its (known) SBOM.
    """
    known = known or {}
    for d in decisions:
        validate_decision(d.state, d.justification, d.responses, d.detail)
        if not index.known_vuln(d.vuln_id):
            raise InputError(f"unknown vulnerability {d.vuln_id}: no imported feed record names it")
        sbom = known.get(d.serial)
        if sbom is not None and d.component_ref not in {c.ref for c in sbom.components}:
            raise InputError(f"component {d.component_ref!r} is not in SBOM {d.serial}", field="bom-ref")
    items: list[tuple[Decision, Scope]] = []
    unchanged = 0
    cache: dict[str, dict[tuple[str, str], Decision]] = {}
    for d in decisions:
        cur = cache.setdefault(d.serial, current_decisions(index, d.serial)).get((d.component_ref, d.vuln_id))
        if cur is not None and (cur.state, cur.justification, cur.responses, cur.detail) == (
            d.state,
            d.justification,
            d.responses,
            d.detail,
        ):
            unchanged += 1
            continue
        sbom = known.get(d.serial)
        comp = None if sbom is None else next(c for c in sbom.components if c.ref == d.component_ref)
        scope = Scope((), "") if comp is None else Scope(component_identities(comp), comp.version)
        items.append((d, scope))
        cache[d.serial][(d.component_ref, d.vuln_id)] = d
    append_decisions(index, items, sink=sink)
    return len(items), unchanged


def append_decisions(
    index: VulnIndex, items: Sequence[tuple[Decision, Scope]], *, sink: AuditSink, sbom_sha256: str = ""
) -> list[Decision]:
    """Append decisions with their scopes in one transaction, then audit each; return them with their ids."""
    from medfw.vuln.decision_scope_table import ensure_tables  # noqa: PLC0415 - writes only

    ensure_tables(index)
    with index.transaction() as conn:
        stored = insert_decisions(conn, items)
    audit_decisions(stored, sink, sbom_sha256)
    return [d for d, _ in stored]


def insert_decisions(conn: Connection, items: Sequence[tuple[Decision, Scope]]) -> list[tuple[Decision, Scope]]:
    """Insert decisions and their scopes inside the caller's transaction (call :func:`audit_decisions` after)."""
    from sqlalchemy import insert  # noqa: PLC0415 - writes only

    from medfw.vuln.decision_scope_table import add_scope  # noqa: PLC0415
    from medfw.vuln.schema import decision as decision_table  # noqa: PLC0415

    stored: list[tuple[Decision, Scope]] = []
    for d, scope in items:
        res = conn.execute(insert(decision_table).values(**_row(d)))
        pk = res.inserted_primary_key
        row_id = int(pk[0]) if pk else 0
        add_scope(conn, row_id, scope)
        carried = None
        if scope.carried_from_decision is not None:
            carried = f"release {scope.carried_from_release} (decision {scope.carried_from_decision})"
        stored.append((replace(d, decision_id=row_id, fixed_in=scope.fixed_in, carried_from=carried), scope))
    return stored


def audit_decisions(stored: Sequence[tuple[Decision, Scope]], sink: AuditSink, sbom_sha256: str = "") -> None:
    """Record a ``vuln.decision`` event per stored decision."""
    for d, scope in stored:
        sink.record(_event(d, scope, sbom_sha256))


def _row(d: Decision) -> dict[str, Any]:
    return {
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


def _event(d: Decision, scope: Scope, sbom_sha256: str) -> AuditEvent:
    data: dict[str, Any] = {
        "decision_id": d.decision_id,
        "state": d.state,
        "justification": d.justification,
        "responses": list(d.responses),
        "detail": d.detail,
        "source": d.source,
        "identities": list(scope.identities),
        "version": scope.version,
    }
    for key in ("applies_to", "fixed_in", "carried_from_release", "carried_from_decision"):
        if getattr(scope, key) is not None:
            data[key] = getattr(scope, key)
    return AuditEvent(
        type="vuln.decision",
        outcome="success",
        reason=d.state,
        actor=d.author,
        objects={
            "sbom_serial": d.serial,
            "sbom_sha256": sbom_sha256,
            "component": d.component_ref,
            "vulnerability": d.vuln_id,
        },
        data=data,
    )
