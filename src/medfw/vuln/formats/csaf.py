"""CSAF 2.0: write VEX documents and security advisories.

Written product tree: a ``vendor`` → ``product_name`` (firmware) → ``product_version`` branch for the
firmware (``FW-…`` ids; more than one when a fixed release is named), every affected component as a
``full_product_names`` entry with its purl / CPE and, as ``x_generic_uris``, the BOM-Link of the component in
its SBOM (``namespace`` ``https://cyclonedx.org/capabilities/bomlink/``), and one ``default_component_of``
relationship per component (``REL-…``): the statuses are about *the component as part of the firmware*.

Per vulnerability: ``product_status`` from the state, ``flags`` (CISA label) and an ``impact`` threat (the
detail, dated) for not-affected products, ``remediations`` from the responses (``vendor_fix`` naming the
fixed release when one is given), CVSS scores, and one ``other`` note per product carrying the
``medfw-analysis:`` annotation (see :mod:`medfw.vuln.vocabulary`).

Reading is in :mod:`medfw.vuln.formats.csaf_read`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medfw.vuln.formats._common import (
    analysis_of,
    bom_link,
    current,
    iso,
)
from medfw.vuln.model import Decision, ScanInput
from medfw.vuln.vocabulary import (
    Analysis,
    CsafRemediation,
    CsafStatus,
    annotation,
    csaf_remediations,
    csaf_status,
    vex_justification,
)

__all__ = [
    "BOMLINK_NS",
    "CsafEntry",
    "CsafProduct",
    "build_csaf",
    "export_csaf_vex",
    "publisher_of",
    "sbom_version",
]

BOMLINK_NS = "https://cyclonedx.org/capabilities/bomlink/"
_CVE = re.compile(r"^CVE-[0-9]{4}-[0-9]{4,}$")


@dataclass(frozen=True)
class CsafProduct:
    """A component to name in the product tree."""

    key: str
    name: str
    version: str = ""
    purl: str | None = None
    cpe: str | None = None
    bom_link: str | None = None


@dataclass(frozen=True)
class CsafEntry:
    """One (vulnerability, component) to state: its analysis (None: under investigation) and triage data."""

    vuln_id: str
    product: str
    analysis: Analysis | None
    vector: str | None = None
    description: str = ""
    fixed_in: str | None = None


@dataclass
class _Doc:
    products: dict[str, list[str]] = field(default_factory=dict)  # product key → its REL ids (one per firmware)
    fixed: dict[str, list[str]] = field(default_factory=dict)  # fixed firmware version → its FW ids


def _helper(p: CsafProduct) -> dict[str, Any]:
    helper: dict[str, Any] = {}
    if p.cpe:
        helper["cpe"] = p.cpe
    if p.purl:
        helper["purl"] = p.purl
    if p.bom_link:
        helper["x_generic_uris"] = [{"namespace": BOMLINK_NS, "uri": p.bom_link}]
    return helper


def _tree(
    vendor: str, firmware: Sequence[str], versions: Sequence[str], products: Sequence[CsafProduct], doc: _Doc
) -> dict[str, Any]:
    """Firmware ``FW-<n>-<v>`` (n: firmware/model, v: version), components ``CMP-<i>``, ``REL-<i>-<n>``."""
    branches = []
    for n, name in enumerate(firmware, 1):
        fw = []
        for v, version in enumerate(versions, 1):
            pid = f"FW-{n}-{v}"
            fw.append(
                {
                    "category": "product_version",
                    "name": version,
                    "product": {"name": f"{name} {version}", "product_id": pid},
                }
            )
            if v > 1:
                doc.fixed.setdefault(version, []).append(pid)
        branches.append({"category": "product_name", "name": name, "branches": fw})
    tree: dict[str, Any] = {"branches": [{"category": "vendor", "name": vendor, "branches": branches}]}
    names, rels = [], []
    for i, p in enumerate(products, 1):
        entry: dict[str, Any] = {"name": f"{p.name} {p.version}".strip(), "product_id": f"CMP-{i}"}
        helper = _helper(p)
        if helper:
            entry["product_identification_helper"] = helper
        names.append(entry)
        for n, name in enumerate(firmware, 1):
            rel_id = f"REL-{i}-{n}"
            doc.products.setdefault(p.key, []).append(rel_id)
            rels.append(
                {
                    "category": "default_component_of",
                    "full_product_name": {"name": f"{entry['name']} in {name} {versions[0]}", "product_id": rel_id},
                    "product_reference": f"CMP-{i}",
                    "relates_to_product_reference": f"FW-{n}-1",
                }
            )
    if names:
        tree["full_product_names"] = names
        tree["relationships"] = rels
    return tree


def _score(vector: str | None, pids: list[str]) -> dict[str, Any] | None:
    if not vector:
        return None
    import cvss  # noqa: PLC0415 - only advisories need it

    try:
        if vector.startswith(("CVSS:3.0/", "CVSS:3.1/")):
            c3 = cvss.CVSS3(vector)
            base = c3.scores()[0]
            obj = {
                "version": vector[5:8],
                "vectorString": c3.clean_vector(),
                "baseScore": float(base),
                "baseSeverity": c3.severities()[0].upper(),
            }
            return {"products": pids, "cvss_v3": obj}
        if not vector.startswith("CVSS:"):
            c2 = cvss.CVSS2(vector)
            return {
                "products": pids,
                "cvss_v2": {"version": "2.0", "vectorString": c2.clean_vector(), "baseScore": float(c2.scores()[0])},
            }
    except (cvss.CVSSError, ValueError):
        return None
    return None  # CVSS 4.0 has no place in CSAF 2.0


def _statements(e: CsafEntry, pids: list[str], out: dict[str, list[dict[str, Any]]], doc: _Doc) -> str:
    """Add the flags, threats, remediations, notes and scores of one entry; return its status key."""
    a = e.analysis
    key = CsafStatus.UNDER_INVESTIGATION if a is None else csaf_status(a.state)
    if a is not None:
        out["notes"].append(
            {"category": "other", "title": f"analysis of {' '.join(pids)}", "text": f"{a.detail}\n{annotation(a)}"}
        )
        if a.justification is not None:
            label = str(vex_justification(a.justification))
            out["flags"].append({"label": label, "product_ids": pids, "date": iso(a.timestamp)})
        # the impact threat carries the detail and the time of every statement (the impact statement of a
        # not-affected product, CSAF 6.1.27.9)
        out["threats"].append(
            {"category": "impact", "details": a.detail, "product_ids": pids, "date": iso(a.timestamp)}
        )
        for cat in csaf_remediations(a.responses):
            fix = f" Fixed in {e.fixed_in}." if e.fixed_in and cat == CsafRemediation.VENDOR_FIX else ""
            out["remediations"].append({"category": str(cat), "details": f"{a.detail}{fix}", "product_ids": pids})
    mine = [r for r in out["remediations"] if r["product_ids"] == pids]
    if e.fixed_in and e.fixed_in in doc.fixed and not any(r["category"] == "vendor_fix" for r in mine):
        out["remediations"].append(
            {"category": "vendor_fix", "details": f"Update to release {e.fixed_in}.", "product_ids": pids}
        )
    elif key == CsafStatus.KNOWN_AFFECTED and not mine:
        out["remediations"].append(
            {"category": "none_available", "details": "No fix is available yet.", "product_ids": pids}
        )
    s = _score(e.vector, pids)
    if s is not None:
        out["scores"].append(s)
    return str(key)


def _vulnerability(vuln_id: str, entries: Sequence[CsafEntry], doc: _Doc) -> dict[str, Any]:
    status: dict[str, list[str]] = {}
    parts: dict[str, list[dict[str, Any]]] = {k: [] for k in ("notes", "flags", "threats", "remediations", "scores")}
    for e in entries:
        pids = doc.products[e.product]
        status.setdefault(_statements(e, pids, parts, doc), []).extend(pids)
        if e.fixed_in and e.fixed_in in doc.fixed:
            status.setdefault(str(CsafStatus.FIXED), []).extend(doc.fixed[e.fixed_in])
    description = next((e.description for e in entries if e.description), "")
    parts["notes"].insert(
        0, {"category": "description", "title": "Vulnerability description", "text": description or vuln_id}
    )
    out: dict[str, Any] = (
        {"cve": vuln_id} if _CVE.match(vuln_id) else {"ids": [{"system_name": "OSV", "text": vuln_id}]}
    )
    out["notes"] = parts.pop("notes")
    out["product_status"] = {k: sorted(set(v)) for k, v in sorted(status.items())}
    out.update({name: items for name, items in parts.items() if items})
    return out


def build_csaf(
    *,
    category: str,
    title: str,
    tracking_id: str,
    publisher: Mapping[str, str],
    firmware: Sequence[str],
    firmware_versions: Sequence[str],
    products: Sequence[CsafProduct],
    entries: Sequence[CsafEntry],
    now: dt.datetime,
    summary: str,
) -> dict[str, Any]:
    """Build a CSAF 2.0 document (``category`` ``csaf_vex`` or ``csaf_security_advisory``).

    ``firmware`` names the firmware products (one per device model); ``firmware_versions[0]`` is the release
    the document is about, the others are fixed releases named by ``entries[].fixed_in``.
    """
    from medfw import __version__  # noqa: PLC0415

    doc = _Doc()
    tree = _tree(publisher["name"], firmware, firmware_versions, products, doc)
    by_vuln: dict[str, list[CsafEntry]] = {}
    for e in entries:
        by_vuln.setdefault(e.vuln_id, []).append(e)
    stamp = iso(now)
    return {
        "document": {
            "category": category,
            "csaf_version": "2.0",
            "lang": "en",
            "notes": [{"category": "summary", "title": "Summary", "text": summary}],
            "publisher": dict(publisher),
            "title": title,
            "tracking": {
                "current_release_date": stamp,
                "generator": {"date": stamp, "engine": {"name": "medfw", "version": __version__}},
                "id": tracking_id,
                "initial_release_date": stamp,
                "revision_history": [{"date": stamp, "number": "1", "summary": "Initial version."}],
                "status": "final",
                "version": "1",
            },
        },
        "product_tree": tree,
        "vulnerabilities": [_vulnerability(v, by_vuln[v], doc) for v in sorted(by_vuln)],
    }


def export_csaf_vex(sbom: ScanInput, decisions: Sequence[Decision], *, author: str, now: dt.datetime) -> dict[str, Any]:
    """Build a CSAF 2.0 VEX document from an SBOM's decision history (current decision per finding)."""
    comps = {c.ref: c for c in sbom.components}
    cur = current(decisions)
    refs = sorted({d.component_ref for d, _ in cur})
    products = [
        CsafProduct(
            key=ref,
            name=comps[ref].name if ref in comps else ref,
            version=comps[ref].version if ref in comps else "",
            purl=comps[ref].purl if ref in comps else None,
            cpe=comps[ref].cpes[0] if ref in comps and comps[ref].cpes else None,
            bom_link=bom_link(sbom.serial, sbom.version, ref),
        )
        for ref in refs
    ]
    entries = [CsafEntry(d.vuln_id, d.component_ref, analysis_of(d)) for d, _ in cur]
    firmware = sbom.name or "firmware"
    return build_csaf(
        category="csaf_vex",
        title=f"VEX for {firmware}",
        tracking_id=f"medfw-vex-{sbom.serial.removeprefix('urn:uuid:')}-{sbom.version}",
        publisher=publisher_of(author),
        firmware=[firmware],
        firmware_versions=[sbom_version(sbom)],
        products=products,
        entries=entries,
        now=now,
        summary=f"Exploitability of the vulnerabilities found in {firmware} (SBOM {sbom.serial}).",
    )


def publisher_of(name: str, namespace: str = "https://medfw.invalid") -> dict[str, str]:
    """A CSAF publisher (category vendor)."""
    return {"category": "vendor", "name": name, "namespace": namespace}


def sbom_version(sbom: ScanInput) -> str:
    """The firmware version an SBOM describes (its subject's version; ``sbom-<n>`` when it names none)."""
    return sbom.subject_version or f"sbom-{sbom.version}"
