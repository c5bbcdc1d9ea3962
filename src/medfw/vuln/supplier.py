"""Supplier VEX: statements from component suppliers, kept with their provenance, accepted only on purpose.

A supplier document (OpenVEX with purl / CPE products, CycloneDX VEX whose ``affects`` refs are components with
a purl / CPE, CSAF 2.0 VEX with a product tree) is stored as it was said — document id, publisher, date,
SHA-256 of the file, and each statement (vulnerability, product purl / CPE, version range, analysis) — in the
``supplier_document`` / ``supplier_statement`` tables. It is applied to every component of every registered
release whose identity matches the product (purl without version, or CPE vendor:product; see
:mod:`medfw.vuln.decision_scope`) and whose version the statement covers (its range, else the purl's / CPE's
version, else every version).

The manufacturer stays accountable: a supplier ``not_affected`` closes a finding only when accepted
(``accept=True``, or a policy that names the supplier and the states it accepts). Acceptance records a
manufacturer decision (source ``supplier-vex``) whose detail cites the statement's provenance; a component that
already carries a manufacturer decision of its own is not overridden — the disagreement is listed as a conflict,
as are statements that contradict each other. One document is one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packageurl import PackageURL
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, insert, select

from medfw.audit.sink import AuditSink
from medfw.vuln.cpe import ANY, NA, parse_cpe
from medfw.vuln.decision_scope import Scope, component_identities
from medfw.vuln.decisions import current_decisions, insert_decisions
from medfw.vuln.formats import Product, Statement, VexDocument
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Decision, ScanComponent, ScanInput
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.version import compare_versions, is_version
from medfw.vuln.version_range import parse_range
from medfw.vuln.vocabulary import HANDLED_STATES, check_analysis

__all__ = [
    "AcceptPolicy",
    "Application",
    "SupplierImport",
    "applications",
    "import_supplier_vex",
]

metadata = MetaData()
supplier_document = Table(
    "supplier_document",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("format", String(16), nullable=False),
    Column("doc_id", String(400), nullable=False),
    Column("publisher", String(400), nullable=False),
    Column("supplier", String(200), nullable=False),
    Column("doc_date", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("imported_at", String(64), nullable=False),
)
supplier_statement = Table(
    "supplier_statement",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("document_id", Integer, nullable=False, index=True),
    Column("vuln_id", String(200), nullable=False, index=True),
    Column("product", Text, nullable=False),
    Column("analysis", Text, nullable=False),
)


@dataclass(frozen=True)
class AcceptPolicy:
    """Which suppliers' statements are accepted, and in which states (empty: every state)."""

    suppliers: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def accepts(self, supplier: str, state: str) -> bool:
        """Whether a statement of ``supplier`` in ``state`` is accepted."""
        states = self.suppliers.get(supplier.casefold())
        return states is not None and (not states or state in states)


@dataclass(frozen=True)
class Application:
    """A supplier statement that applies to one component of one registered release."""

    release_id: int
    serial: str
    component_ref: str
    component: str
    statement: Statement
    product: Product

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        a = self.statement.analysis
        return {
            "release_id": self.release_id,
            "component_ref": self.component_ref,
            "component": self.component,
            "vuln_id": self.statement.vuln_id,
            "state": str(a.state),
            "justification": None if a.justification is None else str(a.justification),
            "detail": a.detail,
            "product": self.product.purl or self.product.cpe,
            "versions": self.product.versions,
        }


@dataclass
class SupplierImport:
    """What one supplier document did."""

    document: VexDocument
    supplier: str
    statements: int
    applied: list[Application] = field(default_factory=list)
    accepted: list[Decision] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    already_imported: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        d = self.document
        return {
            "document": {
                "format": d.format,
                "id": d.doc_id,
                "publisher": d.publisher,
                "date": d.date.isoformat(),
                "sha256": d.sha256,
                "supplier": self.supplier,
            },
            "statements": self.statements,
            "already_imported": self.already_imported,
            "applied": [a.as_dict() for a in self.applied],
            "accepted": [x.as_dict() for x in self.accepted],
            "conflicts": list(self.conflicts),
            "skipped": list(self.skipped),
        }


def _product_identity(p: Product) -> tuple[set[str], str | None]:
    """The identities a product names and the exact version it names (None: any)."""
    ids: set[str] = set()
    version: str | None = None
    if p.purl:
        try:
            purl = PackageURL.from_string(p.purl)
        except ValueError:
            purl = None
        if purl is not None:
            base = PackageURL(type=purl.type, namespace=purl.namespace, name=purl.name, subpath=purl.subpath)
            ids.add(base.to_string().lower())
            version = purl.version or None
    if p.cpe:
        try:
            cpe = parse_cpe(p.cpe)
        except ValueError:
            cpe = None
        if cpe is not None:
            ids.add(f"cpe:{cpe.key}".lower())
            if version is None and cpe.version not in (ANY, NA):
                version = cpe.version
    return ids, version


def covers(p: Product, comp: ScanComponent) -> bool:
    """Whether the product names this component (identity) in this version."""
    ids, exact = _product_identity(p)
    if not ids & set(component_identities(comp)):
        return False
    if p.versions:
        try:
            return parse_range(p.versions).contains(comp.version)
        except ValueError:
            return False
    if exact is None:
        return True
    if exact == comp.version:
        return True
    return is_version(exact) and is_version(comp.version) and compare_versions(exact, comp.version) == 0


def applications(releases: Sequence[tuple[int, ScanInput]], statements: Sequence[Statement]) -> list[Application]:
    """Every (release, component) each statement applies to."""
    out: list[Application] = []
    for st in statements:
        for p in st.products:
            if p.bom_link is not None and not (p.purl or p.cpe):
                continue
            for rid, sbom in releases:
                for comp in sbom.components:
                    if covers(p, comp):
                        out.append(Application(rid, sbom.serial, comp.ref, f"{comp.name} {comp.version}", st, p))
    return out


def ensure_tables(index: VulnIndex) -> None:
    """Create the supplier tables next to the index's tables if needed."""
    metadata.create_all(index.engine)


def registered_releases(index: VulnIndex) -> list[tuple[int, ScanInput]]:
    return [(int(r["id"]), read_sbom(bytes(r["sbom"]), f"release {r['id']}")) for r in index.releases()]


def _conflicts(
    apps: Sequence[Application],
    mine: Mapping[str, Mapping[tuple[str, str], Decision]],
    previous: Sequence[Mapping[str, Any]] = (),
    supplier: str = "",
) -> list[str]:
    out: list[str] = []
    for a in apps:
        state = str(a.statement.analysis.state)
        for p in previous:
            if (p["release_id"], p["component_ref"], p["vuln_id"]) != (
                a.release_id,
                a.component_ref,
                a.statement.vuln_id,
            ):
                continue
            if (p["state"] in HANDLED_STATES) != (state in HANDLED_STATES):
                out.append(
                    f"release {a.release_id} {a.component_ref} {a.statement.vuln_id}: {supplier} says {state}, "
                    f"{p['supplier']} ({p['document']['doc_id']}) said {p['state']}"
                )
    by_key: dict[tuple[int, str, str], set[bool]] = {}
    for a in apps:
        key = (a.release_id, a.component_ref, a.statement.vuln_id)
        by_key.setdefault(key, set()).add(a.statement.analysis.state in HANDLED_STATES)
        own = mine.get(a.serial, {}).get((a.component_ref, a.statement.vuln_id))
        if own is not None and own.source != "supplier-vex" and own.state != a.statement.analysis.state:
            out.append(
                f"release {a.release_id} {a.component_ref} {a.statement.vuln_id}: the manufacturer decided "
                f"{own.state}, the supplier says {a.statement.analysis.state}"
            )
    out.extend(
        f"release {r} {ref} {vid}: the supplier's statements disagree (affected and not affected)"
        for (r, ref, vid), kinds in sorted(by_key.items())
        if len(kinds) > 1
    )
    return sorted(set(out))


def _accept(
    apps: Sequence[Application],
    doc: VexDocument,
    *,
    supplier: str,
    accept: bool,
    policy: AcceptPolicy | None,
    author: str,
    mine: Mapping[str, Mapping[tuple[str, str], Decision]],
    index: VulnIndex,
) -> tuple[list[tuple[Decision, Scope]], list[str]]:
    items: list[tuple[Decision, Scope]] = []
    skipped: list[str] = []
    now = dt.datetime.now(dt.UTC)
    cite = (
        f"supplier statement accepted: {doc.publisher}, {doc.format} {doc.doc_id}, {doc.date.date()}, "
        f"sha256 {doc.sha256[:16]}"
    )
    seen: set[tuple[str, str, str]] = set()
    for a in apps:
        st = a.statement.analysis
        if not (accept or (policy is not None and policy.accepts(supplier, str(st.state)))):
            continue
        key = (a.serial, a.component_ref, a.statement.vuln_id)
        own = mine.get(a.serial, {}).get(key[1:])
        if key in seen or (own is not None and (own.source != "supplier-vex" or own.state == st.state)):
            continue  # the manufacturer's own decision stands; an accepted statement is not accepted twice
        seen.add(key)
        responses = tuple(str(r) for r in st.responses)
        just = None if st.justification is None else str(st.justification)
        problem = check_analysis(str(st.state), just, responses)
        if problem is None and not index.known_vuln(a.statement.vuln_id):
            problem = "no imported feed record names it"
        if problem is not None:
            skipped.append(f"not accepted: release {a.release_id} {a.component_ref} {a.statement.vuln_id}: {problem}")
            continue
        detail = f"{st.detail or st.state} [{cite}]"
        d = Decision(
            a.serial,
            a.component_ref,
            a.statement.vuln_id,
            str(st.state),
            just,
            responses,
            detail,
            author,
            now,
            "supplier-vex",
        )
        items.append((d, Scope((), a.component.rsplit(" ", 1)[-1])))
    return items, skipped


def import_supplier_vex(
    index: VulnIndex,
    doc: VexDocument,
    *,
    path: str,
    supplier: str | None = None,
    sink: AuditSink,
    author: str,
    accept: bool = False,
    policy: AcceptPolicy | None = None,
) -> SupplierImport:
    """Store a supplier document, apply it to the registered releases and accept what is accepted (docstring).

    Raises:
        StorageError: the database failed (nothing of the document is written).
    """
    from medfw.vuln.decision_scope_table import ensure_tables as ensure_scope  # noqa: PLC0415
    from medfw.vuln.decisions import audit_decisions  # noqa: PLC0415

    ensure_tables(index)
    ensure_scope(index)
    name = supplier or doc.publisher
    report = SupplierImport(doc, name, len(doc.statements))
    report.skipped.extend(
        f"{st.vuln_id}: product {p.name or p.bom_link} names no purl or CPE"
        for st in doc.statements
        for p in st.products
        if not (p.purl or p.cpe)
    )
    releases = registered_releases(index)
    report.applied = applications(releases, doc.statements)
    mine = {sbom.serial: current_decisions(index, sbom.serial) for _, sbom in releases}
    from medfw.vuln.supplier_query import supplier_statements  # noqa: PLC0415 - the read side imports this module

    report.conflicts = _conflicts(report.applied, mine, supplier_statements(index), name)
    items, skipped = _accept(
        report.applied, doc, supplier=name, accept=accept, policy=policy, author=author, mine=mine, index=index
    )
    report.skipped.extend(skipped)
    with index.transaction() as conn:
        known = conn.execute(select(supplier_document.c.id).where(supplier_document.c.sha256 == doc.sha256)).first()
        report.already_imported = known is not None
        if known is None:
            _store(conn, doc, name=name, path=path)
        stored = insert_decisions(conn, items)
    audit_decisions(stored, sink)
    report.accepted = [d for d, _ in stored]
    return report


def _store(conn: Connection, doc: VexDocument, *, name: str, path: str) -> None:
    res = conn.execute(
        insert(supplier_document).values(
            sha256=doc.sha256,
            format=doc.format,
            doc_id=doc.doc_id[:400],
            publisher=doc.publisher[:400],
            supplier=name[:200],
            doc_date=doc.date.isoformat(),
            path=path,
            imported_at=dt.datetime.now(dt.UTC).isoformat(),
        )
    )
    pk = res.inserted_primary_key
    doc_pk = int(pk[0]) if pk else 0
    rows = [
        {
            "document_id": doc_pk,
            "vuln_id": st.vuln_id,
            "product": json.dumps(_product_dict(p)),
            "analysis": json.dumps(_analysis_dict(st)),
        }
        for st in doc.statements
        for p in st.products
    ]
    if rows:
        conn.execute(insert(supplier_statement), rows)


def _product_dict(p: Product) -> dict[str, Any]:
    return {"purl": p.purl, "cpe": p.cpe, "versions": p.versions, "bom_link": p.bom_link, "name": p.name}


def _analysis_dict(st: Statement) -> dict[str, Any]:
    a = st.analysis
    return {
        "state": str(a.state),
        "justification": None if a.justification is None else str(a.justification),
        "responses": [str(r) for r in a.responses],
        "detail": a.detail,
        "author": a.author,
        "timestamp": a.timestamp.isoformat(),
    }
