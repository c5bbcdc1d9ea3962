"""NVD CVE API 2.0 sync: paged, rate-limited, incremental by modification window, resumable per page.

* Full first sync: ``resultsPerPage``/``startIndex`` paging until ``totalResults``; each page is one transaction
  that also stores the cursor, so a crash or Ctrl-C resumes from the last committed page.
* Incremental sync: from the start of the last successful sync, ``lastModStartDate``/``lastModEndDate`` windows of
  at most 120 days (NVD's limit) up to now, each paged the same way.
* The API key (``apiKey`` header) is never put in a URL, a message or a log.
* A directory (or ``file://``) mirror holds API 2.0 response files (``*.json``, ``*.json.gz``): each file is a
  page, applied in name order, resumable by file.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medfw.errors import FeedError
from medfw.vuln.feed_state_store import get_state, record_state, save_cursor
from medfw.vuln.feeds import load_json, maybe_gunzip
from medfw.vuln.feeds.fetch import Fetcher, RateLimit, is_local, local_path
from medfw.vuln.feeds.nvd import parse_nvd_doc
from medfw.vuln.gcpause import gc_paused
from medfw.vuln.import_prep import PreparedFile, prepare_records
from medfw.vuln.importer import ImportReport, apply_prepared
from medfw.vuln.index import VulnIndex

__all__ = ["NVD_API", "NvdSync", "nvd_rate_limit", "sync_nvd"]

NVD_API = "https://services.nvd.nist.gov/rest/json/cves/2.0"
_WINDOW = dt.timedelta(days=120)
#: a run with at least this many pages left is pipelined (pages fetched and prepared ahead of the writes)
_PIPELINE_PAGES = 8
_AHEAD = 4


def _fmt(t: dt.datetime) -> str:
    """NVD's date form, to the millisecond (a window start rounds down, so nothing between syncs is missed)."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+00:00"


@dataclass
class NvdSync:
    """What one NVD sync did."""

    pages: int = 0
    records: int = 0
    mode: str = ""
    resumed_from: int | None = None
    windows: list[tuple[str, str]] = field(default_factory=list)


def nvd_rate_limit(base: str, api_key: str | None) -> RateLimit | None:
    """NVD's public limits (5 requests / 30 s, 50 with a key) for the public API; mirrors are not limited."""
    if base.rstrip("/") != NVD_API:
        return None
    return RateLimit(50 if api_key else 5, 30.0)


def _check_page(doc: Any, url: str) -> tuple[int, int]:
    if not isinstance(doc, Mapping) or doc.get("format") != "NVD_CVE":
        raise FeedError("nvd: response is not an NVD CVE API 2.0 page (format NVD_CVE expected)", path=url)
    total, count = doc.get("totalResults"), doc.get("vulnerabilities")
    if not isinstance(total, int) or total < 0 or not isinstance(count, list):
        raise FeedError("nvd: page lacks totalResults or vulnerabilities", path=url, field="totalResults")
    return total, len(count)


Cursor = dict[str, Any]


def _shifted(cursor: Callable[[int], Cursor], start: int, n: int) -> Cursor:
    return cursor(start + n)


def _dir_cursor(rel: str, _n: int) -> Cursor:
    return {"mode": "dir", "dir_done": rel}


def prepare_page(raw: bytes, url: str) -> tuple[int, int, PreparedFile]:
    """Decode, check and prepare one API page: (totalResults, records in the page, prepared records). Pure: a
    worker process runs it for the pages ahead while the previous page is written."""
    with gc_paused():  # the page's decoded JSON and rows are acyclic: see medfw.vuln.gcpause
        doc = load_json(maybe_gunzip(raw, url, "nvd"), url, "nvd page")
        total, n = _check_page(doc, url)
        result = parse_nvd_doc(doc, url)
        return total, n, PreparedFile(prepare_records(result.records), result.skips)


Fetch = Callable[[int], tuple[bytes, str]]


@dataclass
class _Run:
    index: VulnIndex
    report: ImportReport
    out: NvdSync
    progress: Callable[[int, int], None] | None
    page_size: int = 2000
    workers: int = 0

    def commit(self, url: str, page: tuple[int, int, PreparedFile], cursor_after: Callable[[int], Cursor]) -> None:
        """Apply one prepared page in one transaction with the cursor past it."""
        _total, n, prepared = page
        with gc_paused(), self.index.transaction() as conn:
            counts = apply_prepared(self.index, conn, "nvd", prepared, self.report)
            self.index.log_import(conn, "nvd", url, counts)
            save_cursor(conn, "nvd", cursor_after(n))
        self.out.pages += 1
        self.out.records += n

    def apply(self, raw: bytes, url: str, cursor_after: Callable[[int], Cursor]) -> tuple[int, int]:
        """Apply one page; return (totalResults, records in page)."""
        page = prepare_page(raw, url)
        self.commit(url, page, cursor_after)
        return page[0], page[1]

    def page_through(self, fetch: Fetch, start: int, cursor: Callable[[int], Cursor]) -> None:
        while True:
            raw, url = fetch(start)
            total, n = self.apply(raw, url, functools.partial(_shifted, cursor, start))
            start += n
            if self.progress is not None:
                self.progress(start, total)
            if n == 0 or start >= total:
                return
            if self.workers and total - start >= _PIPELINE_PAGES * self.page_size:
                self._pipelined(fetch, start, total, cursor)
                return

    def _pipelined(self, fetch: Fetch, start: int, total: int, cursor: Callable[[int], Cursor]) -> None:
        """The remaining pages of a long run: fetched by a thread and prepared by worker processes a few pages
        ahead, committed here in order (a short page makes the guessed next starts wrong: they are dropped)."""
        io = concurrent.futures.ThreadPoolExecutor(1)
        cpu = concurrent.futures.ProcessPoolExecutor(self.workers)
        cpu.submit(int).result()  # the workers start now, from this thread, not from the fetching one

        def job(s: int) -> tuple[str, concurrent.futures.Future[tuple[int, int, PreparedFile]]]:
            raw, url = fetch(s)
            return url, cpu.submit(prepare_page, raw, url)

        ahead: dict[int, concurrent.futures.Future[Any]] = {}
        try:
            while start < total:
                for k in range(_AHEAD):
                    s = start + k * self.page_size
                    if s < total and s not in ahead:
                        ahead[s] = io.submit(job, s)
                url, page_future = ahead.pop(start).result()
                with gc_paused():  # unpickling the prepared page
                    page = page_future.result()
                self.commit(url, page, functools.partial(_shifted, cursor, start))
                total, n = page[0], page[1]
                start += n
                if self.progress is not None:
                    self.progress(start, total)
                if n == 0:
                    return
                if start not in ahead:
                    ahead.clear()
        finally:
            io.shutdown(wait=True, cancel_futures=True)
            cpu.shutdown(wait=True, cancel_futures=True)


def _sync_dir(run: _Run, base: str) -> None:
    index, out = run.index, run.out
    root = local_path(base)
    if not root.is_dir():
        raise FeedError("nvd: mirror directory not found", path=str(root))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz")))
    with index.transaction() as conn:
        st = get_state(conn, "nvd")
    done = str(st.cursor.get("dir_done", "")) if st and st.cursor.get("mode") == "dir" else ""
    out.mode = "directory"
    for f in files:
        rel = str(f.relative_to(root))
        if done and rel <= done:
            continue
        run.apply(f.read_bytes(), str(f), functools.partial(_dir_cursor, rel))


def sync_nvd(
    index: VulnIndex,
    fetcher: Fetcher,
    base: str,
    report: ImportReport,
    *,
    api_key: str | None = None,
    page_size: int = 2000,
    limit: RateLimit | None = None,
    now: dt.datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> NvdSync:
    """Sync NVD into ``index`` (see the module docstring).

    Raises:
        FeedError: a page is not NVD JSON, or a mirror file is missing (committed pages stay; the next sync resumes).
        TransportError: the API could not be reached or kept failing.
    """
    now = now or dt.datetime.now(dt.UTC)
    out = NvdSync()
    workers = 0 if limit is not None else min(2, os.cpu_count() or 1)  # a rate-limited API gains nothing
    run = _Run(index, report, out, progress, page_size, workers)
    if is_local(base):
        _sync_dir(run, base)
        with index.transaction() as conn:
            record_state(conn, "nvd", method="sync", location=base, cursor={})
        return out
    headers = {"apiKey": api_key} if api_key else {}
    with index.transaction() as conn:
        st = get_state(conn, "nvd")
    cursor = dict(st.cursor) if st else {}

    def getter(extra: Mapping[str, str]) -> Callable[[int], tuple[bytes, str]]:
        def fetch(start: int) -> tuple[bytes, str]:
            params: dict[str, str | int] = {"resultsPerPage": page_size, "startIndex": start, **extra}
            raw = fetcher.get("nvd", base, params=params, headers=headers, limit=limit)
            assert raw is not None
            return raw, f"{base}?startIndex={start}"

        return fetch

    if cursor.get("mode") == "full" or not cursor.get("last_mod"):
        started = str(cursor.get("started") or now.isoformat())
        start = int(cursor.get("start_index", 0)) if cursor.get("mode") == "full" else 0
        out.mode, out.resumed_from = "full", (start or None)

        def full(i: int) -> Cursor:
            return {"mode": "full", "start_index": i, "started": started}

        run.page_through(getter({}), start, full)
        last_mod = started
    else:
        out.mode = "incremental"
        last_mod = _incremental(run, getter, cursor, now)
    with index.transaction() as conn:
        record_state(conn, "nvd", method="sync", location=base, cursor={"last_mod": last_mod})
    return out


def _incremental(
    run: _Run,
    getter: Callable[[Mapping[str, str]], Callable[[int], tuple[bytes, str]]],
    cursor: Mapping[str, Any],
    now: dt.datetime,
) -> str:
    lo = dt.datetime.fromisoformat(str(cursor["last_mod"]))
    start = int(cursor.get("start_index", 0)) if cursor.get("mode") == "incr" else 0
    while lo < now:
        hi = min(lo + _WINDOW, now)
        window = {"lastModStartDate": _fmt(lo), "lastModEndDate": _fmt(hi)}
        run.out.windows.append((window["lastModStartDate"], window["lastModEndDate"]))
        lo_text = lo.isoformat()

        def incr(i: int, lo_text: str = lo_text) -> Cursor:
            return {"mode": "incr", "last_mod": lo_text, "start_index": i}

        run.page_through(getter(window), start, incr)
        start = 0
        lo = hi
        with run.index.transaction() as conn:
            save_cursor(conn, "nvd", {"last_mod": lo.isoformat()})
    return now.isoformat()
