"""CycloneDX XML documents read into the same :class:`~medfw.sbom.document.SbomDocument` as JSON ones."""

from __future__ import annotations

from typing import Any

from lxml import etree  # type: ignore[import-untyped]  # via cyclonedx-python-lib[xml-validation]

from medfw.errors import ManifestError

__all__ = ["xml_document_dict"]


def _local(tag: Any) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(el: Any, name: str) -> list[Any]:
    return [c for c in el if isinstance(c.tag, str) and _local(c.tag) == name]


def _text(el: Any, name: str) -> str | None:
    found = _children(el, name)
    return (found[0].text or "").strip() if found else None


def _xml_entity(el: Any) -> dict[str, Any] | None:
    if el is None:
        return None
    return {"name": _text(el, "name")}


def _xml_component(el: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"type": el.get("type", "library"), "name": _text(el, "name")}
    if el.get("bom-ref"):
        d["bom-ref"] = el.get("bom-ref")
    for key in ("version", "cpe", "purl", "copyright"):
        v = _text(el, key)
        if v is not None:
            d[key] = v
    sup = _children(el, "supplier")
    if sup:
        d["supplier"] = _xml_entity(sup[0])
    if _children(el, "swid"):
        d["swid"] = {}
    hashes = []
    for hs in _children(el, "hashes"):
        hashes += [{"alg": h.get("alg"), "content": (h.text or "").strip()} for h in _children(hs, "hash")]
    d["hashes"] = hashes
    lics: list[dict[str, Any]] = []
    for ls in _children(el, "licenses"):
        for child in ls:
            if not isinstance(child.tag, str):
                continue
            if _local(child.tag) == "expression":
                lics.append({"expression": (child.text or "").strip()})
            elif _local(child.tag) == "license":
                lics.append({"license": {"id": _text(child, "id"), "name": _text(child, "name")}})
    d["licenses"] = lics
    props = []
    for ps in _children(el, "properties"):
        props += [{"name": p.get("name"), "value": p.text or ""} for p in _children(ps, "property")]
    d["properties"] = props
    idents = []
    for ev in _children(el, "evidence"):
        for ident in _children(ev, "identity"):
            idents.append({"field": _text(ident, "field"), "concludedValue": _text(ident, "concludedValue")})
    if idents:
        d["evidence"] = {"identity": idents}
    nested = []
    for cs in _children(el, "components"):
        nested += [_xml_component(c) for c in _children(cs, "component")]
    if nested:
        d["components"] = nested
    return d


def xml_document_dict(data: bytes) -> dict[str, Any]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise ManifestError(f"invalid XML: {e.msg}") from None
    ns = str(root.tag)
    if _local(ns) != "bom" or "cyclonedx.org/schema/bom/" not in ns:
        raise ManifestError("not a CycloneDX XML document")
    spec = ns.split("cyclonedx.org/schema/bom/", 1)[1].rstrip("}").split("}")[0]
    out: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": spec,
        "version": int(root.get("version", "1")) if str(root.get("version", "1")).isdigit() else 1,
    }
    if root.get("serialNumber"):
        out["serialNumber"] = root.get("serialNumber")
    meta: dict[str, Any] = {}
    for m in _children(root, "metadata"):
        ts = _text(m, "timestamp")
        if ts:
            meta["timestamp"] = ts
        meta["lifecycles"] = [
            {"phase": _text(lc, "phase"), "name": _text(lc, "name")}
            for lcs in _children(m, "lifecycles")
            for lc in _children(lcs, "lifecycle")
        ]
        tools: list[dict[str, Any]] = []
        for ts_el in _children(m, "tools"):
            for sub in ts_el.iter():
                if isinstance(sub.tag, str) and _local(sub.tag) in ("tool", "component", "service"):
                    name = _text(sub, "name")
                    if name:
                        tools.append({"name": name})
        meta["tools"] = tools
        meta["authors"] = [
            {"name": _text(a, "name"), "email": _text(a, "email")}
            for aus in _children(m, "authors")
            for a in _children(aus, "author")
        ]
        for role in ("supplier", "manufacturer"):
            found = _children(m, role)
            if found:
                meta[role] = _xml_entity(found[0])
        mcs = _children(m, "component")
        if mcs:
            meta["component"] = _xml_component(mcs[0])
    out["metadata"] = meta
    out["components"] = [_xml_component(c) for cs in _children(root, "components") for c in _children(cs, "component")]
    deps = []
    for ds in _children(root, "dependencies"):
        for dep in _children(ds, "dependency"):
            deps.append({"ref": dep.get("ref"), "dependsOn": [x.get("ref") for x in _children(dep, "dependency")]})
    out["dependencies"] = deps
    return out
