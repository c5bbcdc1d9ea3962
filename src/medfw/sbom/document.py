"""Read a CycloneDX SBOM (JSON or XML, 1.4–1.7) into a small typed view: :func:`load_sbom`.

This is how other parts of medfw (vulnerability matching, evidence bundle) consume SBOMs: they get every
component with its bom-ref, identity (name, version, purl, all CPEs including the aliases in
``evidence.identity``), supplier, the FDA support fields and the supplier's ``cve-exclude`` statements, without
depending on how the SBOM was produced. Nested components are flattened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.errors import ManifestError
from medfw.sbom.model import CveExclusion
from medfw.sbom.properties import PROP_CVE_EXCLUDE, PROP_END_OF_SUPPORT, PROP_SUPPORT_LEVEL

__all__ = ["MAX_SBOM", "SbomComponent", "SbomDocument", "load_sbom", "parse_sbom"]

MAX_SBOM = 256 * 1024 * 1024


@dataclass(frozen=True)
class SbomComponent:
    """One component of an SBOM (or its ``metadata.component``).

    ``cpes`` holds the component's ``cpe`` followed by the CPE aliases of ``evidence.identity``;
    ``evidence_versions`` the versions binary evidence found (``evidence.identity`` entries of field ``version``),
    which may differ from the declared ``version``.
    """

    bom_ref: str | None
    name: str
    version: str | None
    type: str
    purl: str | None = None
    cpes: tuple[str, ...] = ()
    supplier: str | None = None
    support_level: str | None = None
    end_of_support: str | None = None
    cve_excludes: tuple[CveExclusion, ...] = ()
    licenses: tuple[str, ...] = ()
    hashes: tuple[tuple[str, str], ...] = ()
    copyright: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    swid: bool = False
    evidence_versions: tuple[str, ...] = ()

    def property(self, name: str) -> list[str]:
        """Return every value of property ``name``."""
        return [v for k, v in self.properties if k == name]


@dataclass(frozen=True)
class SbomDocument:
    """A parsed SBOM. ``raw`` holds the JSON-shaped data (for XML, only the subset read here)."""

    format: str
    spec_version: str
    serial_number: str | None
    version: int
    timestamp: str | None
    component: SbomComponent | None
    components: tuple[SbomComponent, ...]
    dependencies: Mapping[str, tuple[str, ...]]
    authors: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    supplier: str | None = None
    manufacturer: str | None = None
    lifecycles: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def by_ref(self, ref: str) -> SbomComponent | None:
        """Return the component with bom-ref ``ref``."""
        for c in self.components:
            if c.bom_ref == ref:
                return c
        return None


def _cve_excludes(props: list[tuple[str, str]], where: str) -> tuple[CveExclusion, ...]:
    out: list[CveExclusion] = []
    for k, v in props:
        if k != PROP_CVE_EXCLUDE:
            continue
        try:
            data = json.loads(v)
        except ValueError:
            raise ManifestError(f"property {PROP_CVE_EXCLUDE} is not JSON", field=where) from None
        if not isinstance(data, dict) or not isinstance(data.get("cve"), str):
            raise ManifestError(f"property {PROP_CVE_EXCLUDE} has no 'cve'", field=where)
        just = data.get("justification")
        out.append(
            CveExclusion(
                cve=data["cve"],
                reason=str(data.get("reason") or ""),
                justification=just if isinstance(just, str) else None,
            )
        )
    return tuple(out)


def _list(value: Any, where: str) -> list[Any]:
    """``value`` as a list (``None`` → empty); anything else is a :class:`ManifestError` naming ``where``."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError("must be an array", field=where)
    return value


def _s(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _component(d: Any, where: str) -> SbomComponent:
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        raise ManifestError("component has no name", field=where)
    props: list[tuple[str, str]] = []
    for p in _list(d.get("properties"), f"{where}.properties"):
        if isinstance(p, dict) and isinstance(p.get("name"), str):
            props.append((p["name"], str(p.get("value", ""))))
    cpes: list[str] = []
    found_versions: list[str] = []
    if isinstance(d.get("cpe"), str):
        cpes.append(d["cpe"])
    evidence = d.get("evidence") if isinstance(d.get("evidence"), dict) else {}
    assert isinstance(evidence, dict)
    identity = evidence.get("identity")
    identities = identity if isinstance(identity, list) else [identity] if isinstance(identity, dict) else []
    for ident in identities:
        if not isinstance(ident, dict) or not isinstance(ident.get("concludedValue"), str):
            continue
        if ident.get("field") == "cpe":
            cpes.append(ident["concludedValue"])
        elif ident.get("field") == "version":
            found_versions.append(ident["concludedValue"])
    licenses: list[str] = []
    for lic in _list(d.get("licenses"), f"{where}.licenses"):
        if not isinstance(lic, dict):
            continue
        if isinstance(lic.get("expression"), str):
            licenses.append(lic["expression"])
        elif isinstance(lic.get("license"), dict):
            inner = lic["license"]
            ident = inner.get("id") or inner.get("name")
            if isinstance(ident, str):
                licenses.append(ident)
    hashes = tuple(
        (h["alg"], h["content"])
        for h in _list(d.get("hashes"), f"{where}.hashes")
        if isinstance(h, dict) and isinstance(h.get("alg"), str) and isinstance(h.get("content"), str)
    )
    supplier = d.get("supplier") if isinstance(d.get("supplier"), dict) else None
    support = [v for k, v in props if k == PROP_SUPPORT_LEVEL]
    eos = [v for k, v in props if k == PROP_END_OF_SUPPORT]
    version = d.get("version")
    return SbomComponent(
        bom_ref=_s(d.get("bom-ref")),
        name=d["name"],
        version=str(version) if isinstance(version, str | int) and str(version) else None,
        type=str(d.get("type", "library")),
        purl=_s(d.get("purl")),
        cpes=tuple(dict.fromkeys(cpes)),
        supplier=_s(supplier.get("name")) if supplier else None,
        support_level=support[0] if support else None,
        end_of_support=eos[0] if eos else None,
        cve_excludes=_cve_excludes(props, where),
        licenses=tuple(licenses),
        hashes=hashes,
        copyright=_s(d.get("copyright")),
        properties=tuple(props),
        swid=isinstance(d.get("swid"), dict),
        evidence_versions=tuple(dict.fromkeys(found_versions)),
    )


def _flatten(items: Any, where: str, out: list[SbomComponent]) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        raise ManifestError("'components' must be an array", field=where)
    for i, c in enumerate(items):
        here = f"{where}[{i}]"
        out.append(_component(c, here))
        if isinstance(c, dict) and c.get("components"):
            _flatten(c["components"], f"{here}.components", out)


def _from_json_dict(data: Any, fmt: str) -> SbomDocument:
    if not isinstance(data, dict) or data.get("bomFormat", "CycloneDX") != "CycloneDX":
        raise ManifestError("not a CycloneDX document")
    spec = data.get("specVersion")
    if not isinstance(spec, str):
        raise ManifestError("missing 'specVersion'", field="specVersion")
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    components: list[SbomComponent] = []
    _flatten(data.get("components"), "components", components)
    deps: dict[str, tuple[str, ...]] = {}
    for i, dep in enumerate(_list(data.get("dependencies"), "dependencies")):
        if not isinstance(dep, dict) or not isinstance(dep.get("ref"), str):
            raise ManifestError("dependency has no 'ref'", field=f"dependencies[{i}]")
        deps[dep["ref"]] = tuple(str(x) for x in _list(dep.get("dependsOn"), f"dependencies[{i}].dependsOn"))
    tools_raw = meta.get("tools")
    tools: list[str] = []
    if isinstance(tools_raw, dict):
        tool_items = _list(tools_raw.get("components"), "metadata.tools.components")
        tool_items += _list(tools_raw.get("services"), "metadata.tools.services")
        for t in tool_items:
            if isinstance(t, dict) and isinstance(t.get("name"), str):
                tools.append(t["name"])
    elif isinstance(tools_raw, list):
        tools.extend(t["name"] for t in tools_raw if isinstance(t, dict) and isinstance(t.get("name"), str))
    authors = tuple(
        str(a.get("name") or a.get("email"))
        for a in _list(meta.get("authors"), "metadata.authors")
        if isinstance(a, dict)
    )
    lifecycles = tuple(
        str(lc.get("phase") or lc.get("name"))
        for lc in _list(meta.get("lifecycles"), "metadata.lifecycles")
        if isinstance(lc, dict)
    )
    sup = meta.get("supplier") if isinstance(meta.get("supplier"), dict) else None
    man = meta.get("manufacturer") if isinstance(meta.get("manufacturer"), dict) else None
    mc = meta.get("component")
    version = data.get("version", 1)
    return SbomDocument(
        format=fmt,
        spec_version=spec,
        serial_number=_s(data.get("serialNumber")),
        version=version if isinstance(version, int) and not isinstance(version, bool) else 1,
        timestamp=_s(meta.get("timestamp")),
        component=_component(mc, "metadata.component") if mc is not None else None,
        components=tuple(components),
        dependencies=deps,
        authors=authors,
        tools=tuple(tools),
        supplier=_s(sup.get("name")) if sup else None,
        manufacturer=_s(man.get("name")) if man else None,
        lifecycles=lifecycles,
        raw=data,
    )


# --- XML: convert the subset we read into the JSON shape -------------------------------------------------------


def parse_sbom(data: bytes, *, path: str | None = None) -> SbomDocument:
    """Parse CycloneDX JSON or XML bytes.

    Raises:
        ManifestError: not CycloneDX, not JSON/XML, or malformed where this reader looks (names the field).
    """
    head = data.lstrip()[:1]
    try:
        if head == b"{":
            try:
                obj = json.loads(data.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ManifestError("SBOM is not UTF-8", offset=e.start) from None
            except json.JSONDecodeError as e:
                raise ManifestError(f"invalid JSON: {e.msg}", offset=len(e.doc[: e.pos].encode())) from None
            except RecursionError:
                raise ManifestError("SBOM is nested too deeply") from None
            return _from_json_dict(obj, "json")
        if head == b"<":
            from medfw.sbom.document_xml import xml_document_dict  # noqa: PLC0415 - lxml only for XML

            return _from_json_dict(xml_document_dict(data), "xml")
        raise ManifestError("not a CycloneDX JSON or XML document")
    except ManifestError as e:
        if path is not None:
            e.with_path(path)
        raise


def load_sbom(source: str | os.PathLike[str] | bytes) -> SbomDocument:
    """Load an SBOM from a file path or from bytes.

    Raises:
        InputError: the file cannot be read.
        ManifestError: the content is not a readable CycloneDX document.
    """
    if isinstance(source, bytes):
        return parse_sbom(source)
    path = Path(source)
    data = read_bytes(path, max_length=MAX_SBOM, what="SBOM")
    return parse_sbom(data, path=str(path))
