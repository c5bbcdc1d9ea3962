"""What a decision is about: the component identity and the version (or range) it was made for.

A decision row (``decision`` table, append-only) is bound to one SBOM serial and bom-ref; its *scope* row
(``decision_scope``, one per decision, also append-only) says what it means beyond that SBOM:

* ``identities`` — the component's identities: its purl without version and qualifiers (subpath kept:
  ``pkg:github/espressif/esp-idf#components/mbedtls`` is not ``pkg:github/espressif/esp-idf``) and
  ``cpe:<vendor>:<product>`` of each CPE;
* ``version`` — the component version the decision was made for; ``applies_to`` — an optional
  :mod:`~medfw.vuln.version_range` the decider vouches for (``>=3.5.0,<3.6.0``);
* ``fixed_in`` — for ``resolved``: the version that fixes it (the decision holds for any version ≥ it);
* ``carried_from_release`` / ``carried_from_decision`` — set on decisions inherited by a later release.

The table (:mod:`medfw.vuln.decision_scope_table`, with the writes) is created by the index's migrations; the scopes
are read in plain SQL (:meth:`medfw.vuln.scan_reads.ScanReads.table_rows`), without loading SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from packageurl import PackageURL

from medfw.vuln.cpe import parse_cpe
from medfw.vuln.model import ScanComponent
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import Table
from medfw.vuln.version import compare_versions, is_version
from medfw.vuln.version_range import parse_range

__all__ = ["Scope", "component_identities", "load_scopes"]


@dataclass(frozen=True)
class Scope:
    """The identity, version and provenance of one decision (see the module docstring)."""

    identities: tuple[str, ...]
    version: str
    applies_to: str | None = None
    fixed_in: str | None = None
    carried_from_release: int | None = None
    carried_from_decision: int | None = None

    def covers(self, version: str) -> bool:
        """Whether the decision, as made, speaks for ``version`` (its range, else its exact version)."""
        if self.applies_to:
            return parse_range(self.applies_to).contains(version)
        if version == self.version:
            return True
        return is_version(version) and is_version(self.version) and compare_versions(version, self.version) == 0

    def fixed_for(self, version: str) -> bool:
        """Whether ``version`` is at or above ``fixed_in``."""
        return bool(self.fixed_in) and is_version(version) and compare_versions(version, str(self.fixed_in)) >= 0


def component_identities(comp: ScanComponent) -> tuple[str, ...]:
    """The identities of a component (purl without version, ``cpe:vendor:product``), sorted."""
    out: set[str] = set()
    if comp.purl:
        try:
            p = PackageURL.from_string(comp.purl)
        except ValueError:
            p = None
        if p is not None:
            base = PackageURL(type=p.type, namespace=p.namespace, name=p.name, subpath=p.subpath).to_string()
            out.add(base.lower())
    for text in comp.cpes:
        try:
            cpe = parse_cpe(text)
        except ValueError:
            continue
        out.add(f"cpe:{cpe.key}".lower())
    return tuple(sorted(out))


def load_scopes(index: ScanReads, decision_ids: Iterable[int] | None = None) -> dict[int, Scope]:
    """Return the scopes of the given decisions (all when None; none before the table exists)."""
    wanted = None if decision_ids is None else set(decision_ids)
    out: dict[int, Scope] = {}
    for r in index.table_rows(Table.DECISION_SCOPE):
        if wanted is not None and r["decision_id"] not in wanted:
            continue
        out[int(r["decision_id"])] = _scope(r)
    return out


def _scope(row: Mapping[str, object]) -> Scope:
    return Scope(
        tuple(json.loads(str(row["identities"]))),
        str(row["version"]),
        None if row["applies_to"] is None else str(row["applies_to"]),
        None if row["fixed_in"] is None else str(row["fixed_in"]),
        None if row["carried_from_release"] is None else int(str(row["carried_from_release"])),
        None if row["carried_from_decision"] is None else int(str(row["carried_from_decision"])),
    )
