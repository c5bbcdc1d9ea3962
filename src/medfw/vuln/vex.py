"""VEX documents: export the current decisions of one SBOM as CycloneDX 1.6 VEX or OpenVEX 0.2, and read both.

CycloneDX VEX is a standalone BOM whose ``vulnerabilities[].affects[].ref`` are BOM-Links
``urn:cdx:<sbom-serial-uuid>/<sbom-version>#<bom-ref>``, binding each statement to the SBOM it judges; it is
validated against the CycloneDX 1.6 JSON schema bundled in cyclonedx-python-lib before it is returned.

OpenVEX 0.2 statements name each product by the same BOM-Link as ``@id`` (plus its purl/CPE identifiers).
Status mapping (CycloneDX → OpenVEX): ``not_affected``/``false_positive`` → ``not_affected``,
``exploitable`` → ``affected``, ``resolved``/``resolved_with_pedigree`` → ``fixed``, ``in_triage`` →
``under_investigation``; justifications map to the five OpenVEX labels. Because that mapping loses detail, each
statement's ``status_notes`` ends with a ``medfw-analysis:`` line carrying the exact CycloneDX analysis, so that
re-import gives back the same decisions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from medfw import __version__
from medfw.errors import InputError
from medfw.vuln.model import ANALYSIS_JUSTIFICATIONS, ANALYSIS_RESPONSES, ANALYSIS_STATES, Decision, ScanInput

__all__ = ["bom_link", "export_vex", "parse_bom_link", "read_vex", "validate_cyclonedx"]

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
_CDX_TO_OPENVEX_STATUS = {
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "exploitable": "affected",
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "in_triage": "under_investigation",
}
_OPENVEX_TO_CDX_STATUS = {"not_affected": "not_affected", "affected": "exploitable", "fixed": "resolved"}
_OPENVEX_TO_CDX_STATUS["under_investigation"] = "in_triage"
_CDX_TO_OPENVEX_JUST = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "requires_configuration": "vulnerable_code_not_in_execute_path",
    "requires_dependency": "component_not_present",
    "requires_environment": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}
_OPENVEX_TO_CDX_JUST = {
    "component_not_present": "requires_dependency",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}
_LINK = re.compile(r"^urn:cdx:([0-9a-f-]{36})/(\d+)#(.+)$")
_NOTE = re.compile(r"medfw-analysis: (\{.*\})\s*$", re.DOTALL)


def bom_link(serial: str, version: int, ref: str) -> str:
    """Return the BOM-Link of a component of an SBOM (``urn:cdx:<uuid>/<version>#<bom-ref>``)."""
    return f"urn:cdx:{serial.removeprefix('urn:uuid:')}/{version}#{ref}"


def parse_bom_link(link: str) -> tuple[str, int, str] | None:
    """Return (serial ``urn:uuid:…``, version, bom-ref) of a BOM-Link, or None if ``link`` is not one."""
    m = _LINK.match(link)
    if m is None:
        return None
    return f"urn:uuid:{m.group(1)}", int(m.group(2)), m.group(3)


def validate_cyclonedx(doc: Mapping[str, Any]) -> str | None:
    """Validate a CycloneDX 1.6 JSON document against the bundled schema; return the first error or None."""
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415 - jsonschema is slow to import
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if err is None:
        return None
    data = getattr(err, "data", None)
    return str(getattr(data, "message", err)).splitlines()[0]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _cyclonedx(sbom: ScanInput, decisions: Sequence[Decision], now: dt.datetime) -> dict[str, Any]:
    first: dict[tuple[str, str], dt.datetime] = {}
    for d in decisions:
        first.setdefault((d.component_ref, d.vuln_id), d.timestamp)
    current: dict[tuple[str, str], Decision] = {}
    for d in decisions:
        current[(d.component_ref, d.vuln_id)] = d
    vulns: list[dict[str, Any]] = []
    for (ref, vuln_id), d in sorted(current.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        analysis: dict[str, Any] = {"state": d.state, "detail": d.detail}
        if d.justification:
            analysis["justification"] = d.justification
        if d.responses:
            analysis["response"] = list(d.responses)
        analysis["firstIssued"] = _iso(first[(ref, vuln_id)])
        analysis["lastUpdated"] = _iso(d.timestamp)
        source = (
            {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{vuln_id}"}
            if vuln_id.startswith("CVE-")
            else {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vuln_id}"}
        )
        vulns.append(
            {
                "bom-ref": f"{vuln_id}#{ref}",
                "id": vuln_id,
                "source": source,
                "analysis": analysis,
                "affects": [{"ref": bom_link(sbom.serial, sbom.version, ref)}],
                "properties": [{"name": "medfw:author", "value": d.author}],
            }
        )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": _iso(now),
            "tools": {"components": [{"type": "application", "name": "medfw", "version": __version__}]},
            "properties": [{"name": "medfw:sbom-serial", "value": sbom.serial}],
        },
        "vulnerabilities": vulns,
    }


def _openvex(sbom: ScanInput, decisions: Sequence[Decision], now: dt.datetime, author: str) -> dict[str, Any]:
    comps = {c.ref: c for c in sbom.components}
    current: dict[tuple[str, str], Decision] = {}
    for d in decisions:
        current[(d.component_ref, d.vuln_id)] = d
    statements: list[dict[str, Any]] = []
    for (ref, vuln_id), d in sorted(current.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        product: dict[str, Any] = {"@id": bom_link(sbom.serial, sbom.version, ref)}
        comp = comps.get(ref)
        idents: dict[str, str] = {}
        if comp is not None and comp.purl:
            idents["purl"] = comp.purl
        if comp is not None and comp.cpes:
            idents["cpe23"] = comp.cpes[0]
        if idents:
            product["identifiers"] = idents
        exact = {"state": d.state, "justification": d.justification, "response": list(d.responses)}
        st: dict[str, Any] = {
            "vulnerability": {"name": vuln_id},
            "timestamp": _iso(d.timestamp),
            "products": [product],
            "status": _CDX_TO_OPENVEX_STATUS[d.state],
            "status_notes": f"{d.detail}\nmedfw-analysis: {json.dumps(exact, sort_keys=True)}",
        }
        if st["status"] == "not_affected":
            if d.justification:
                st["justification"] = _CDX_TO_OPENVEX_JUST[d.justification]
            st["impact_statement"] = d.detail
        if st["status"] == "affected":
            st["action_statement"] = d.detail
        statements.append(st)
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": f"urn:uuid:{uuid.uuid4()}",
        "author": author,
        "timestamp": _iso(now),
        "version": 1,
        "tooling": f"medfw {__version__}",
        "statements": statements,
    }


def export_vex(
    sbom: ScanInput, decisions: Sequence[Decision], fmt: str, *, author: str = "medfw", now: dt.datetime | None = None
) -> dict[str, Any]:
    """Build a VEX document (``fmt`` = ``cyclonedx`` or ``openvex``) from a SBOM's decision history.

    Raises:
        InputError: unknown format, the SBOM has no serial number to bind to, or (a guard against bugs) the
            generated CycloneDX document does not validate against the schema.
    """
    if not sbom.serial.startswith("urn:uuid:"):
        raise InputError("the SBOM has no urn:uuid serialNumber; VEX is bound to it", field="serialNumber")
    now = now or dt.datetime.now(dt.UTC)
    if fmt == "cyclonedx":
        doc = _cyclonedx(sbom, decisions, now)
        err = validate_cyclonedx(doc)
        if err is not None:
            raise InputError(f"generated CycloneDX VEX does not validate: {err}")
        return doc
    if fmt == "openvex":
        return _openvex(sbom, decisions, now, author)
    raise InputError(f"unknown VEX format {fmt!r} (cyclonedx or openvex)", field="format")


def _cdx_decisions(doc: Mapping[str, Any], path: str, now: dt.datetime) -> list[Decision]:
    err = validate_cyclonedx(doc)
    if err is not None:
        raise InputError(f"CycloneDX VEX does not validate against the 1.6 schema: {err}", path=path)
    out: list[Decision] = []
    for i, v in enumerate(doc.get("vulnerabilities", [])):
        analysis = v.get("analysis")
        if not isinstance(analysis, Mapping) or "state" not in analysis:
            continue
        author = next((p["value"] for p in v.get("properties", []) if p.get("name") == "medfw:author"), "vex-import")
        when = analysis.get("lastUpdated") or analysis.get("firstIssued")
        ts = dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else now
        for a in v.get("affects", []):
            link = parse_bom_link(str(a.get("ref", "")))
            if link is None:
                raise InputError(
                    "affects.ref is not a BOM-Link to an SBOM component", path=path, field=f"vulnerabilities[{i}]"
                )
            out.append(
                Decision(
                    link[0],
                    link[2],
                    str(v["id"]),
                    str(analysis["state"]),
                    analysis.get("justification"),
                    tuple(analysis.get("response", [])),
                    str(analysis.get("detail", "")),
                    str(author),
                    ts,
                    "vex-import",
                )
            )
    return out


def _openvex_decisions(doc: Mapping[str, Any], path: str, now: dt.datetime) -> list[Decision]:
    if doc.get("@context") != OPENVEX_CONTEXT:
        raise InputError(f"OpenVEX @context must be {OPENVEX_CONTEXT}", path=path, field="@context")
    for req in ("@id", "author", "timestamp", "version", "statements"):
        if req not in doc:
            raise InputError(f"OpenVEX document lacks {req}", path=path, field=req)
    out: list[Decision] = []
    for i, st in enumerate(doc["statements"]):
        status = st.get("status")
        if status not in _OPENVEX_TO_CDX_STATUS:
            raise InputError(f"unknown OpenVEX status {status!r}", path=path, field=f"statements[{i}].status")
        name = st.get("vulnerability", {}).get("name")
        if not isinstance(name, str):
            raise InputError("statement lacks vulnerability.name", path=path, field=f"statements[{i}]")
        notes = str(st.get("status_notes", ""))
        m = _NOTE.search(notes)
        if m is not None:
            exact = json.loads(m.group(1))
            state, just, resp = exact["state"], exact.get("justification"), tuple(exact.get("response", []))
            detail = notes[: m.start()].rstrip("\n")
        else:
            state = _OPENVEX_TO_CDX_STATUS[status]
            just = _OPENVEX_TO_CDX_JUST.get(str(st.get("justification"))) if status == "not_affected" else None
            resp = ("update",) if status == "affected" else ()
            detail = str(st.get("impact_statement") or st.get("action_statement") or notes or status)
        when = st.get("timestamp") or doc["timestamp"]
        ts = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")) if when else now
        for p in st.get("products", []):
            link = parse_bom_link(str(p.get("@id", "")))
            if link is None:
                raise InputError(
                    "product @id is not a BOM-Link to an SBOM component", path=path, field=f"statements[{i}]"
                )
            out.append(
                Decision(link[0], link[2], name, state, just, resp, detail, str(doc["author"]), ts, "vex-import")
            )
    return out


def read_vex(data: bytes, path: str = "<vex>", *, now: dt.datetime | None = None) -> list[Decision]:
    """Read a CycloneDX or OpenVEX document into decisions (format detected from its content).

    Raises:
        InputError: not JSON, neither format, a schema violation, or an unknown state/justification.
    """
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError("VEX document is not valid JSON", path=path, offset=getattr(e, "pos", None)) from e
    now = now or dt.datetime.now(dt.UTC)
    if isinstance(doc, Mapping) and doc.get("bomFormat") == "CycloneDX":
        decisions = _cdx_decisions(doc, path, now)
    elif isinstance(doc, Mapping) and "@context" in doc:
        decisions = _openvex_decisions(doc, path, now)
    else:
        raise InputError("not a VEX document (CycloneDX or OpenVEX expected)", path=path)
    for d in decisions:
        if d.state not in ANALYSIS_STATES or (d.justification and d.justification not in ANALYSIS_JUSTIFICATIONS):
            raise InputError(f"{d.vuln_id}: unknown analysis state or justification", path=path)
        if any(r not in ANALYSIS_RESPONSES for r in d.responses):
            raise InputError(f"{d.vuln_id}: unknown response", path=path)
    return decisions
