"""Decisions carried across releases: a new release inherits what was decided about the same components.

When a release is registered, every earlier decision (latest per vulnerability × component identity, any
other SBOM) is considered for each component of the new SBOM that shares an identity with it
(:mod:`medfw.vuln.decision_scope`):

* the component's version is still covered (same version, or inside the decision's ``applies_to`` range) →
  the decision is **carried**: the same analysis, source ``carried``, scope marked "carried from release R
  (decision N)";
* the version changed, but the decision is ``resolved`` with ``fixed_in`` and the new version is ≥ it → the
  decision **holds** (carried the same way);
* otherwise the version changed → the decision is **re-opened**: a new ``in_triage`` decision (source
  ``reopened``) whose detail names the old and new versions and the decision it replaces.

A component that already has a decision for that vulnerability in the new SBOM keeps it. Everything is written
in one transaction and audited (``vuln.decision`` events naming the decision carried from).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from medfw.audit.sink import AuditSink
from medfw.vuln.decision_scope import Scope, component_identities, load_scopes
from medfw.vuln.decisions import append_decisions, current_decisions, decision_history
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Decision, ScanComponent, ScanInput
from medfw.vuln.vocabulary import State

__all__ = ["CarryReport", "carry_decisions", "register_release"]


@dataclass(frozen=True)
class CarryReport:
    """What a new release inherited: carried decisions, held fixes, re-opened decisions."""

    carried: tuple[Decision, ...] = ()
    held: tuple[Decision, ...] = ()
    reopened: tuple[Decision, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "carried": [d.as_dict() for d in self.carried],
            "held": [d.as_dict() for d in self.held],
            "reopened": [d.as_dict() for d in self.reopened],
        }


def _latest_by_identity(index: VulnIndex, exclude_serial: str) -> dict[str, dict[str, tuple[Decision, Scope]]]:
    """identity → vulnerability → the latest decision (and its scope) about it in any other SBOM."""
    history = [d for d in decision_history(index) if d.serial != exclude_serial]
    scopes = load_scopes(index, [d.decision_id for d in history])
    latest: dict[str, dict[str, tuple[Decision, Scope]]] = {}
    for d in history:  # oldest first: the latest decision per (identity, vulnerability) wins
        scope = scopes.get(d.decision_id)
        if scope is None:
            continue
        for ident in scope.identities:
            latest.setdefault(ident, {})[d.vuln_id] = (d, scope)
    return latest


def _inherit(
    d: Decision, scope: Scope, comp: ScanComponent, *, sbom: ScanInput, origin: tuple[int | None, int], now: dt.datetime
) -> tuple[str, Decision, Scope]:
    ids = component_identities(comp)
    if scope.covers(comp.version) or (d.state == State.RESOLVED and scope.fixed_for(comp.version)):
        kind = "carried" if scope.covers(comp.version) else "held"
        new_scope = Scope(ids, comp.version, scope.applies_to, scope.fixed_in, origin[0], origin[1])
        new = Decision(
            sbom.serial, comp.ref, d.vuln_id, d.state, d.justification, d.responses, d.detail, d.author, now, "carried"
        )
        return kind, new, new_scope
    detail = (
        f"re-opened for review: {comp.name} changed from {scope.version or '?'} to {comp.version or '?'}; "
        f"decision {d.decision_id} ({d.state}{' ' + d.justification if d.justification else ''}) was made for "
        f"{scope.applies_to or scope.version}: {d.detail}"
    )
    new_scope = Scope(ids, comp.version, None, None, origin[0], origin[1])
    new = Decision(sbom.serial, comp.ref, d.vuln_id, State.IN_TRIAGE, None, (), detail, "medfw", now, "reopened")
    return "reopened", new, new_scope


def carry_decisions(
    index: VulnIndex, sbom: ScanInput, *, sink: AuditSink, now: dt.datetime | None = None
) -> CarryReport:
    """Inherit earlier decisions into the newly registered ``sbom`` (rules in the module docstring)."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    latest = _latest_by_identity(index, sbom.serial)
    if not latest:
        return CarryReport()
    release_of = {str(r["serial"]): int(r["id"]) for r in index.releases()}
    existing = current_decisions(index, sbom.serial)
    chosen: dict[tuple[str, str], tuple[Decision, Scope]] = {}
    for comp in sbom.components:
        for ident in component_identities(comp):
            for vuln_id, (d, scope) in latest.get(ident, {}).items():
                if (comp.ref, vuln_id) in existing:
                    continue
                prev = chosen.get((comp.ref, vuln_id))
                if prev is None or prev[0].decision_id < d.decision_id:
                    chosen[(comp.ref, vuln_id)] = (d, scope)
    comps = {c.ref: c for c in sbom.components}
    kinds: list[str] = []
    items: list[tuple[Decision, Scope]] = []
    for (ref, _), (d, scope) in sorted(chosen.items()):
        kind, new, new_scope = _inherit(
            d, scope, comps[ref], sbom=sbom, origin=(release_of.get(d.serial), d.decision_id), now=when
        )
        kinds.append(kind)
        items.append((new, new_scope))
    stored = append_decisions(index, items, sink=sink, sbom_sha256=sbom.sha256)
    by_kind: dict[str, list[Decision]] = {"carried": [], "held": [], "reopened": []}
    for kind, d in zip(kinds, stored, strict=True):
        by_kind[kind].append(d)
    return CarryReport(tuple(by_kind["carried"]), tuple(by_kind["held"]), tuple(by_kind["reopened"]))


def register_release(
    index: VulnIndex, data: bytes, path: str = "<sbom>", *, sink: AuditSink, now: dt.datetime | None = None
) -> tuple[int, ScanInput, bool, CarryReport]:
    """Register a released SBOM (baseline scan) and inherit earlier decisions into it.

    Returns (release id, SBOM, newly registered, what was inherited). Re-registering the same SBOM inherits
    nothing again.

    Raises:
        ManifestError: the SBOM is unreadable.
        InputError: no serialNumber, or the serial is registered with different content.
    """
    from medfw.vuln.postmarket import add_release  # noqa: PLC0415 - postmarket imports the scanner

    release_id, sbom, created = add_release(index, data, path)
    report = carry_decisions(index, sbom, sink=sink, now=now) if created else CarryReport()
    return release_id, sbom, created, report
