"""``medfw vuln feed``: import local feed files, sync from upstreams or mirrors, show freshness."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medfw.cli._common import add_group, add_json_flag, emit, err_console, out_console
from medfw.errors import EXIT_OK
from medfw.vuln import import_feeds, open_index
from medfw.vuln.freshness import feed_states, format_age

__all__ = ["add_db", "register_feed"]


def add_db(p: argparse.ArgumentParser) -> None:
    """Add ``--db URL`` (the one database-URL convention, see :func:`medfw.vuln.index.resolve_db_url`)."""
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="index database: SQLite path, sqlite:///PATH or postgresql://… URL "
        "(default: $MEDFW_VULN_DB or ./medfw-vuln.db)",
    )


class _Bar:
    """Rich progress bar on stderr for feed imports."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("importing feeds", total=None)

    def start(self, total: int) -> None:
        self.progress.update(self.task, total=total)

    def advance(self, path: str) -> None:
        self.progress.update(self.task, advance=1, description=f"importing {os.path.basename(path)[:40]}")


def progress_bar(args: argparse.Namespace) -> Progress:
    """A transient progress bar on stderr, disabled with ``--json`` or when stderr is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=bool(getattr(args, "json", False)) or not err_console.is_terminal,
    )


def _feed_import(args: argparse.Namespace) -> int:
    index = open_index(args.db)
    try:
        with progress_bar(args) as progress:
            report = import_feeds(
                index,
                nvd=args.nvd or (),
                cve5=args.cve5 or (),
                osv=args.osv or (),
                kev=args.kev or (),
                epss=args.epss or (),
                vendor=args.vendor or (),
                progress=_Bar(progress),
            )
    finally:
        index.close()

    def human() -> None:
        table = Table(title=f"feed import: {report.files} files")
        for col in ("feed", "added", "updated", "unchanged", "stale", "skipped"):
            table.add_column(col, justify="left" if col == "feed" else "right")
        for kind, c in report.counts.items():
            table.add_row(kind, *(str(c.get(k, 0)) for k in ("added", "updated", "unchanged", "stale", "skipped")))
        out_console.print(table)
        for s in report.skips[:20]:
            out_console.print(f"skipped {s.record_id}: {s.reason}", markup=False)
        if len(report.skips) > 20:
            out_console.print(f"… and {len(report.skips) - 20} more skipped (see --json)")

    emit(args, report.as_dict(), human)
    return EXIT_OK


def _feed_status(args: argparse.Namespace) -> int:
    index = open_index(args.db)
    try:
        states = [s for s in feed_states(index) if s.updated_at > "1970-01-01T00:00:00+00:00"]
    finally:
        index.close()
    now = dt.datetime.now(dt.UTC)

    def human() -> None:
        if not states:
            out_console.print("no feed imported or synced yet (medfw vuln feed sync / feed import)")
            return
        table = Table(title="feed status")
        for col in ("source", "last update", "age", "how", "records", "version", "data date"):
            table.add_column(col)
        for s in states:
            table.add_row(
                s.source,
                s.updated_at,
                format_age(s.age(now)),
                f"{s.method} {s.location}",
                str(s.records),
                s.version or "–",
                s.data_date or "–",
            )
        out_console.print(table)

    emit(args, {"sources": [s.as_dict(now) for s in states]}, human)
    return EXIT_OK


def register_feed(group: Any) -> None:
    """Register ``vuln feed import|status|sync``."""
    feed = add_group(group, "feed", "vulnerability feeds")
    p = feed.add_parser("import", help="import feed files into the local index (incremental)")
    p.add_argument("--nvd", action="append", metavar="F", help="NVD API 2.0 / NVD-shaped JSON file or directory")
    p.add_argument("--cve5", action="append", metavar="DIR", help="CVE JSON 5 records (file or directory)")
    p.add_argument("--osv", action="append", metavar="DIR", help="OSV records, JSON/YAML or an all.zip (file or dir)")
    p.add_argument("--vendor", action="append", metavar="F", help="vendor vulnerability table (curl's)")
    p.add_argument("--kev", action="append", metavar="F", help="CISA KEV catalog JSON")
    p.add_argument("--epss", action="append", metavar="F", help="EPSS scores CSV (optionally .gz)")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_feed_import)

    p = feed.add_parser("status", help="show each source's last update, record count, version and data date")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_feed_status)
