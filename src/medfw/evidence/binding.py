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


def _check_links(vex: Mapping[str, Any], path: tuple[str, str, str], sbom: Mapping[str, Any]) -> list[str]:
    """Problems of the BOM-Links at ``vex[<entries>][i][<targets>][j][<link>]`` (``path`` names the three keys)."""
    entries_key, targets_key, link_key = path
    serial, version = _identity(sbom)
    refs = sbom_refs(sbom)
    entries = vex.get(entries_key)
    if not isinstance(entries, list):
        return [f"{entries_key}: missing"]
    problems: list[str] = []
    for i, entry in enumerate(entries):
        targets = entry.get(targets_key) if isinstance(entry, Mapping) else None
        if not isinstance(targets, list) or not targets:
            problems.append(f"{entries_key}[{i}].{targets_key}: missing")
            continue
        for j, target in enumerate(targets):
            link = target.get(link_key) if isinstance(target, Mapping) else None
            err = _check_link(link, serial, version, refs, f"{entries_key}[{i}].{targets_key}[{j}].{link_key}")
            if err:
                problems.append(err)
    return problems


def check_vex_cyclonedx(vex: Mapping[str, Any], sbom: Mapping[str, Any]) -> list[str]:
    """Problems binding a CycloneDX VEX document to ``sbom`` (see the module docstring)."""
    serial, _version = _identity(sbom)
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
    return problems + _check_links(vex, ("vulnerabilities", "affects", "ref"), sbom)


def check_openvex(vex: Mapping[str, Any], sbom: Mapping[str, Any]) -> list[str]:
    """Problems binding an OpenVEX 0.2 document to ``sbom``."""
    problems: list[str] = []
    if vex.get("@context") != "https://openvex.dev/ns/v0.2.0":
        problems.append(f"@context: {vex.get('@context')!r} is not OpenVEX 0.2.0")
    return problems + _check_links(vex, ("statements", "products", "@id"), sbom)


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
