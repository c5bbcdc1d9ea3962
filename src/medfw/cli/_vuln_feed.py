"""``medfw vuln feed``: import local feed files, sync from upstreams or mirrors, show freshness."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw._io import read_bytes
from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, print_table
from medfw.dburl import parse_db_url
from medfw.errors import EXIT_OK, ConfigError, UsageError
from medfw.vuln.freshness import feed_states, format_age
from medfw.vuln.scan_index import DEFAULT_DB

if TYPE_CHECKING:
    from rich.progress import Progress

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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_common.err_console,
        transient=True,
        disable=bool(getattr(args, "json", False)) or not _common.err_console.is_terminal,
    )


def _holds_data(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            tables = ("vuln_record", "kev", "epss", "feed_state")
            return any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in tables)  # noqa: S608
    except sqlite3.Error:
        return False


@contextlib.contextmanager
def _new_db_removed_on_failure(db: str | None, *, keep_committed: bool = False) -> Iterator[None]:
    """Remove an SQLite index this command created when the command fails (never leave an empty database).

    With ``keep_committed`` (sync), a database holding committed pages is kept: the next sync resumes from it.
    """
    loc = parse_db_url(db or os.environ.get("MEDFW_VULN_DB") or DEFAULT_DB)
    path = Path(loc.sqlalchemy.removeprefix("sqlite:///")) if loc.dialect == "sqlite" else None
    created = path is not None and not path.exists()
    try:
        yield
    except BaseException:
        if created and path is not None and not (keep_committed and _holds_data(path)):
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
                p.unlink(missing_ok=True)
        raise


def _feed_import(args: argparse.Namespace) -> int:
    with _new_db_removed_on_failure(args.db):
        return _feed_import_into(args)


def _feed_import_into(args: argparse.Namespace) -> int:
    from rich.table import Table  # noqa: PLC0415

    from medfw.vuln.importer import import_feeds  # noqa: PLC0415
    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs

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
        print_table(table)
        for s in report.skips[:20]:
            _common.out_console.print(f"skipped {s.record_id}: {s.reason}", markup=False)
        if len(report.skips) > 20:
            _common.out_console.print(f"… and {len(report.skips) - 20} more skipped (see --json)")

    emit(args, report.as_dict(), human)
    return EXIT_OK


def _feed_status(args: argparse.Namespace) -> int:
    from rich.table import Table  # noqa: PLC0415

    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs

    index = open_index(args.db)
    try:
        states = [s for s in feed_states(index) if s.updated_at > "1970-01-01T00:00:00+00:00"]
    finally:
        index.close()
    now = dt.datetime.now(dt.UTC)

    def human() -> None:
        if not states:
            _common.out_console.print("no feed imported or synced yet (medfw vuln feed sync / feed import)")
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
        print_table(table)

    emit(args, {"sources": [s.as_dict(now) for s in states]}, human)
    return EXIT_OK


def _sync_config(args: argparse.Namespace) -> Any:
    import yaml  # noqa: PLC0415

    from medfw.vuln.feeds.sync import SOURCES, SyncConfig  # noqa: PLC0415 - loaded only for sync

    doc: dict[str, Any] = {}
    path = args.config or os.environ.get("MEDFW_VULN_SYNC_CONFIG")
    if path:
        loaded = yaml.safe_load(read_bytes(path, max_length=1 << 20, what="sync config"))
        if not isinstance(loaded, dict):
            raise ConfigError("sync config must be a mapping (mirrors, osv_ecosystems, nvd_api_key_file)", path=path)
        unknown = sorted(set(loaded) - {"mirrors", "osv_ecosystems", "nvd_api_key_file"})
        if unknown:
            raise ConfigError(f"unknown key {unknown[0]!r} in sync config", path=path, field=unknown[0])
        doc = loaded
    mirrors = {str(k): str(v) for k, v in (doc.get("mirrors") or {}).items()}
    for m in args.mirror or []:
        source, sep, base = m.partition("=")
        if not sep or not base:
            raise UsageError(f"--mirror takes SOURCE=URL or SOURCE=DIR, got {m!r}", field="--mirror")
        mirrors[source] = base
    for source in mirrors:
        if source not in SOURCES:
            raise UsageError(f"unknown feed source {source!r} in a mirror (one of {', '.join(SOURCES)})")
    key = os.environ.get("MEDFW_NVD_API_KEY") or None
    key_file = args.nvd_api_key_file or doc.get("nvd_api_key_file")
    if key_file:
        key = read_bytes(str(key_file), max_length=4096, what="NVD API key").decode("ascii", "replace").strip()
        if not key:
            raise ConfigError("NVD API key file is empty", path=str(key_file))
    ecos = tuple(args.osv_ecosystem or doc.get("osv_ecosystems") or ("OSS-Fuzz",))
    return SyncConfig(mirrors=mirrors, nvd_api_key=key, osv_ecosystems=ecos, nvd_page_size=args.page_size)


def _feed_sync(args: argparse.Namespace) -> int:
    config = _sync_config(args)
    with _new_db_removed_on_failure(args.db, keep_committed=True):
        return _feed_sync_into(args, config)


def _feed_sync_into(args: argparse.Namespace, config: Any) -> int:
    from medfw.vuln.feeds.sync import SOURCES, sync_feeds  # noqa: PLC0415 - loaded only for sync

    sources = args.source or list(SOURCES)
    from medfw.vuln.index import open_index  # noqa: PLC0415 - SQLAlchemy, when the command runs

    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        with progress_bar(args) as progress:
            task = progress.add_task("syncing", total=None)

            def advance(source: str, done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, description=f"syncing {source}")

            report = sync_feeds(index, sources, config=config, sink=sink, progress=advance)
    finally:
        index.close()
        close = getattr(sink, "close", None)
        if callable(close):
            close()

    def human() -> None:
        for source in report.sources:
            c = report.report.counts.get(source, {})
            counts = ", ".join(f"{v} {k}" for k, v in c.items() if v)
            _common.out_console.print(
                f"{source}: synced from {config.base(source)} ({counts or 'no change'})", markup=False
            )

    emit(args, report.as_dict(), human)
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

    p = feed.add_parser("sync", help="fetch feeds from their upstreams, an internal mirror or a directory")
    p.add_argument("--source", action="append", choices=("nvd", "cve5", "osv", "kev", "epss"),
                   help="sync only this source (repeatable; default: all)")  # fmt: skip
    p.add_argument("--mirror", action="append", metavar="SOURCE=URL",
                   help="fetch SOURCE from URL, a file:// URL or a directory instead of its upstream")  # fmt: skip
    p.add_argument("--config", metavar="F", help="YAML: mirrors, osv_ecosystems, nvd_api_key_file "
                   "(default: $MEDFW_VULN_SYNC_CONFIG)")  # fmt: skip
    p.add_argument("--nvd-api-key-file", metavar="F", help="file holding the NVD API key (or $MEDFW_NVD_API_KEY)")
    p.add_argument("--osv-ecosystem", action="append", metavar="E", help="OSV ecosystem (default OSS-Fuzz)")
    p.add_argument("--page-size", type=int, default=2000, metavar="N", help="NVD resultsPerPage (max 2000)")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_feed_sync)

    p = feed.add_parser("status", help="show each source's last update, record count, version and data date")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_feed_status)
