"""CycloneDX VEX: write an SBOM's decisions (1.6, schema-checked), read any CycloneDX 1.4–1.6 VEX into statements.

Written: a standalone BOM whose ``vulnerabilities[].affects[].ref`` are BOM-Links
``urn:cdx:<sbom-serial-uuid>/<sbom-version>#<bom-ref>``; the component's purl and CPE are listed too, as
``components[]`` of the VEX whose ``bom-ref`` is the BOM-Link, so a reader without the SBOM still sees what is
meant. The analysis is native CycloneDX; the author is the ``medfw:author`` property.

Read: an ``affects.ref`` is a BOM-Link, the ``bom-ref`` of a component of the VEX itself that carries a purl
or CPE, or a purl. ``affects[].versions[]`` (``version`` / ``range``, with ``status`` ``affected`` /
``unaffected``) narrow the statement to those versions.
"""

from __future__ import annotations

import datetime as dt
import json
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
from medfw.vuln.vocabulary import Analysis, Justification, Response, State, check_analysis, normalize_vuln_id

__all__ = ["export_cyclonedx_vex", "is_cyclonedx", "read_cyclonedx_vex", "validate_cyclonedx"]

_SPECS = ("1.4", "1.5", "1.6")


def validate_cyclonedx(doc: Mapping[str, Any]) -> str | None:
    """Validate a CycloneDX JSON document against its ``specVersion``'s bundled schema (1.4–1.6).

    Returns the first error, or None when valid.
    """
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415 - jsonschema is slow to import
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    spec = str(doc.get("specVersion", ""))
    if spec not in _SPECS:
        return f"unsupported specVersion {spec!r} (one of {', '.join(_SPECS)})"
    version = SchemaVersion.from_version(spec)
    err = JsonStrictValidator(version).validate_str(json.dumps(doc))
    if err is None:
        return None
    data = getattr(err, "data", None)
    return str(getattr(data, "message", err)).splitlines()[0]


def _source(vuln_id: str) -> dict[str, str]:
    if vuln_id.startswith("CVE-"):
        return {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{vuln_id}"}
    return {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vuln_id}"}


def _analysis_fields(a: Analysis, first: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"state": str(a.state), "detail": a.detail}
    if a.justification is not None:
        out["justification"] = str(a.justification)
    if a.responses:
        out["response"] = [str(r) for r in a.responses]
    out["firstIssued"] = iso(first)
    out["lastUpdated"] = iso(a.timestamp)
    return out


def export_cyclonedx_vex(sbom: ScanInput, decisions: Sequence[Decision], *, now: dt.datetime) -> dict[str, Any]:
    """Build a CycloneDX 1.6 VEX from an SBOM's decision history and check it against the schema.

    Raises:
        InputError: the generated document does not validate (a guard against bugs).
    """
    comps = {c.ref: c for c in sbom.components}
    vulns: list[dict[str, Any]] = []
    named: dict[str, dict[str, Any]] = {}
    for d, first in current(decisions):
        link = bom_link(sbom.serial, sbom.version, d.component_ref)
        comp = comps.get(d.component_ref)
        if comp is not None and (comp.purl or comp.cpes):
            entry: dict[str, Any] = {"type": "library", "bom-ref": link, "name": comp.name}
            if comp.version:
                entry["version"] = comp.version
            if comp.purl:
                entry["purl"] = comp.purl
            if comp.cpes:
                entry["cpe"] = comp.cpes[0]
            named[link] = entry
        vulns.append(
            {
                "bom-ref": f"{d.vuln_id}#{d.component_ref}",
                "id": d.vuln_id,
                "source": _source(d.vuln_id),
                "analysis": _analysis_fields(analysis_of(d), first),
                "affects": [{"ref": link}],
                "properties": [{"name": "medfw:author", "value": d.author}],
            }
        )
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": iso(now),
            "tools": {"components": [{"type": "application", "name": "medfw", "version": __version__}]},
            "properties": [{"name": "medfw:sbom-serial", "value": sbom.serial}],
        },
    }
    if named:
        doc["components"] = [named[k] for k in sorted(named)]
    doc["vulnerabilities"] = vulns
    err = validate_cyclonedx(doc)
    if err is not None:
        raise InputError(f"generated CycloneDX VEX does not validate: {err}")
    return doc


def is_cyclonedx(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` claims to be CycloneDX."""
    return doc.get("bomFormat") == "CycloneDX"


def _publisher(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    for key in ("supplier", "manufacturer", "manufacture"):
        name = (meta.get(key) or {}).get("name") if isinstance(meta.get(key), Mapping) else None
        if name:
            return str(name)
    authors = meta.get("authors") or []
    if authors and isinstance(authors[0], Mapping) and authors[0].get("name"):
        return str(authors[0]["name"])
    return "unknown"


def _components(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    stack = list(doc.get("components") or [])
    meta_comp = (doc.get("metadata") or {}).get("component")
    if isinstance(meta_comp, Mapping):
        stack.append(meta_comp)
    while stack:
        c = stack.pop()
        if isinstance(c, Mapping):
            if c.get("bom-ref"):
                out[str(c["bom-ref"])] = c
            stack.extend(c.get("components") or [])
    return out


def _products(affects: Sequence[Any], comps: Mapping[str, Mapping[str, Any]], path: str, where: str) -> list[Product]:
    out: list[Product] = []
    for j, a in enumerate(affects):
        ref = str(a.get("ref", "")) if isinstance(a, Mapping) else ""
        comp = comps.get(ref)
        link = ref if parse_bom_link(ref) else None
        purl = (comp or {}).get("purl") or (ref if ref.startswith("pkg:") else None)
        cpe = (comp or {}).get("cpe")
        if not (link or purl or cpe):
            raise InputError(
                f"affects.ref {ref!r} is neither a BOM-Link nor a component with a purl or CPE",
                path=path,
                field=f"{where}.affects[{j}]",
            )
        ranges: list[str | None] = [
            str(v.get("range") or v.get("version"))
            for v in a.get("versions") or []
            if isinstance(v, Mapping)
            and v.get("status", "affected") == "affected"
            and (v.get("range") or v.get("version"))
        ]
        for r in ranges or [None]:
            out.append(Product(bom_link=link, purl=purl, cpe=cpe, versions=r, name=ref))
    return out


def _read_analysis(v: Mapping[str, Any], publisher: str, now: dt.datetime, path: str, where: str) -> Analysis | None:
    analysis = v.get("analysis")
    if not isinstance(analysis, Mapping) or "state" not in analysis:
        return None
    state, just, resp = analysis["state"], analysis.get("justification"), list(analysis.get("response", []))
    problem = check_analysis(str(state), just, resp)
    if problem is not None:
        raise InputError(problem, path=path, field=f"{where}.analysis")
    author = next((p["value"] for p in v.get("properties", []) if p.get("name") == "medfw:author"), publisher)
    try:
        ts = parse_time(analysis.get("lastUpdated") or analysis.get("firstIssued"), now)
    except ValueError:
        raise InputError("analysis time is not RFC 3339", path=path, field=f"{where}.analysis") from None
    return Analysis(
        State(state),
        None if just is None else Justification(just),
        tuple(Response(r) for r in resp),
        str(analysis.get("detail", "")),
        str(author),
        ts,
    )


def read_cyclonedx_vex(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    """Read a CycloneDX VEX into statements (vulnerabilities without an analysis are skipped).

    Raises:
        InputError: schema violation, an ``affects.ref`` that names nothing identifiable, an invalid analysis.
    """
    err = validate_cyclonedx(doc)
    if err is not None:
        raise InputError(f"CycloneDX VEX does not validate against its schema: {err}", path=path)
    comps = _components(doc)
    publisher = _publisher(doc)
    meta = doc.get("metadata") or {}
    when = parse_time(meta.get("timestamp"), now)
    out: list[Statement] = []
    for i, v in enumerate(doc.get("vulnerabilities", [])):
        where = f"vulnerabilities[{i}]"
        a = _read_analysis(v, publisher, when, path, where)
        if a is None:
            continue
        products = _products(v.get("affects", []), comps, path, where)
        if not products:
            continue  # a vulnerability that affects nothing named states nothing medfw can apply
        out.append(Statement(normalize_vuln_id(str(v["id"])), tuple(products), a))
    doc_id = str(doc.get("serialNumber") or "") + (f"/{doc['version']}" if "version" in doc else "")
    return VexDocument("cyclonedx", doc_id, publisher, when, tuple(out))
