"""CSAF 2.0 reading: product statuses of any CSAF document into format-independent statements.

Every product id used in a status resolves to a branch product (its purl / CPE helpers and the
``product_version`` or ``product_version_range`` of its branch path), a full product name, or a relationship
(its ``product_reference``). Products with no identity at all (no BOM-Link, purl or CPE) are not statements
medfw can apply and are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from medfw.errors import InputError
from medfw.vuln.formats._common import Product, Statement, VexDocument, parse_bom_link, parse_time
from medfw.vuln.formats.csaf import BOMLINK_NS
from medfw.vuln.vocabulary import (
    Analysis,
    Justification,
    Response,
    State,
    normalize_vuln_id,
    parse_annotation,
    parse_justification,
    responses_from_csaf,
    state_from_csaf,
)

__all__ = ["read_csaf"]


def _walk(branches: Sequence[Any], inherited: dict[str, str]) -> Iterator[tuple[Mapping[str, Any], dict[str, str]]]:
    for b in branches or []:
        if not isinstance(b, Mapping):
            continue
        ctx = dict(inherited)
        ctx[str(b.get("category"))] = str(b.get("name", ""))
        if isinstance(b.get("product"), Mapping):
            yield b["product"], ctx
        yield from _walk(b.get("branches") or [], ctx)


def _index_products(tree: Mapping[str, Any]) -> dict[str, Product]:
    out: dict[str, Product] = {}
    for prod, ctx in _walk(tree.get("branches") or [], {}):
        out[str(prod.get("product_id"))] = _as_product(
            prod, ctx.get("product_version_range") or ctx.get("product_version")
        )
    for prod in tree.get("full_product_names") or []:
        if isinstance(prod, Mapping):
            out[str(prod.get("product_id"))] = _as_product(prod, None)
    for rel in tree.get("relationships") or []:
        if isinstance(rel, Mapping) and isinstance(rel.get("full_product_name"), Mapping):
            ref = out.get(str(rel.get("product_reference")))
            if ref is not None:
                out[str(rel["full_product_name"].get("product_id"))] = ref
    return out


def _as_product(prod: Mapping[str, Any], versions: str | None) -> Product:
    helper = prod.get("product_identification_helper") or {}
    link = next(
        (str(u.get("uri")) for u in helper.get("x_generic_uris") or [] if u.get("namespace") == BOMLINK_NS), None
    )
    return Product(
        bom_link=link if link and parse_bom_link(link) else None,
        purl=helper.get("purl"),
        cpe=helper.get("cpe"),
        versions=versions,
        name=str(prod.get("name", "")),
    )


def _per_product(v: Mapping[str, Any], name: str) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for item in v.get(name) or []:
        for pid in item.get("product_ids") or []:
            out.setdefault(str(pid), item)
    return out


def _analysis(
    pid: str, state: State, v: Mapping[str, Any], *, author: str, when: dt.datetime, where: str, path: str
) -> Analysis:
    for note in v.get("notes") or []:
        title = str(note.get("title", "")).split()
        if note.get("category") == "other" and title[:2] == ["analysis", "of"] and pid in title[2:]:
            text, exact = parse_annotation(str(note.get("text", "")))
            if exact is not None:
                dated = _per_product(v, "threats").get(pid) or _per_product(v, "flags").get(pid) or {}
                label = exact.get("justification")
                return Analysis(
                    State(exact["state"]),
                    None if label is None else Justification(label),
                    tuple(Response(r) for r in exact.get("response", [])),
                    text,
                    str(exact.get("author") or author),
                    parse_time(dated.get("date"), when),
                )
    flag = _per_product(v, "flags").get(pid)
    threat = _per_product(v, "threats").get(pid)
    rems = [r for r in v.get("remediations") or [] if pid in (r.get("product_ids") or [])]
    just: Justification | None = None
    if flag is not None:
        if state != State.NOT_AFFECTED:
            raise InputError(f"flag on {pid} does not fit its status", path=path, field=f"{where}.flags")
        try:
            just = parse_justification(str(flag.get("label")))
        except (KeyError, ValueError):
            raise InputError(f"unknown flag label {flag.get('label')!r}", path=path, field=f"{where}.flags") from None
    responses = responses_from_csaf(r.get("category", "") for r in rems)
    detail = str((threat or {}).get("details") or next((r.get("details") for r in rems), "") or "")
    ts = parse_time((threat or flag or {}).get("date"), when)
    return Analysis(state, just, responses, detail, author, ts)


def read_csaf(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    """Read a CSAF 2.0 document's product statuses into statements.

    Raises:
        InputError: a status naming an undefined product, an unknown status key or flag label.
    """
    meta = doc["document"]
    publisher = str((meta.get("publisher") or {}).get("name", "unknown"))
    tracking = meta.get("tracking") or {}
    when = parse_time(tracking.get("current_release_date"), now)
    products = _index_products(doc.get("product_tree") or {})
    out: list[Statement] = []
    for i, v in enumerate(doc.get("vulnerabilities") or []):
        where = f"vulnerabilities[{i}]"
        vid = v.get("cve") or next((x.get("text") for x in v.get("ids") or []), None)
        if not vid:
            raise InputError("vulnerability has neither cve nor ids", path=path, field=where)
        for key, pids in (v.get("product_status") or {}).items():
            try:
                state = state_from_csaf(key)
            except ValueError:
                raise InputError(
                    f"unknown product_status {key!r}", path=path, field=f"{where}.product_status"
                ) from None
            if state is None:
                continue
            for pid in pids:
                if pid not in products:
                    raise InputError(f"product id {pid!r} is not defined in the product tree", path=path, field=where)
                if products[pid].bom_link is None and not (products[pid].purl or products[pid].cpe):
                    continue  # a product without identity (e.g. the firmware itself): nothing to match
                a = _analysis(pid, state, v, author=publisher, when=when, where=where, path=path)
                out.append(Statement(normalize_vuln_id(str(vid)), (products[pid],), a))
    return VexDocument("csaf", str(tracking.get("id", "")), publisher, when, tuple(out))
