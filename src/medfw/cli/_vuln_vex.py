"""``medfw vuln vex import`` (own decisions by BOM-Link, or a supplier's statements) and ``vuln vex statements``."""

from __future__ import annotations

import argparse
from typing import Any

from medfw._io import read_bytes
from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_json_flag, audit_sink, emit
from medfw.cli._vuln_decide import close_sink, default_author
from medfw.cli._vuln_feed import add_db
from medfw.errors import EXIT_OK

__all__ = ["register_vex_import"]


def _own(args: argparse.Namespace, doc: Any) -> int:
    from medfw.vuln import current_decisions, open_index, read_sbom  # noqa: PLC0415
    from medfw.vuln.decisions import import_decisions  # noqa: PLC0415
    from medfw.vuln.vex import decisions_of  # noqa: PLC0415

    decisions = decisions_of(doc, args.file)
    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        known = {r["serial"]: read_sbom(bytes(r["sbom"]), f"release {r['id']}") for r in index.releases()}
        added, unchanged = import_decisions(index, decisions, sink=sink, known=known)
        current = {s: len(current_decisions(index, s)) for s in sorted({d.serial for d in decisions})}
    finally:
        index.close()
        close_sink(sink)
    emit(
        args,
        {"statements": len(decisions), "added": added, "unchanged": unchanged, "current": current},
        lambda: _common.out_console.print(
            f"{len(decisions)} statement(s): {added} decision(s) added, {unchanged} unchanged", markup=False
        ),
    )
    return EXIT_OK


def _supplier(args: argparse.Namespace, doc: Any) -> int:
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.supplier import import_supplier_vex  # noqa: PLC0415
    from medfw.vuln.supplier_query import read_policy  # noqa: PLC0415

    policy = read_policy(read_bytes(args.policy, what="policy"), args.policy) if args.policy else None
    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        report = import_supplier_vex(
            index, doc, path=args.file, supplier=args.supplier, sink=sink, author=args.author,
            accept=args.accept, policy=policy,
        )  # fmt: skip
    finally:
        index.close()
        close_sink(sink)

    def human() -> None:
        if report.already_imported:
            _common.out_console.print(f"{args.file} was already imported (sha256 {doc.sha256[:16]}…)", markup=False)
            return
        _common.out_console.print(
            f"{report.supplier}: {report.statements} statement(s), applied to {len(report.applied)} component(s) "
            f"of registered releases, {len(report.accepted)} accepted as decisions, {len(report.conflicts)} "
            "conflict(s)",
            markup=False,
        )
        for a in report.applied:
            _common.out_console.print(
                f"  release {a.release_id} {a.component} {a.statement.vuln_id}: {a.statement.analysis.state}",
                markup=False,
            )
        for c in report.conflicts:
            _common.out_console.print(f"  conflict: {c}", markup=False)

    for s in report.skipped:
        _common.err_console.print(f"warning: {s}", markup=False)
    if not report.applied and not report.already_imported:
        _common.err_console.print(
            f"warning: no statement of {args.file} matches a registered release's component", markup=False
        )
    emit(args, report.as_dict(), human)
    return EXIT_OK


def _vex_import(args: argparse.Namespace) -> int:
    from medfw.vuln.vex import read_vex_document  # noqa: PLC0415

    doc = read_vex_document(read_bytes(args.file, what="VEX document"), args.file)
    own = all(p.bom_link for st in doc.statements for p in st.products)
    if own and not args.supplier and not args.accept and not args.policy:
        return _own(args, doc)
    return _supplier(args, doc)


def _statements(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.supplier_query import supplier_statements  # noqa: PLC0415

    index = open_index(args.db)
    try:
        rows = supplier_statements(index, args.release)
    finally:
        index.close()

    def human() -> None:
        if not rows:
            _common.out_console.print("no supplier statement applies to a registered release", markup=False)
        for r in rows:
            mark = "accepted" if r["accepted"] else f"not accepted (decision: {r['manufacturer_decision'] or 'none'})"
            _common.out_console.print(
                f"release {r['release_id']} {r['component']} {r['vuln_id']}: {r['supplier']} says {r['state']} "
                f"({r['document']['format']} {r['document']['doc_id']}, {r['document']['doc_date']}) — {mark}",
                markup=False,
            )

    emit(args, {"statements": rows}, human)
    return EXIT_OK


def register_vex_import(vex: Any) -> None:
    """Register ``vuln vex import`` and ``vuln vex statements``."""
    p = vex.add_parser(
        "import",
        help="import VEX: own decisions (BOM-Link products) or a supplier's OpenVEX / CycloneDX / CSAF 2.0 VEX",
    )
    p.add_argument("file", metavar="F", help="VEX document (CycloneDX or OpenVEX)")
    p.add_argument("--supplier", metavar="NAME", help="import as this supplier's statements (default: by product)")
    p.add_argument("--accept", action="store_true", help="accept the supplier's statements as decisions")
    p.add_argument("--policy", metavar="F", help="YAML acceptance policy: accept: [{supplier: NAME, states: […]}]")
    p.add_argument(
        "--author",
        default=default_author(),
        metavar="A",
        help="who accepts (recorded on decisions; default: user:<login name>)",
    )
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_vex_import)
    p = vex.add_parser("statements", help="supplier statements applied to the registered releases, with provenance")
    p.add_argument("--release", type=int, metavar="ID", help="only this registered release")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_statements)
