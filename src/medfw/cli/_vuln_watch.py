"""``medfw vuln release|releases|rescan|history|alerts``: postmarket surveillance commands."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_json_flag, audit_sink, emit, print_table
from medfw.cli._vuln_feed import add_db
from medfw.cli._vuln_fleet import add_fleet_flags, fleet_view
from medfw.errors import EXIT_FAILED, EXIT_OK
from medfw.vuln import alerts as _alerts
from medfw.vuln.freshness import check_max_age, parse_age
from medfw.vuln.gate import parse_fail_on

if TYPE_CHECKING:
    from medfw.vuln.postmarket import RescanReport

__all__ = ["register_watch"]


def _user() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def _close(sink: Any) -> None:
    close = getattr(sink, "close", None)
    if callable(close):
        close()


def _releases(args: argparse.Namespace) -> int:
    from rich.table import Table  # noqa: PLC0415

    from medfw.vuln.formats.csaf import sbom_version  # noqa: PLC0415
    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs
    from medfw.vuln.postmarket import retire_release  # noqa: PLC0415
    from medfw.vuln.sbom_input import read_sbom  # noqa: PLC0415

    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        changed = None
        if args.retire or args.unretire:
            changed = retire_release(
                index, args.retire or args.unretire, by=args.by, reason=args.reason or "", sink=sink,
                undo=bool(args.unretire),
            )  # fmt: skip
        rows = []
        for r in index.releases():
            scans = index.scans(int(r["id"]))
            open_alerts = _alerts.open_alerts(index, int(r["id"]))
            rows.append(
                {
                    **{k: v for k, v in r.items() if k != "sbom"},
                    "version": sbom_version(read_sbom(bytes(r["sbom"]), f"release {r['id']}")),
                    "scans": len(scans),
                    "last_scan": scans[-1]["scanned_at"] if scans else None,
                    "open_alerts": len(open_alerts),
                }
            )
    finally:
        index.close()
        _close(sink)

    def human() -> None:
        if changed is not None:
            what = "monitored again" if args.unretire else "retired from monitoring"
            _common.out_console.print(f"release {changed['id']} {what}", markup=False)
        table = Table(title=f"{len(rows)} release(s)")
        for col in ("id", "name", "serial", "added", "retired", "scans", "last scan", "open alerts"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["id"]), r["name"], r["serial"], r["added_at"], r["retired_at"] or "–", str(r["scans"]),
                r["last_scan"] or "–", str(r["open_alerts"]),
            )  # fmt: skip
        print_table(table)

    emit(args, {"releases": rows, "changed": changed}, human)
    return EXIT_OK


def _print_rescan(report: RescanReport) -> None:
    if not report.releases:
        _common.out_console.print("no releases monitored (medfw vuln release add SBOM)")
    for d in report.releases:
        _common.out_console.print(
            f"release {d.release_id} {d.name or d.serial}: {d.total} finding(s), {len(d.new)} new, {len(d.gone)} gone;"
            f" alerts: {len(d.opened)} opened, {len(d.closed)} closed, {len(d.open)} open",
            markup=False,
        )
        for a in d.open:
            det = a.detail
            extra = f" due {det['due_date']}" if det.get("due_date") else ""
            _common.out_console.print(
                f"  alert {a.id} [{a.kind.value}] {a.vuln_id} on {a.component_ref}: {det.get('severity')}"
                f" ({det.get('severity_source') or 'unscored'}){extra}, open since {a.opened_at}",
                markup=False,
            )
        for n in d.no_data:
            _common.out_console.print(f"  no feed data: {n.name} {n.version}", markup=False)


def _rescan(args: argparse.Namespace) -> int:
    from medfw.vuln.postmarket import rescan  # noqa: PLC0415

    rules = parse_fail_on(args.fail_on)
    view = fleet_view(args)
    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs

    index = open_index(args.db)
    sink = audit_sink(args)
    exposures: list[Any] = []
    try:
        if args.max_feed_age:
            check_max_age(index, parse_age(args.max_feed_age))
        report = rescan(index, epss_threshold=args.epss_threshold, sink=sink)
        if view is not None:
            from medfw.vuln.exposure import exposure  # noqa: PLC0415

            alerted = {a.vuln_id for d in report.releases for a in d.open}
            exposures = [e for e in exposure(index, view) if e.vuln_id in alerted]
    finally:
        index.close()
        _close(sink)
    failing = report.failing(rules)
    gaps = [n for d in report.releases for n in d.no_data] if "no-data" in {r.value for r in rules} else []
    if args.notify:
        from medfw.vuln.notify import notify_all  # noqa: PLC0415 - loaded only when notifying

        notify_all(
            args.notify, report, key_file=args.notify_key_file, mail_to=args.mail_to or (), mail_from=args.mail_from
        )
    data = {**report.as_dict(), "failing_alerts": [a.id for a in failing]}
    if view is not None:
        data["exposure"] = [e.as_dict() for e in exposures]

    def human() -> None:
        _print_rescan(report)
        for e in exposures:
            _common.out_console.print(f"alert: {e.alert()}", markup=False)

    emit(args, data, human)
    if failing:
        _common.err_console.print(
            f"{len(failing)} open alert(s) fail the job (close them with a decision or medfw vuln alerts ack)",
            markup=False,
        )
    if gaps:
        _common.err_console.print(f"{len(gaps)} component(s) with no feed data fail --fail-on no-data", markup=False)
    return EXIT_FAILED if failing or gaps else EXIT_OK


def _history(args: argparse.Namespace) -> int:
    from rich.table import Table  # noqa: PLC0415

    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs
    from medfw.vuln.postmarket import release_history  # noqa: PLC0415

    index = open_index(args.db)
    try:
        doc = release_history(index, args.release)
    finally:
        index.close()

    def human() -> None:
        rel = doc["release"]
        _common.out_console.print(f"release {rel['id']} {rel['name']} ({rel['serial']})", markup=False)
        table = Table()
        for col in ("scan", "at", "findings", "unhandled", "KEV", "no data", "alerts raised", "feed snapshot"):
            table.add_column(col)
        for s in doc["scans"]:
            c = s["counts"]
            feed = ", ".join(f"{k} {v.get('version') or v.get('updated_at', '')}" for k, v in sorted(s["feed"].items()))
            table.add_row(
                str(s["id"]), s["scanned_at"], str(c.get("findings", "")), str(c.get("unhandled", "")),
                str(c.get("kev", "")), str(c.get("no_data", "")), str(len(s["alerts_raised"])), feed or "–",
            )  # fmt: skip
        print_table(table)
        for a in doc["alerts_closed"]:
            _common.out_console.print(
                f"closed alert {a['id']} [{a['kind']}] {a['vuln_id']}: {a['close_reason']} by {a['closed_by']}"
                f" at {a['closed_at']}",
                markup=False,
            )

    emit(args, doc, human)
    return EXIT_OK


def _alerts_cmd(args: argparse.Namespace) -> int:

    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs

    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        if args.ack:
            now = dt.datetime.now(dt.UTC)
            closed = _alerts.acknowledge(index, args.ack, by=args.by, reason=args.reason or "", now=now)
            from medfw.audit.sink import AuditEvent  # noqa: PLC0415

            for a in closed:
                sink.record(
                    AuditEvent(
                        type="vuln.alert", outcome="success", reason="acknowledged", actor=args.by,
                        objects={"component": a.component_ref, "vulnerability": a.vuln_id},
                        data={"alert_id": a.id, "release_id": a.release_id, "kind": a.kind.value,
                              "reason": args.reason},
                    )
                )  # fmt: skip
        rows = _alerts.list_alerts(index, include_closed=args.all)
    finally:
        index.close()
        _close(sink)

    def human() -> None:
        for a in rows:
            state = f"closed {a.closed_at} ({a.close_reason})" if a.closed_at else "open"
            _common.out_console.print(
                f"alert {a.id} release {a.release_id} [{a.kind.value}] {a.vuln_id} on {a.component_ref}: {state}",
                markup=False,
            )
        if not rows:
            _common.out_console.print("no open alerts")

    emit(args, {"alerts": [a.as_dict() for a in rows]}, human)
    return EXIT_OK


def register_watch(group: Any, add_gate_flags: Callable[..., None]) -> None:
    """Register the postmarket commands."""
    p = group.add_parser("releases", help="list monitored releases; retire one from monitoring")
    p.add_argument("--retire", metavar="RELEASE", help="stop monitoring this release (id, serial or name)")
    p.add_argument("--unretire", metavar="RELEASE", help="monitor a retired release again")
    p.add_argument("--reason", metavar="TEXT", help="why (required with --retire/--unretire)")
    p.add_argument("--by", default=_user(), metavar="A", help="who (default: the current user)")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_releases)

    p = group.add_parser("rescan", help="rescan every monitored release; exit 1 while a risk-change alert is open")
    add_gate_flags(p, default=None)
    add_fleet_flags(p, required=False)
    p.add_argument("--epss-threshold", type=float, default=_alerts.EPSS_THRESHOLD, metavar="P",
                   help="alert when EPSS crosses P (default 0.1)")  # fmt: skip
    p.add_argument("--notify", action="append", metavar="TARGET",
                   help="send the alert document when alerts open or close: webhook=URL or smtp=HOST:PORT")  # fmt: skip
    p.add_argument("--notify-key-file", metavar="F", help="HMAC-SHA256 key for signing webhook bodies")
    p.add_argument("--mail-to", action="append", metavar="ADDR", help="recipient of smtp notifications (repeatable)")
    p.add_argument("--mail-from", default="medfw@localhost", metavar="ADDR", help="sender of smtp notifications")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_rescan)

    p = group.add_parser("history", help="every scan of a release: counts, alerts raised and closed, feed snapshot")
    p.add_argument("release", metavar="RELEASE", help="release id, serial or name")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_history)

    p = group.add_parser("alerts", help="list open risk-change alerts; acknowledge (close) them")
    p.add_argument("--ack", type=int, action="append", metavar="ID", help="acknowledge alert ID (repeatable)")
    p.add_argument("--reason", metavar="TEXT", help="why the alerts are acknowledged (required with --ack)")
    p.add_argument("--by", default=_user(), metavar="A", help="who (default: the current user)")
    p.add_argument("--all", action="store_true", help="include closed alerts")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_alerts_cmd)
