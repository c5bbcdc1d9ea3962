"""OpenVEX 0.2: write an SBOM's decisions, read any OpenVEX document into statements.

Written statements name each product by the BOM-Link of its SBOM component as ``@id`` and by its purl / CPE in
``identifiers``. Status and justification follow :mod:`medfw.vuln.vocabulary`; ``status_notes`` holds the
detail followed by the ``medfw-analysis:`` annotation, so a re-read gives back the exact CycloneDX analysis and
each statement's own author (the document ``author`` is who issued the document).

Read products: ``@id`` that is a BOM-Link, a purl (``pkg:…``) or a CPE (``cpe:2.3:…``), or ``identifiers``
``purl`` / ``cpe23`` / ``cpe22``; ``subcomponents`` are products in their own right (the component inside the
product that the statement is about).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from medfw import __version__
from medfw.errors import InputError
from medfw.vuln.formats._common import (
    Product,
    Statement,
    VexDocument,
    analysis_of,
    bom_link,
    current,
    iso,
    parse_bom_link,
    parse_time,
)
from medfw.vuln.model import Decision, ScanInput
from medfw.vuln.vocabulary import (
    Analysis,
    Justification,
    OpenVexStatus,
    Response,
    State,
    annotation,
    normalize_vuln_id,
    openvex_status,
    parse_annotation,
    parse_justification,
    state_from_openvex,
    vex_justification,
)

__all__ = ["OPENVEX_CONTEXT", "export_openvex", "is_openvex", "read_openvex"]

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"


def _product(sbom: ScanInput, ref: str) -> dict[str, Any]:
    comp = next((c for c in sbom.components if c.ref == ref), None)
    product: dict[str, Any] = {"@id": bom_link(sbom.serial, sbom.version, ref)}
    idents: dict[str, str] = {}
    if comp is not None and comp.purl:
        idents["purl"] = comp.purl
    if comp is not None and comp.cpes:
        idents["cpe23"] = comp.cpes[0]
    if idents:
        product["identifiers"] = idents
    return product


def statement_fields(a: Analysis) -> dict[str, Any]:
    """The OpenVEX fields of one analysis (status, justification, statements, notes with the annotation)."""
    status = openvex_status(a.state)
    st: dict[str, Any] = {
        "timestamp": iso(a.timestamp),
        "status": str(status),
        "status_notes": f"{a.detail}\n{annotation(a)}",
    }
    if status == OpenVexStatus.NOT_AFFECTED:
        if a.justification is not None:
            st["justification"] = str(vex_justification(a.justification))
        st["impact_statement"] = a.detail
    if status == OpenVexStatus.AFFECTED:
        st["action_statement"] = a.detail
    return st


def export_openvex(sbom: ScanInput, decisions: Sequence[Decision], *, author: str, now: dt.datetime) -> dict[str, Any]:
    """Build an OpenVEX 0.2 document from an SBOM's decision history (current decision per finding)."""
    statements = [
        {"vulnerability": {"name": d.vuln_id}, "products": [_product(sbom, d.component_ref)], **statement_fields(a)}
        for d, a in ((d, analysis_of(d)) for d, _ in current(decisions))
    ]
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": f"urn:uuid:{uuid.uuid4()}",
        "author": author,
        "timestamp": iso(now),
        "version": 1,
        "tooling": f"medfw {__version__}",
        "statements": statements,
    }


def is_openvex(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` claims to be OpenVEX."""
    return "@context" in doc and "openvex" in str(doc.get("@context"))


def _products(st: Mapping[str, Any], path: str, where: str) -> tuple[Product, ...]:
    out: list[Product] = []
    products = st.get("products")
    if not isinstance(products, list) or not products:
        raise InputError("a statement needs a non-empty products list", path=path, field=where)
    items = list(products)
    for p in list(items):
        items.extend((p.get("subcomponents") or []) if isinstance(p, Mapping) else [])
    for p in items:
        if not isinstance(p, Mapping):
            raise InputError("a product is not an object", path=path, field=where)
        pid = str(p.get("@id", ""))
        idents = p.get("identifiers") if isinstance(p.get("identifiers"), Mapping) else {}
        assert isinstance(idents, Mapping)
        purl = idents.get("purl") or (pid if pid.startswith("pkg:") else None)
        cpe = idents.get("cpe23") or idents.get("cpe22") or (pid if pid.startswith("cpe:") else None)
        link = pid if parse_bom_link(pid) else None
        if not (link or purl or cpe):
            raise InputError(f"product {pid!r} names no BOM-Link, purl or CPE", path=path, field=where)
        out.append(Product(bom_link=link, purl=purl, cpe=cpe, name=pid))
    return tuple(out)


def _analysis(st: Mapping[str, Any], author: str, when: dt.datetime, path: str, where: str) -> Analysis:
    status = st.get("status")
    try:
        state = state_from_openvex(str(status))
    except ValueError:
        raise InputError(f"unknown OpenVEX status {status!r}", path=path, field=f"{where}.status") from None
    notes, exact = parse_annotation(str(st.get("status_notes", "")))
    ts = parse_time(st.get("timestamp"), when)
    if exact is not None:
        just = exact.get("justification")
        return Analysis(
            State(exact["state"]),
            None if just is None else Justification(just),
            tuple(Response(r) for r in exact.get("response", [])),
            notes if notes.strip() else str(st.get("impact_statement") or st.get("action_statement") or ""),
            str(exact.get("author") or author),
            ts,
        )
    justification: Justification | None = None
    if state == State.NOT_AFFECTED:
        label = st.get("justification")
        if label is None:
            if not st.get("impact_statement"):
                raise InputError(
                    "not_affected needs a justification or an impact_statement", path=path, field=f"{where}"
                )
        else:
            try:
                justification = parse_justification(str(label))
            except (ValueError, KeyError):
                raise InputError(
                    f"unknown justification {label!r}", path=path, field=f"{where}.justification"
                ) from None
    elif st.get("justification") is not None:
        raise InputError(f"a justification does not fit status {status}", path=path, field=f"{where}.justification")
    responses = (Response.UPDATE,) if state == State.EXPLOITABLE else ()
    detail = str(st.get("impact_statement") or st.get("action_statement") or notes or status)
    return Analysis(state, justification, responses, detail, author, ts)


def read_openvex(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    """Read an OpenVEX 0.2 document into statements.

    Raises:
        InputError: wrong ``@context``, a required field missing, an unknown status or justification, or a
            justification on a status other than ``not_affected``.
    """
    if doc.get("@context") != OPENVEX_CONTEXT:
        raise InputError(f"OpenVEX @context must be {OPENVEX_CONTEXT}", path=path, field="@context")
    for req in ("@id", "author", "timestamp", "version", "statements"):
        if req not in doc:
            raise InputError(f"OpenVEX document lacks {req}", path=path, field=req)
    if not isinstance(doc["statements"], list):
        raise InputError("statements must be a list", path=path, field="statements")
    try:
        when = parse_time(doc["timestamp"], now)
    except ValueError:
        raise InputError("timestamp is not an RFC 3339 time", path=path, field="timestamp") from None
    out: list[Statement] = []
    for i, st in enumerate(doc["statements"]):
        where = f"statements[{i}]"
        if not isinstance(st, Mapping):
            raise InputError("a statement is not an object", path=path, field=where)
        name = st.get("vulnerability", {}).get("name") if isinstance(st.get("vulnerability"), Mapping) else None
        if not isinstance(name, str) or not name.strip():
            raise InputError("statement lacks vulnerability.name", path=path, field=where)
        try:
            a = _analysis(st, str(doc["author"]), when, path, where)
        except ValueError:
            raise InputError("statement timestamp is not an RFC 3339 time", path=path, field=where) from None
        out.append(Statement(normalize_vuln_id(name), _products(st, path, f"{where}.products"), a))
    return VexDocument("openvex", str(doc["@id"]), str(doc["author"]), when, tuple(out))
