"""CSAF 2.0 validation: the official JSON schema (bundled) and the mandatory tests medfw's documents rely on.

The OASIS CSAF 2.0 schema and the three FIRST CVSS schemas it references are shipped in
``medfw/vuln/schemas/csaf-2.0/`` (see its README for source and license) and resolved offline through a
``referencing`` registry. On top of the schema, these mandatory tests of CSAF 2.0 section 6.1 are applied:

* 6.1.1 every referenced product id is defined; 6.1.2 no product id is defined twice;
* 6.1.6 no product has contradicting statuses (affected / not affected / fixed / under investigation);
* 6.1.13 every purl helper is a valid purl; 6.1.31 no ``product_version`` branch holds a version range;
* 6.1.14 / 6.1.16 / 6.1.21 revision history sorted, ``tracking.version`` is its latest number, no gaps;
* 6.1.23 no CVE used twice; 6.1.29 / 6.1.32 remediations and flags name products;
* 6.1.27.x profile tests for ``csaf_vex`` and ``csaf_security_advisory`` (notes, product tree, vulnerability
  notes, product status, VEX statuses, vulnerability id, impact statement for not affected, action
  statement for affected).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from typing import Any

from medfw.errors import InputError

__all__ = ["check_csaf", "mandatory_problems", "schema_problems"]

_FIRST = {
    "https://www.first.org/cvss/cvss-v2.0.json": "cvss-v2.0.json",
    "https://www.first.org/cvss/cvss-v3.0.json": "cvss-v3.0.json",
    "https://www.first.org/cvss/cvss-v3.1.json": "cvss-v3.1.json",
}
_AFFECTED = ("first_affected", "known_affected", "last_affected")
_NOT_AFFECTED = ("known_not_affected",)
_FIXED = ("first_fixed", "fixed")
_GROUPS = (_AFFECTED, _NOT_AFFECTED, _FIXED, ("under_investigation",))
_RANGE_WORDS = ("<", ">", "after", "all", "before", "earlier", "later", "prior", "versions")


def _load(name: str) -> dict[str, Any]:
    text = resources.files("medfw.vuln").joinpath("schemas", "csaf-2.0", name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@functools.cache
def _validator() -> Any:
    import jsonschema  # type: ignore[import-untyped]  # noqa: PLC0415 - slow to import
    from referencing import Registry, Resource  # noqa: PLC0415
    from referencing.jsonschema import DRAFT4, DRAFT7  # noqa: PLC0415

    resources_ = []
    for url, name in _FIRST.items():
        spec = DRAFT4 if "v2.0" in name or "v3.0" in name else DRAFT7
        resources_.append((url, Resource.from_contents(_load(name), default_specification=spec)))
    registry: Registry[Any] = Registry().with_resources(resources_)
    schema = _load("csaf_json_schema.json")
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def schema_problems(doc: Mapping[str, Any]) -> list[str]:
    """Return the schema violations of ``doc`` (``path: message``), at most 20."""
    out: list[str] = []
    for err in _validator().iter_errors(doc):
        where = "/".join(str(p) for p in err.absolute_path) or "(document)"
        out.append(f"{where}: {err.message[:300]}")
        if len(out) >= 20:
            break
    return out


def _tree_ids(tree: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    stack = list(tree.get("branches") or [])
    while stack:
        b = stack.pop()
        if "product" in b:
            if b.get("category") == "product_version" and any(
                w in str(b.get("name", "")).lower() for w in _RANGE_WORDS
            ):
                yield "6.1.31", f"product_version branch {b.get('name')!r} holds a version range"
            yield "id", str(b["product"].get("product_id"))
            purl = (b["product"].get("product_identification_helper") or {}).get("purl")
            if purl is not None:
                yield "purl", str(purl)
        stack.extend(b.get("branches") or [])
    for p in tree.get("full_product_names") or []:
        yield "id", str(p.get("product_id"))
        purl = (p.get("product_identification_helper") or {}).get("purl")
        if purl is not None:
            yield "purl", str(purl)
    for r in tree.get("relationships") or []:
        yield "id", str(r["full_product_name"].get("product_id"))
        for k in ("product_reference", "relates_to_product_reference"):
            yield "ref", str(r.get(k))


def _ids(value: Any) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list) else []


def _referenced(v: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for key, ids in _status(v).items():
        for pid in ids:
            yield f"product_status/{key}", pid
    for name in ("flags", "threats", "remediations", "scores"):
        for item in v.get(name) or []:
            if isinstance(item, Mapping):
                for pid in _ids(item.get("product_ids") or item.get("products")):
                    yield name, pid


def _status(v: Mapping[str, Any]) -> dict[str, list[str]]:
    status = v.get("product_status")
    return {str(k): _ids(ids) for k, ids in status.items()} if isinstance(status, Mapping) else {}


def _tree_problems(doc: Mapping[str, Any], defined: set[str]) -> list[str]:
    from packageurl import PackageURL  # noqa: PLC0415

    out: list[str] = []
    refs: list[str] = []
    for kind, value in _tree_ids(doc.get("product_tree") or {}):
        if kind == "id":
            if value in defined:
                out.append(f"6.1.2: product id {value!r} is defined more than once")
            defined.add(value)
        elif kind == "ref":
            refs.append(value)
        elif kind == "purl":
            try:
                PackageURL.from_string(value)
            except ValueError:
                out.append(f"6.1.13: invalid purl {value!r}")
        else:
            out.append(f"{kind}: {value}")
    out.extend(f"6.1.1: relationship references undefined product {r!r}" for r in refs if r not in defined)
    return out


def _revision_problems(tracking: Mapping[str, Any]) -> list[str]:
    history = tracking.get("revision_history") or []
    numbers = [str(h.get("number")) for h in history]
    dates = [str(h.get("date")) for h in history]
    out: list[str] = []
    if dates != sorted(dates):
        out.append("6.1.14: revision history is not sorted by date")
    if numbers and str(tracking.get("version")) != numbers[-1]:
        out.append("6.1.16: tracking.version is not the latest revision number")
    if all(n.isdigit() for n in numbers) and [int(n) for n in numbers] != list(range(1, len(numbers) + 1)):
        out.append("6.1.21: revision history has missing or repeated numbers")
    return out


def _vuln_problems(i: int, v: Mapping[str, Any], category: str, defined: set[str]) -> list[str]:
    where = f"vulnerabilities/{i}"
    out = [f"6.1.1: {where}/{k} references undefined product {p!r}" for k, p in _referenced(v) if p not in defined]
    raw = v.get("product_status")
    if isinstance(raw, Mapping):
        out.extend(
            f"{where}/product_status/{k}: not a list of product ids"
            for k, ids in raw.items()
            if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids)
        )
    status = _status(v)
    for pid in {p for ids in status.values() for p in ids}:
        groups = [g for g in _GROUPS if any(pid in status.get(k, []) for k in g)]
        if len(groups) > 1:
            out.append(f"6.1.6: {where}: product {pid!r} has contradicting statuses")
    for name in ("flags", "remediations"):
        for item in v.get(name) or []:
            if not item.get("product_ids") and not item.get("group_ids"):
                out.append(f"6.1.{29 if name == 'remediations' else 32}: {where}/{name} names no product")
    if category in ("csaf_vex", "csaf_security_advisory"):
        if not v.get("notes"):
            out.append(f"6.1.27.5: {where} has no notes")
        if category == "csaf_security_advisory" and not status:
            out.append(f"6.1.27.6: {where} has no product_status")
    if category == "csaf_vex":
        if not any(k in status for k in ("fixed", "known_affected", "known_not_affected", "under_investigation")):
            out.append(f"6.1.27.7: {where} has no VEX product status")
        if not v.get("cve") and not v.get("ids"):
            out.append(f"6.1.27.8: {where} has neither cve nor ids")
        impact = {p for f in v.get("flags") or [] for p in f.get("product_ids") or []}
        impact |= {
            p for t in v.get("threats") or [] if t.get("category") == "impact" for p in t.get("product_ids") or []
        }
        out.extend(
            f"6.1.27.9: {where}: not affected product {p!r} has no impact statement"
            for p in status.get("known_not_affected", [])
            if p not in impact
        )
        action = {p for r in v.get("remediations") or [] for p in r.get("product_ids") or []}
        out.extend(
            f"6.1.27.10: {where}: affected product {p!r} has no action statement"
            for p in status.get("known_affected", [])
            if p not in action
        )
    return out


def mandatory_problems(doc: Mapping[str, Any]) -> list[str]:
    """Return the failures of the mandatory tests listed in the module docstring."""
    meta = doc.get("document") or {}
    category = str(meta.get("category", ""))
    defined: set[str] = set()
    out = _tree_problems(doc, defined)
    out.extend(_revision_problems(meta.get("tracking") or {}))
    vulns = doc.get("vulnerabilities") or []
    cves = [v.get("cve") for v in vulns if v.get("cve")]
    out.extend(f"6.1.23: {c} is used more than once" for c in sorted({c for c in cves if cves.count(c) > 1}))
    if category in ("csaf_vex", "csaf_security_advisory"):
        if not doc.get("product_tree"):
            out.append("6.1.27.4: the profile requires a product_tree")
        if not vulns:
            out.append("6.1.27.11: the profile requires vulnerabilities")
    for i, v in enumerate(vulns):
        out.extend(_vuln_problems(i, v, category, defined))
    return out


def check_csaf(doc: Mapping[str, Any], path: str = "<csaf>") -> None:
    """Validate a CSAF 2.0 document: the official schema, then the mandatory tests.

    Raises:
        InputError: the first problems found (schema first), naming the JSON path.
    """
    problems = schema_problems(doc)
    kind = "CSAF 2.0 schema"
    if not problems:
        problems = mandatory_problems(doc)
        kind = "CSAF 2.0 mandatory tests"
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"document fails the {kind}: {'; '.join(problems[:3])}{more}", path=path)
