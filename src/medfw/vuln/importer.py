"""Import feed files into the index, incrementally, in one transaction.

Each record's normalized content is hashed: a record whose hash is stored already is ``unchanged``; a changed
one is ``updated`` unless its modified time is older than the stored one (``stale``, kept as it was); records
violating their format are ``skipped`` with the reason. A file of the wrong format, or a truncated one, aborts
the whole import and rolls back everything (no partial import). Inside a directory, JSON documents of another
kind (an ``index.json``, a schema) are reported as skipped files instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, delete, insert, select, update

from medfw._io import read_bytes
from medfw.errors import FeedError, InputError
from medfw.vuln.feed_state_store import get_state, record_state
from medfw.vuln.feeds import ParseResult, Skip
from medfw.vuln.feeds.epss import EpssScores, parse_epss
from medfw.vuln.feeds.kev import KevCatalog, parse_kev
from medfw.vuln.gcpause import gc_paused
from medfw.vuln.import_prep import PreparedFile, PreparedRecord, prepare_file, prepare_records, prepared_files
from medfw.vuln.index import VulnIndex, content_hash
from medfw.vuln.schema import epss, kev

__all__ = ["FEED_KINDS", "ImportProgress", "ImportReport", "apply_epss", "apply_kev", "apply_records", "import_feeds"]

FEED_KINDS = ("nvd", "cve5", "osv", "vendor", "kev", "epss")
_MAX_FEED = 2 * 1024 * 1024 * 1024
_POOL_BYTES = 32 * 1024 * 1024
_PATTERNS = {
    "nvd": ("*.json", "*.json.gz"),
    "cve5": ("*.json",),
    "osv": ("*.json", "*.yaml", "*.yml", "*.zip"),
    "vendor": ("*.json",),
    "kev": ("*.json",),
    "epss": ("*.csv", "*.csv.gz"),
}


class ImportProgress(Protocol):
    """Receives progress: ``start(total_files)`` once, then ``advance(path)`` after each file."""

    def start(self, total: int) -> None:
        """Called once with the number of files."""

    def advance(self, path: str) -> None:
        """Called after each file."""


@dataclass
class ImportReport:
    """Counts per feed kind, and every skip with its reason."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    files: int = 0

    def bump(self, kind: str, what: str, n: int = 1) -> None:
        """Add ``n`` to a counter."""
        c = self.counts.setdefault(kind, {"added": 0, "updated": 0, "unchanged": 0, "stale": 0, "skipped": 0})
        c[what] = c.get(what, 0) + n

    def total(self, what: str) -> int:
        """Sum a counter over all kinds."""
        return sum(c.get(what, 0) for c in self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "files": self.files,
            "counts": self.counts,
            "skipped": [{"id": s.record_id, "reason": s.reason, "path": s.path} for s in self.skips],
        }


def _expand(kind: str, paths: Iterable[str]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files = sorted({f for pat in _PATTERNS[kind] for f in path.rglob(pat) if f.is_file()})
            out.extend((str(f), True) for f in files)
        elif path.exists():
            out.append((str(path), False))
        else:
            raise InputError(f"{kind} feed not found", path=str(path))
    return out


def apply_records(
    index: VulnIndex, conn: Connection, kind: str, result: ParseResult, report: ImportReport
) -> dict[str, int]:
    """Write parsed records (added / updated / unchanged / stale, see the module docstring) and count them."""
    return apply_prepared(index, conn, kind, PreparedFile(prepare_records(result.records), result.skips), report)


def apply_prepared(
    index: VulnIndex,
    conn: Connection,
    kind: str,
    prepared: PreparedFile,
    report: ImportReport,
    *,
    written: dict[str, tuple[str, str]] | None = None,
) -> dict[str, int]:
    """Write prepared records (see :mod:`medfw.vuln.import_prep`) and count them.

    ``written``, when given, stands for the stored records: the index held none when the transaction began and
    this dict (rid → content hash, modified) is every record written since, kept up to date here.
    """
    counts = {"added": 0, "updated": 0, "unchanged": 0, "stale": 0, "skipped": len(prepared.skips)}
    report.skips.extend(prepared.skips)
    if written is None:
        existing = index.existing(conn, [r.rid for r in prepared.records])
    else:
        existing = {r.rid: written[r.rid] for r in prepared.records if r.rid in written}
    new_rows: list[PreparedRecord] = []
    changed_rows: list[PreparedRecord] = []
    for rec in prepared.records:
        old = existing.get(rec.rid)
        if old is None:
            new_rows.append(rec)
            counts["added"] += 1
        elif old[0] == rec.content_hash:
            counts["unchanged"] += 1
        elif old[1] and (not rec.modified or rec.modified < old[1]):
            counts["stale"] += 1
        else:
            changed_rows.append(rec)
            counts["updated"] += 1
    index.write_records(conn, new_rows, replace=False)
    index.write_records(conn, changed_rows, replace=True)
    if written is not None:
        written.update((r.rid, (r.content_hash, r.modified)) for rows in (new_rows, changed_rows) for r in rows)
    for k, v in counts.items():
        report.bump(kind, k, v)
    return counts


def _check_kev_order(conn: Connection, cat: KevCatalog, path: str) -> None:
    old = get_state(conn, "kev")
    if old is None or not old.version:
        return
    if cat.date_released and old.data_date:
        older = (cat.date_released, cat.version) < (old.data_date, old.version)
    else:
        older = cat.version < old.version
    if older:
        raise FeedError(
            f"KEV catalog {cat.version} (released {cat.date_released or 'unknown'}) is older than the stored catalog "
            f"{old.version} (released {old.data_date or 'unknown'}); not applied",
            path=path,
            field="catalogVersion",
        )


def apply_kev(conn: Connection, cat: KevCatalog, path: str, report: ImportReport) -> dict[str, int]:
    """Replace the stored KEV catalog by ``cat`` (refusing a catalog older than the stored one).

    Raises:
        FeedError: ``cat`` is older than the stored catalog (nothing is changed).
    """
    _check_kev_order(conn, cat, path)
    report.skips.extend(cat.skips)
    counts = {"added": 0, "updated": 0, "unchanged": 0, "stale": 0, "skipped": len(cat.skips), "removed": 0}
    stored = {r.cve_id: r.content_hash for r in conn.execute(select(kev.c.cve_id, kev.c.content_hash))}
    for cve_id, entry in cat.entries.items():
        h = json.dumps(entry, sort_keys=True)
        digest = content_hash(entry)
        if cve_id not in stored:
            conn.execute(insert(kev).values(cve_id=cve_id, content_hash=digest, data=h))
            counts["added"] += 1
        elif stored[cve_id] != digest:
            conn.execute(update(kev).where(kev.c.cve_id == cve_id).values(content_hash=digest, data=h))
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    gone = sorted(set(stored) - set(cat.entries))
    for i in range(0, len(gone), 500):
        conn.execute(delete(kev).where(kev.c.cve_id.in_(gone[i : i + 500])))
    counts["removed"] = len(gone)
    for k, v in counts.items():
        report.bump("kev", k, v)
    return counts


def apply_epss(conn: Connection, scores: EpssScores, report: ImportReport) -> dict[str, int]:
    """Upsert EPSS scores and count them."""
    report.skips.extend(scores.skips)
    counts = {"added": 0, "updated": 0, "unchanged": 0, "stale": 0, "skipped": len(scores.skips)}
    ids = sorted(scores.scores)
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        old = {
            r.cve_id: (r.epss, r.percentile)
            for r in conn.execute(select(epss.c.cve_id, epss.c.epss, epss.c.percentile).where(epss.c.cve_id.in_(chunk)))
        }
        new_rows = []
        for cve_id in chunk:
            e, p = scores.scores[cve_id]
            if cve_id not in old:
                new_rows.append({"cve_id": cve_id, "epss": e, "percentile": p, "score_date": scores.score_date})
                counts["added"] += 1
            elif old[cve_id] != (e, p):
                conn.execute(
                    update(epss)
                    .where(epss.c.cve_id == cve_id)
                    .values(epss=e, percentile=p, score_date=scores.score_date)
                )
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        if new_rows:
            conn.execute(insert(epss), new_rows)
    for k, v in counts.items():
        report.bump("epss", k, v)
    return counts


def _import_file(
    index: VulnIndex,
    conn: Connection,
    kind: str,
    path: str,
    *,
    in_dir: bool,
    report: ImportReport,
    prepared: PreparedFile | None = None,
    written: dict[str, tuple[str, str]] | None = None,
) -> tuple[dict[str, int], dict[str, str]]:
    """Import one file (``prepared`` ahead by a worker, or here); return its counts and the freshness facts it
    carries (version, data date)."""
    if kind == "kev":
        raw = read_bytes(path, max_length=_MAX_FEED, what=f"{kind} feed")
        cat = parse_kev(raw, path)
        return apply_kev(conn, cat, path, report), {"version": cat.version, "data_date": cat.date_released}
    if kind == "epss":
        raw = read_bytes(path, max_length=_MAX_FEED, what=f"{kind} feed")
        scores = parse_epss(raw, path)
        return apply_epss(conn, scores, report), {"version": scores.model_version, "data_date": scores.score_date}
    prep = prepared if prepared is not None else prepare_file(kind, path, in_dir)
    return apply_prepared(index, conn, kind, prep, report, written=written), {}


def _workers(requested: int | None, plan: Sequence[tuple[str, str, bool]]) -> int:
    """Worker processes for preparing record files: as requested, else two on a multi-core machine when the
    import is large (several files, at least 32 MiB), none otherwise."""
    if requested is not None:
        return max(0, requested)
    size = sum(Path(p).stat().st_size for _, p, _ in plan)
    return min(2, os.cpu_count() or 1) if len(plan) >= 4 and size >= _POOL_BYTES else 0


def import_feeds(
    index: VulnIndex,
    *,
    nvd: Sequence[str] = (),
    cve5: Sequence[str] = (),
    osv: Sequence[str] = (),
    kev: Sequence[str] = (),
    epss: Sequence[str] = (),
    vendor: Sequence[str] = (),
    progress: ImportProgress | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Import feed files or directories into ``index`` in one transaction and report the counts.

    Each feed kind imported gets its freshness recorded (``feed_state``, method ``import``). Record files are
    parsed and prepared by ``workers`` processes ahead of the writes (default: two for a large import on a
    multi-core machine, see :func:`_workers`); the writes stay in this one transaction.

    Raises:
        InputError: a named path does not exist, or no feed was given.
        FeedError: a file is of the wrong format or truncated, or a KEV catalog is older than the stored one
            (nothing is imported then).
        StorageError: the database failed (nothing is imported then).
    """
    plan: list[tuple[str, str, bool]] = []
    for kind, paths in (("nvd", nvd), ("cve5", cve5), ("osv", osv), ("vendor", vendor), ("kev", kev), ("epss", epss)):
        plan.extend((kind, p, in_dir) for p, in_dir in _expand(kind, paths))
    if not plan:
        raise InputError("no feed files given (use --nvd, --cve5, --osv, --vendor, --kev or --epss)")
    report = ImportReport()
    if progress is not None:
        progress.start(len(plan))
    facts: dict[str, dict[str, str]] = {}
    locations: dict[str, list[str]] = {}
    records = [item for item in plan if item[0] not in ("kev", "epss")]
    n = _workers(workers, records)
    ahead = prepared_files(records, n) if n else None
    with contextlib.ExitStack() as stack:
        if ahead is not None:
            stack.enter_context(contextlib.closing(ahead))
        conn = stack.enter_context(index.transaction())
        stack.enter_context(gc_paused())  # unpickled prepared files are acyclic: see medfw.vuln.gcpause
        bulk = len(records) > 1 and stack.enter_context(index.bulk_load(conn))
        written: dict[str, tuple[str, str]] | None = {} if bulk else None
        for kind, path, in_dir in plan:
            prepared = next(ahead) if ahead is not None and kind not in ("kev", "epss") else None
            counts, fact = _import_file(
                index, conn, kind, path, in_dir=in_dir, report=report, prepared=prepared, written=written
            )
            facts.setdefault(kind, {}).update(fact)
            locations.setdefault(kind, []).append(path)
            index.log_import(conn, kind, path, counts)
            report.files += 1
            if progress is not None:
                progress.advance(path)
        _record_states(conn, facts, locations)
    return report


def _record_states(conn: Connection, facts: dict[str, dict[str, str]], locations: dict[str, list[str]]) -> None:
    """Each imported kind's freshness (``feed_state``, method ``import``)."""
    for kind, fact in facts.items():
        where = locations[kind][0] if len(locations[kind]) == 1 else f"{len(locations[kind])} files"
        record_state(
            conn, kind, method="import", location=where, version=fact.get("version"), data_date=fact.get("data_date")
        )
