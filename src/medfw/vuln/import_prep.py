"""Everything an import derives from a parsed record before it touches the database (pure, picklable).

:func:`prepare_records` turns normalized records into :class:`PreparedRecord` rows: canonical JSON and its hash
(what change detection compares), the compressed record, the ``vuln_match`` rows (:mod:`medfw.vuln.match_rows`),
the whole-record match data where a scan needs it and the triage data (:mod:`medfw.vuln.prepared`).
:func:`prepare_file` reads and parses one feed file and prepares its records; :func:`prepared_files` runs it for
many files in worker processes (large imports on several cores), yielding the results in file order so the
importer applies them in one transaction, exactly as it applies files it prepared itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from medfw._io import read_bytes
from medfw.errors import FeedError
from medfw.vuln.feeds import FeedRecord, ParseResult, Skip
from medfw.vuln.feeds.cve5 import parse_cve5
from medfw.vuln.feeds.nvd import parse_nvd
from medfw.vuln.feeds.osv import parse_osv, parse_osv_zip
from medfw.vuln.feeds.vendor import parse_vendor
from medfw.vuln.gcpause import gc_paused
from medfw.vuln.index import RECORD_COLUMNS, canonical_json, content_hash, pack_record
from medfw.vuln.match_rows import RowTuple, match_tuples
from medfw.vuln.prepared import dumps, match_data, triage_data

__all__ = ["PreparedFile", "PreparedRecord", "prepare_file", "prepare_records", "prepared_files"]

_MAX_FEED = 2 * 1024 * 1024 * 1024
_RECORD_WIDTH = len(RECORD_COLUMNS)
_WORKER_NICE = 5


class PreparedRecord(NamedTuple):
    """One record ready to be written: the ``vuln_record`` values (in :data:`medfw.vuln.index.RECORD_COLUMNS`
    order) and its ``vuln_match`` rows. A tuple: worker processes hand thousands of them over by pickle."""

    rid: str
    source: str
    record_id: str
    vuln_id: str
    modified: str
    content_hash: str
    has_config: bool
    data: bytes
    match: bytes | None
    triage: bytes
    rows: list[RowTuple]

    def record_row(self) -> tuple[Any, ...]:
        """The ``vuln_record`` row, in :data:`medfw.vuln.index.RECORD_COLUMNS` order."""
        return self[:_RECORD_WIDTH]


@dataclass
class PreparedFile:
    """A parsed and prepared feed file."""

    records: list[PreparedRecord] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


def _parse_osv_any(raw: bytes, path: str) -> ParseResult:
    if raw[:4] == b"PK\x03\x04" or path.endswith(".zip"):
        return parse_osv_zip(raw, path)
    return parse_osv(raw, path)


_PARSERS: dict[str, Callable[[bytes, str], ParseResult]] = {
    "nvd": parse_nvd,
    "cve5": parse_cve5,
    "osv": _parse_osv_any,
    "vendor": parse_vendor,
}


def prepare_records(records: Iterable[FeedRecord]) -> list[PreparedRecord]:
    """Prepare records; of several with one rid, the last counts (as a feed's later entry replaces an earlier)."""
    latest: dict[str, FeedRecord] = {}
    for rec in records:
        latest[f"{rec.source}|{rec.record_id}"] = rec
    out: list[PreparedRecord] = []
    for rid, rec in latest.items():
        canon = canonical_json(rec.data)
        found, tree = match_tuples(rec.data)
        extra = (rid, rec.vuln_id, rec.source)
        out.append(
            PreparedRecord(
                rid,
                rec.source,
                rec.record_id,
                rec.vuln_id,
                rec.modified,
                content_hash(canon),
                bool(rec.data.get("configurations")),
                pack_record(canon),
                dumps(match_data(rec.data)) if tree else None,
                dumps(triage_data(rec.data)),
                [m[:1] + extra + m[1:] for m in found],
            )
        )
    return out


def prepare_file(kind: str, path: str, in_dir: bool) -> PreparedFile:
    """Read, parse and prepare one record feed file (``nvd``, ``cve5``, ``osv``, ``vendor``).

    Inside a directory, a JSON document that is not an NVD feed (an ``index.json``, a schema) is a skipped file.

    Raises:
        FeedError: the file is of the wrong format or truncated.
    """
    raw = read_bytes(path, max_length=_MAX_FEED, what=f"{kind} feed")
    with gc_paused():  # a file's decoded JSON and rows are acyclic: see medfw.vuln.gcpause
        try:
            result = _PARSERS[kind](raw, path)
        except FeedError as e:
            if not in_dir or "not an NVD feed" not in e.message:
                raise
            result = ParseResult(skips=[Skip(Path(path).name, e.message, path)])
        return PreparedFile(prepare_records(result.records), result.skips)


def _yield_to_writer() -> None:
    """A worker runs at a lower CPU priority than the process that writes (the serial stage of an import)."""
    with contextlib.suppress(OSError):
        os.nice(_WORKER_NICE)


def prepared_files(plan: Sequence[tuple[str, str, bool]], workers: int) -> Generator[PreparedFile, None, None]:
    """:func:`prepare_file` for each (kind, path, in_dir) of ``plan``, in worker processes, yielded in plan order
    (at most ``2 × workers`` files prepared ahead, so memory stays bounded)."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_yield_to_writer) as pool:
        pending: list[concurrent.futures.Future[PreparedFile]] = []
        todo = iter(plan)
        for item in todo:
            pending.append(pool.submit(prepare_file, *item))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(prepare_file, *nxt))
            yield done
