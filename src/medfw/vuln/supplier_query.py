"""Supplier VEX, read side: the stored statements as applied to the registered releases, and acceptance policies."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from medfw.vuln.decisions import current_decisions
from medfw.vuln.formats import Product, Statement
from medfw.vuln.model import ScanInput
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import Table

if TYPE_CHECKING:
    from medfw.vuln.index import VulnIndex
    from medfw.vuln.supplier import AcceptPolicy as Policy

__all__ = ["read_policy", "supplier_statements"]


def supplier_statements(
    index: ScanReads, release_id: int | None = None, *, sboms: Sequence[tuple[int, ScanInput]] | None = None
) -> list[dict[str, Any]]:
    """Every stored supplier statement applied to the registered releases (or to ``sboms``, as (id, SBOM)),
    with provenance and acceptance.

    The tables are read in plain SQL (none before they exist); the code that applies statements, which loads
    SQLAlchemy, only when there are statements."""
    rows = index.table_rows(Table.SUPPLIER_STATEMENT, order="id")
    if not rows:
        return []
    from medfw.vuln.supplier import applications, registered_releases  # noqa: PLC0415 - statements to apply
    from medfw.vuln.vocabulary import Analysis, Justification, Response, State  # noqa: PLC0415

    docs = {int(r["id"]): r for r in index.table_rows(Table.SUPPLIER_DOCUMENT)}
    if sboms is None:
        sboms = registered_releases(cast("VulnIndex", index))  # the registered releases: an index that has them
    releases = [(rid, s) for rid, s in sboms if release_id is None or rid == release_id]
    mine = {sbom.serial: current_decisions(index, sbom.serial) for _, sbom in releases}
    out: list[dict[str, Any]] = []
    for row in rows:
        p, a = json.loads(row["product"]), json.loads(row["analysis"])
        analysis = Analysis(
            State(a["state"]),
            None if a["justification"] is None else Justification(a["justification"]),
            tuple(Response(r) for r in a["responses"]),
            a["detail"],
            a["author"],
            dt.datetime.fromisoformat(a["timestamp"]),
        )
        st = Statement(row["vuln_id"], (Product(**p),), analysis)
        doc = docs[int(row["document_id"])]
        for app in applications(releases, [st]):
            own = mine.get(app.serial, {}).get((app.component_ref, st.vuln_id))
            out.append(
                {
                    **app.as_dict(),
                    "supplier": doc["supplier"],
                    "document": {k: doc[k] for k in ("format", "doc_id", "publisher", "doc_date", "sha256")},
                    "accepted": own is not None and own.source == "supplier-vex" and own.state == a["state"],
                    "manufacturer_decision": None if own is None else own.state,
                }
            )
    return out


def read_policy(data: bytes, path: str) -> Policy:
    """Read an acceptance policy: YAML ``accept: [{supplier: NAME, states: [not_affected, …]}, …]``.

    Raises:
        InputError: not that shape, or an unknown state.
    """
    import yaml  # noqa: PLC0415

    from medfw.errors import InputError  # noqa: PLC0415
    from medfw.vuln.supplier import AcceptPolicy  # noqa: PLC0415
    from medfw.vuln.vocabulary import State  # noqa: PLC0415

    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise InputError("policy is not UTF-8 YAML", path=path) from e
    entries = doc.get("accept") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list):
        raise InputError("policy needs an 'accept' list", path=path, field="accept")
    out: dict[str, frozenset[str]] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("supplier"), str):
            raise InputError("each entry needs a supplier name", path=path, field=f"accept[{i}]")
        states = entry.get("states") or []
        if not isinstance(states, list) or any(s not in {str(x) for x in State} for s in states):
            raise InputError(f"unknown state in {states!r}", path=path, field=f"accept[{i}].states")
        out[entry["supplier"].casefold()] = frozenset(states)
    return AcceptPolicy(out)
