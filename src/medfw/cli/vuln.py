"""``medfw vuln``: feed import, scanning, decisions, VEX and postmarket rescans (thin layer over medfw.vuln)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from medfw._io import atomic_write_text, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, no_teardown, print_table
from medfw.cli._vuln_advisory import register_advisory
from medfw.cli._vuln_decide import default_author, register_decide, register_release_add
from medfw.cli._vuln_feed import add_db, register_feed
from medfw.cli._vuln_fleet import register_exposure
from medfw.cli._vuln_vex import register_vex_import
from medfw.cli._vuln_watch import register_watch
from medfw.errors import EXIT_FAILED, EXIT_OK
from medfw.vuln import formats, read_sbom
from medfw.vuln import scanner as _scanner
from medfw.vuln.formats import Kind
from medfw.vuln.freshness import check_max_age, parse_age
from medfw.vuln.gate import FailOn, failing_findings, parse_fail_on
from medfw.vuln.gcpause import gc_paused
from medfw.vuln.model import Finding, ScanResult
from medfw.vuln.scan_index import open_scan_index

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["register"]

_TABLE = "table"


def _table(result: ScanResult, console: Console | None = None) -> None:
    from rich.table import Table  # noqa: PLC0415 - rich is loaded for a table only

    console = console or _common.out_console
    s = result.sbom
    table = Table(title=f"{s.name or 'SBOM'} — {len(result.findings)} findings")
    for col in ("#", "vulnerability", "component", "severity", "score", "KEV", "EPSS", "why", "decision"):
        if col == "vulnerability":
            table.add_column(col, no_wrap=True, min_width=16)
        else:
            table.add_column(col, overflow="fold")
    for f in result.findings:
        first = f.why[0]
        why = f"{first.source}: {first.criterion.removeprefix('cpe:2.3:')} [{first.bound}]"
        dec = "—" if f.decision is None else f"{f.decision.state} {f.decision.justification or ''}".strip()
        table.add_row(
            str(f.priority),
            f.vuln_id,
            f"{f.component_name} {f.component_version}",
            f"{f.severity} ({f.severity_source})" if f.severity_source else f"{f.severity}: {f.unscored_reason}",
            "" if f.score is None else f"{f.score:.1f}",
            "yes" if f.kev else "",
            "" if f.epss is None else f"{f.epss:.3f}",
            why,
            dec,
        )
    print_table(table, console)
    for n in result.no_data:
        ids = ", ".join(n.identifiers) or "no identifiers"
        console.print(f"no feed data: {n.name} {n.version} ({ids}): {n.reason}", markup=False)
    console.print(f"feed snapshot: {feed_line(result.feed)}", markup=False)
    for warning in result.warnings:
        _common.err_console.print(f"warning: {warning}", markup=False)


def _scan(args: argparse.Namespace) -> int:
    # the whole command with the collector paused: its result is thousands of acyclic findings and report dicts
    # (see medfw.vuln.gcpause), all freed when _scan_paused returns, before collections resume
    with gc_paused():
        return _scan_paused(args)


def _scan_paused(args: argparse.Namespace) -> int:
    sbom = read_sbom(read_bytes(args.sbom, what="SBOM"), args.sbom)
    overlays = []
    if args.vex:
        from medfw.vuln.vex import read_vex  # noqa: PLC0415
    for v in args.vex or []:
        overlays.extend(read_vex(read_bytes(v, what="VEX document"), v))
    rules = parse_fail_on(args.fail_on)
    index = open_scan_index(args.db)
    try:
        if args.max_feed_age:
            check_max_age(index, parse_age(args.max_feed_age))
        result = _scanner.scan(index, sbom, vex=overlays)
        supplier = _supplier_statements(index, sbom)
    finally:
        index.close()
    fmt = args.format
    render = None if fmt == _TABLE else formats.get(fmt, Kind.REPORT).report
    text: str | None = None if render is None else render(result)
    if args.out:
        if text is None:
            buffer = io.StringIO()
            from rich.console import Console  # noqa: PLC0415

            _table(result, Console(file=buffer, width=160, highlight=False, soft_wrap=False))
            text = buffer.getvalue()
        atomic_write_text(args.out, text)
    if supplier and not args.json:
        _common.err_console.print(
            f"{len(supplier)} supplier statement(s) apply to this SBOM, apart from your decisions "
            "(--json, or medfw vuln vex statements)",
            markup=False,
        )
    if args.json:
        emit(args, {**result.as_dict(), "supplier_statements": supplier})
    elif args.out:
        pass
    elif text is not None:
        _common.out_console.file.write(text)
        _common.out_console.file.flush()
    else:
        _table(result)
    failing = failing_findings(result.findings, rules)
    gaps = list(result.no_data) if FailOn.NO_DATA in rules else []
    _record_scan(args, result, failing)
    if failing:
        _common.err_console.print(
            f"{len(failing)} unhandled finding(s) fail --fail-on {args.fail_on}: "
            + ", ".join(f"{f.key} ({f.severity})" for f in failing[:10]),
            markup=False,
        )
    if gaps:
        _common.err_console.print(
            f"{len(gaps)} component(s) with no feed data fail --fail-on no-data: "
            + ", ".join(f"{n.name} {n.version}" for n in gaps),
            markup=False,
        )
    return EXIT_FAILED if failing or gaps else EXIT_OK


def feed_line(feed: Mapping[str, Mapping[str, Any]]) -> str:
    """One line naming each source's last update (and KEV catalog / EPSS model version) a result used."""
    if not feed:
        return "no feed data imported"
    parts = []
    for name, st in sorted(feed.items()):
        version = f" {st['version']}" if st.get("version") else ""
        parts.append(f"{name}{version} updated {st['updated_at']}")
    return "; ".join(parts)


def _supplier_statements(index: Any, sbom: Any) -> list[dict[str, Any]]:
    """Stored supplier statements that apply to the scanned SBOM (shown apart from the decisions)."""
    from medfw.vuln.supplier_query import supplier_statements  # noqa: PLC0415

    return supplier_statements(index, sboms=[(0, sbom)])


def _close(sink: AuditSink) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        close()


def _record_scan(args: argparse.Namespace, result: ScanResult, failing: list[Finding]) -> None:
    sink = audit_sink(args)
    try:
        counts: dict[str, int] = {}
        for f in result.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        sink.record(
            AuditEvent(
                type="vuln.scan",
                outcome="failure" if failing else "success",
                reason=f"fail_on_{args.fail_on}" if failing else None,
                actor="medfw vuln scan",
                objects={"sbom_serial": result.sbom.serial, "sbom_sha256": result.sbom.sha256},
                data={
                    "findings": len(result.findings),
                    "unhandled": sum(1 for f in result.findings if not f.handled),
                    "kev": sum(1 for f in result.findings if f.kev),
                    "by_severity": counts,
                    "gate_failures": [f.key for f in failing[:50]],
                },
            )
        )
    finally:
        _close(sink)


def _vex_export(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.decisions import decision_history  # noqa: PLC0415
    from medfw.vuln.vex import export_vex  # noqa: PLC0415

    sbom = read_sbom(read_bytes(args.sbom, what="SBOM"), args.sbom)
    index = open_index(args.db)
    try:
        history = decision_history(index, sbom.serial)
    finally:
        index.close()
    doc = export_vex(sbom, history, args.format, author=args.author)
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    statements = len(doc.get("vulnerabilities", doc.get("statements", [])))
    emit(
        args,
        {"out": args.out, "format": args.format, "statements": statements, "sbom_serial": sbom.serial},
        lambda: _common.out_console.print(
            f"wrote {args.format} VEX with {statements} statement(s) to {args.out}", markup=False
        ),
    )
    return EXIT_OK


def register(sub: Any) -> None:
    """Register the ``vuln`` command group."""
    group = add_group(sub, "vuln", "vulnerability management: feeds, scans, decisions, VEX, rescans")

    register_feed(group)

    p = group.add_parser("scan", help="match an SBOM against the index")
    p.add_argument("sbom", metavar="SBOM", help="CycloneDX JSON SBOM")
    p.add_argument("--vex", action="append", metavar="VEX", help="apply decisions from a VEX document (repeatable)")
    p.add_argument("--format", choices=(_TABLE, *formats.names(Kind.REPORT)), default=_TABLE, help="report format")
    add_gate_flags(p)
    p.add_argument("--out", metavar="F", help="write the report to F instead of stdout")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_scan)
    no_teardown(p)

    register_decide(group)

    vex = add_group(group, "vex", "VEX documents")
    p = vex.add_parser("export", help="export the SBOM's decisions as VEX")
    p.add_argument("sbom", metavar="SBOM", help="SBOM of the release")
    p.add_argument("--format", required=True, choices=formats.names(Kind.VEX), help="VEX format")
    p.add_argument("--out", required=True, metavar="F", help="where to write the VEX document")
    p.add_argument(
        "--author",
        default=default_author(),
        metavar="A",
        help="document author (OpenVEX author, CSAF publisher; default: user:<login name>)",
    )
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_vex_export)
    register_vex_import(vex)

    rel = add_group(group, "release", "released SBOMs under postmarket surveillance")
    register_release_add(rel)

    register_exposure(group)
    register_advisory(group)
    register_watch(group, add_gate_flags)


def add_gate_flags(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """Add ``--fail-on RULES`` and ``--max-feed-age AGE``."""
    p.add_argument(
        "--fail-on",
        metavar="RULES",
        default=default,
        help="exit 1 on unhandled findings matching any rule: critical, high, medium, low (unscored findings fail "
        "every severity rule), unscored, kev, no-data" + (", new, alert" if default else ""),
    )
    p.add_argument(
        "--max-feed-age",
        metavar="AGE",
        help="exit 1 instead of reporting when a feed source is older than AGE (90m, 12h, 2d, 1w)",
    )
