"""``medfw vuln exposure``: open findings joined with the OTA server's devices, releases and rollouts."""

from __future__ import annotations

import argparse
import os
from typing import Any

from medfw._io import read_bytes
from medfw.cli import _common
from medfw.cli._common import add_json_flag, emit, print_table
from medfw.cli._vuln_feed import add_db
from medfw.errors import EXIT_OK, UsageError

__all__ = ["add_fleet_flags", "fleet_view", "register_exposure"]


def add_fleet_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    """Add ``--fleet URL`` / ``--fleet-db URL`` and ``--token-file F`` (token also from ``$MEDFW_OTA_TOKEN``)."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--fleet", metavar="URL", help="OTA server base URL (management API, reader token)")
    g.add_argument("--fleet-db", metavar="URL", help="OTA server database (SQLite path or postgresql://… URL)")
    p.add_argument("--token-file", metavar="F", help="file holding the API token (default: $MEDFW_OTA_TOKEN)")


def fleet_view(args: argparse.Namespace) -> Any:
    """The fleet the flags name, or None when none is named."""
    from medfw.vuln.fleet_view import fleet_from_api, fleet_from_db  # noqa: PLC0415

    if getattr(args, "fleet_db", None):
        return fleet_from_db(args.fleet_db)
    if not getattr(args, "fleet", None):
        return None
    if args.token_file:
        token = read_bytes(args.token_file, max_length=4096, what="token file").decode("utf-8", "replace").strip()
        if os.name == "posix" and os.stat(args.token_file).st_mode & 0o077:
            _common.err_console.print(f"warning: {args.token_file} is readable by others (chmod 600 it)", markup=False)
    else:
        token = os.environ.get("MEDFW_OTA_TOKEN", "")
    if not token:
        raise UsageError("no API token: set MEDFW_OTA_TOKEN or give --token-file", field="--token-file")
    return fleet_from_api(args.fleet, token)


def _exposure(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.exposure import exposure  # noqa: PLC0415

    view = fleet_view(args)
    index = open_index(args.db)
    try:
        rows = exposure(index, view, args.cve)
    finally:
        index.close()
    data = {"fleet": view.source, "vulnerabilities": [e.as_dict() for e in rows], "count": len(rows)}

    def human() -> None:
        if not rows:
            what = args.cve or "any open finding"
            _common.out_console.print(f"no registered release carries {what} open", markup=False)
            return
        from rich.table import Table  # noqa: PLC0415 - rich is loaded for a table only

        table = Table(title=f"exposure: {len(rows)} open vulnerabilities")
        for col in ("vulnerability", "severity", "devices", "affected releases", "fixed by"):
            table.add_column(col, overflow="fold")
        for e in rows:
            affected = ", ".join(f"{r.release.model} {r.release.version} ({len(r.devices)})" for r in e.releases)
            fixes = ", ".join(
                f"{f.release.version}" + (f" rollout {f.rollout.id} {f.rollout.state}" if f.rollout else "")
                for f in e.fixes
            )
            table.add_row(
                e.vuln_id, "KEV" if e.kev else e.severity, str(e.devices), affected or "not published", fixes or "—"
            )
        print_table(table)

    emit(args, data, human)
    return EXIT_OK


def register_exposure(group: Any) -> None:
    """Register ``vuln exposure``."""
    p = group.add_parser("exposure", help="which fielded devices run releases with open findings, and the fix")
    p.add_argument("cve", metavar="CVE", nargs="?", help="one vulnerability (default: every open finding)")
    add_fleet_flags(p, required=True)
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_exposure)
