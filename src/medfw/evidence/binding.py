"""Checks that the bundle's vulnerability documents are bound to the bundle's SBOM.

Pure: parsed JSON documents in, a list of problems out (empty = bound). The binding rules:

* the CycloneDX VEX names the SBOM in ``metadata.properties`` (``medfw:sbom-serial``) and that serial is the
  SBOM's ``serialNumber``;
* every CycloneDX ``affects[].ref`` and every OpenVEX ``products[].@id`` is a BOM-Link
  ``urn:cdx:<serial>/<version>#<bom-ref>`` to the SBOM's serial and version and to a bom-ref that exists in it;
* the scan record (``vuln/scan.json``) is of the same SBOM serial, and each finding's component exists in it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from medfw.vuln.vex import parse_bom_link

__all__ = ["check_openvex", "check_scan", "check_vex_cyclonedx", "sbom_refs"]


def _walk(items: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(items, list):
        return
    for c in items:
        if isinstance(c, Mapping):
            yield c
            yield from _walk(c.get("components"))


def sbom_refs(sbom: Mapping[str, Any]) -> set[str]:
    """Every ``bom-ref`` of the SBOM (primary component and nested components included)."""
    refs: set[str] = set()
    meta = sbom.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("component"), Mapping):
        refs.update(str(c["bom-ref"]) for c in _walk([meta["component"]]) if "bom-ref" in c)
    refs.update(str(c["bom-ref"]) for c in _walk(sbom.get("components")) if "bom-ref" in c)
    return refs


def _check_link(link: object, serial: str, version: int, refs: set[str], where: str) -> str | None:
    parsed = parse_bom_link(str(link)) if isinstance(link, str) else None
    if parsed is None:
        return f"{where}: {link!r} is not a BOM-Link"
    l_serial, l_version, ref = parsed
    if l_serial != serial:
        return f"{where}: bound to SBOM {l_serial}, the bundle's SBOM is {serial}"
    if l_version != version:
        return f"{where}: bound to SBOM version {l_version}, the bundle's SBOM is version {version}"
    if ref not in refs:
        return f"{where}: component {ref!r} does not exist in the SBOM"
    return None


def _identity(sbom: Mapping[str, Any]) -> tuple[str, int]:
    version = sbom.get("version", 1)
    return str(sbom.get("serialNumber", "")), version if isinstance(version, int) else -1


def check_vex_cyclonedx(vex: Mapping[str, Any], sbom: Mapping[str, Any]) -> list[str]:
    """Problems binding a CycloneDX VEX document to ``sbom`` (see the module docstring)."""
    serial, version = _identity(sbom)
    refs = sbom_refs(sbom)
    problems: list[str] = []
    meta = vex.get("metadata")
    props = meta.get("properties") if isinstance(meta, Mapping) else None
    named = [
        str(p.get("value"))
        for p in (props if isinstance(props, list) else [])
        if isinstance(p, Mapping) and p.get("name") == "medfw:sbom-serial"
    ]
    if not named:
        problems.append("metadata.properties: no medfw:sbom-serial names the SBOM")
    elif any(n != serial for n in named):
        problems.append(f"metadata.properties: medfw:sbom-serial is {named[0]}, the bundle's SBOM is {serial}")
    vulns = vex.get("vulnerabilities")
    if not isinstance(vulns, list):
        return [*problems, "vulnerabilities: missing"]
    for i, v in enumerate(vulns):
        affects = v.get("affects") if isinstance(v, Mapping) else None
        if not isinstance(affects, list) or not affects:
            problems.append(f"vulnerabilities[{i}].affects: missing")
            continue
        for j, a in enumerate(affects):
            ref = a.get("ref") if isinstance(a, Mapping) else None
            err = _check_link(ref, serial, version, refs, f"vulnerabilities[{i}].affects[{j}].ref")
            if err:
                problems.append(err)
    return problems


def check_openvex(vex: Mapping[str, Any], sbom: Mapping[str, Any]) -> list[str]:
    """Problems binding an OpenVEX 0.2 document to ``sbom``."""
    serial, version = _identity(sbom)
    refs = sbom_refs(sbom)
    problems: list[str] = []
    if vex.get("@context") != "https://openvex.dev/ns/v0.2.0":
        problems.append(f"@context: {vex.get('@context')!r} is not OpenVEX 0.2.0")
    statements = vex.get("statements")
    if not isinstance(statements, list):
        return [*problems, "statements: missing"]
    for i, st in enumerate(statements):
        products = st.get("products") if isinstance(st, Mapping) else None
        if not isinstance(products, list) or not products:
            problems.append(f"statements[{i}].products: missing")
            continue
        for j, p in enumerate(products):
            pid = p.get("@id") if isinstance(p, Mapping) else None
            err = _check_link(pid, serial, version, refs, f"statements[{i}].products[{j}].@id")
            if err:
                problems.append(err)
    return problems


def check_scan(scan: Mapping[str, Any], sbom: Mapping[str, Any]) -> list[str]:
    """Problems binding the scan record to ``sbom``."""
    serial, _version = _identity(sbom)
    refs = sbom_refs(sbom)
    problems: list[str] = []
    scanned = scan.get("sbom")
    scanned_serial = scanned.get("serial") if isinstance(scanned, Mapping) else None
    if scanned_serial != serial:
        problems.append(f"sbom.serial: scan is of SBOM {scanned_serial}, the bundle's SBOM is {serial}")
    findings = scan.get("findings")
    if not isinstance(findings, list):
        return [*problems, "findings: missing"]
    for i, f in enumerate(findings):
        ref = f.get("component_ref") if isinstance(f, Mapping) else None
        if ref not in refs:
            problems.append(f"findings[{i}].component_ref: {ref!r} does not exist in the SBOM")
    return problems
