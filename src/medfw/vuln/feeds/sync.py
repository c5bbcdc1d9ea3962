"""``feed sync``: fetch every source by its real protocol from its upstream, an internal mirror or a directory.

| source | upstream (default base) | fetched |
|---|---|---|
| ``nvd`` | ``https://services.nvd.nist.gov/rest/json/cves/2.0`` | see :mod:`medfw.vuln.feeds.sync_nvd` |
| ``kev`` | ``https://www.cisa.gov/sites/default/files/feeds`` | ``known_exploited_vulnerabilities.json``; an older catalog is refused |
| ``epss`` | ``https://epss.empiricalsecurity.com`` | ``epss_scores-current.csv.gz`` |
| ``osv`` | ``https://osv-vulnerabilities.storage.googleapis.com`` | per ecosystem ``<eco>/all.zip`` the first time, then ``<eco>/modified_id.csv`` and the changed ``<eco>/<id>.json`` |
| ``cve5`` | ``https://api.github.com/repos/CVEProject/cvelistV5`` | ``releases/latest``: the day's baseline ``…_all_CVEs_at_midnight.zip.zip`` once per day, then its delta archive |

A mirror replaces a base (``--mirror kev=https://mirror.example/kev`` or ``--mirror kev=/srv/feeds/kev``); it serves
the same relative paths (for ``cve5`` assets: ``releases/download/<tag>/<name>``). Each page or archive is applied
in one transaction; a failure leaves what was committed before it and names the source and URL. Every source
synced records its freshness and a ``vuln.feed.sync`` audit event.
"""  # noqa: E501

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.errors import FeedError, MedfwError
from medfw.vuln.feed_state_store import get_state, record_state
from medfw.vuln.feeds import ParseResult, load_json
from medfw.vuln.feeds.cve5 import parse_cve5
from medfw.vuln.feeds.epss import parse_epss
from medfw.vuln.feeds.fetch import Fetcher, RateLimit, is_local
from medfw.vuln.feeds.kev import parse_kev
from medfw.vuln.feeds.osv import parse_osv, parse_osv_zip
from medfw.vuln.feeds.sync_nvd import NVD_API, nvd_rate_limit, sync_nvd
from medfw.vuln.importer import ImportReport, apply_epss, apply_kev, apply_records
from medfw.vuln.index import VulnIndex

__all__ = ["SOURCES", "UPSTREAMS", "SyncConfig", "SyncReport", "sync_feeds"]

SOURCES = ("nvd", "cve5", "osv", "kev", "epss")
UPSTREAMS: Mapping[str, str] = {
    "nvd": NVD_API,
    "cve5": "https://api.github.com/repos/CVEProject/cvelistV5",
    "osv": "https://osv-vulnerabilities.storage.googleapis.com",
    "kev": "https://www.cisa.gov/sites/default/files/feeds",
    "epss": "https://epss.empiricalsecurity.com",
}
_BATCH = 2000


@dataclass
class SyncConfig:
    """Where and how to sync.

    Attributes:
        mirrors: source → base replacing its upstream (URL, ``file://`` URL or directory).
        nvd_api_key: the NVD API key (from ``MEDFW_NVD_API_KEY`` or a key file; never argv).
        osv_ecosystems: OSV ecosystems to mirror.
        nvd_page_size: NVD ``resultsPerPage`` (at most 2,000).
        nvd_rate: a rate limit for NVD requests; None applies NVD's public limits to the public API only.
    """

    mirrors: dict[str, str] = field(default_factory=dict)
    nvd_api_key: str | None = None
    osv_ecosystems: tuple[str, ...] = ("OSS-Fuzz",)
    nvd_page_size: int = 2000
    nvd_rate: RateLimit | None = None

    def base(self, source: str) -> str:
        """The base to fetch ``source`` from."""
        return self.mirrors.get(source, UPSTREAMS[source])


@dataclass
class SyncReport:
    """Per source: counts, what was fetched, and the freshness recorded."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: ImportReport = field(default_factory=ImportReport)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"sources": self.sources, "counts": self.report.counts, "skipped": len(self.report.skips)}


def _sync_kev(index: VulnIndex, fetcher: Fetcher, base: str, report: ImportReport) -> dict[str, Any]:
    raw = fetcher.get("kev", base, "known_exploited_vulnerabilities.json")
    assert raw is not None
    cat = parse_kev(raw, f"{base}/known_exploited_vulnerabilities.json")
    with index.transaction() as conn:
        counts = apply_kev(conn, cat, base, report)
        index.log_import(conn, "kev", base, counts)
        record_state(conn, "kev", method="sync", location=base, version=cat.version, data_date=cat.date_released)
    return {"version": cat.version, "data_date": cat.date_released}


def _sync_epss(index: VulnIndex, fetcher: Fetcher, base: str, report: ImportReport) -> dict[str, Any]:
    raw = fetcher.get("epss", base, "epss_scores-current.csv.gz")
    assert raw is not None
    scores = parse_epss(raw, f"{base}/epss_scores-current.csv.gz")
    with index.transaction() as conn:
        counts = apply_epss(conn, scores, report)
        index.log_import(conn, "epss", base, counts)
        record_state(
            conn, "epss", method="sync", location=base, version=scores.model_version, data_date=scores.score_date
        )
    return {"version": scores.model_version, "data_date": scores.score_date}


def _apply_batches(
    index: VulnIndex, kind: str, batches: Iterator[ParseResult], where: str, report: ImportReport
) -> int:
    """Apply parsed batches in one transaction (one archive = one unit of work); return the record count."""
    n = 0
    with index.transaction() as conn:
        for batch in batches:
            counts = apply_records(index, conn, kind, batch, report)
            n += len(batch.records)
            index.log_import(conn, kind, where, counts)
    return n


def _newest(result: ParseResult, floor: str) -> str:
    return max([floor, *(r.modified for r in result.records)])


def _sync_osv_eco(
    index: VulnIndex, fetcher: Fetcher, base: str, eco: str, *, since: str, report: ImportReport
) -> tuple[str, int, str]:
    """One ecosystem: incremental via ``modified_id.csv`` when possible, else ``all.zip``; return (cursor, n, how)."""
    if since:
        listing = fetcher.get("osv", base, f"{eco}/modified_id.csv", missing_ok=True)
        if listing is not None:
            changed = [
                row[1]
                for row in csv.reader(io.StringIO(listing.decode("utf-8", "replace")))
                if len(row) == 2 and row[0] > since
            ]
            result = ParseResult()
            for osv_id in changed:
                raw = fetcher.get("osv", base, f"{eco}/{osv_id}.json")
                assert raw is not None
                part = parse_osv(raw, f"{base}/{eco}/{osv_id}.json")
                result.records.extend(part.records)
                result.skips.extend(part.skips)
            n = _apply_batches(index, "osv", iter([result]), f"{base}/{eco}/modified_id.csv", report)
            return _newest(result, since), n, "modified_id.csv"
    raw = fetcher.get("osv", base, f"{eco}/all.zip")
    assert raw is not None
    result = parse_osv_zip(raw, f"{base}/{eco}/all.zip")
    n = _apply_batches(index, "osv", iter([result]), f"{base}/{eco}/all.zip", report)
    return _newest(result, since), n, "all.zip"


def _sync_osv(
    index: VulnIndex, fetcher: Fetcher, base: str, ecosystems: Sequence[str], report: ImportReport
) -> dict[str, Any]:
    with index.transaction() as conn:
        st = get_state(conn, "osv")
    cursor: dict[str, str] = dict((st.cursor if st else {}).get("ecosystems", {}))
    done: dict[str, Any] = {}
    for eco in ecosystems:
        newest, n, how = _sync_osv_eco(index, fetcher, base, eco, since=cursor.get(eco, ""), report=report)
        cursor[eco] = newest
        done[eco] = {"records": n, "via": how}
        with index.transaction() as conn:
            record_state(conn, "osv", method="sync", location=base, cursor={"ecosystems": cursor})
    return {"ecosystems": done}


def _cve5_batches(raw: bytes, where: str) -> Iterator[ParseResult]:
    """CVE records of a cvelistV5 release archive (nested zips allowed), in batches."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as e:
        raise FeedError(f"cve5: archive is corrupt or truncated: {e}", path=where) from e
    batch = ParseResult()
    with zf:
        for m in zf.infolist():
            name = m.filename.rsplit("/", 1)[-1]
            try:
                if name.endswith(".zip"):
                    yield from _cve5_batches(zf.read(m), f"{where}!{m.filename}")
                    continue
                if not (name.startswith("CVE-") and name.endswith(".json")):
                    continue
                part = parse_cve5(zf.read(m), f"{where}!{m.filename}")
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise FeedError(f"cve5: archive is corrupt or truncated: {e}", path=where) from e
            batch.records.extend(part.records)
            batch.skips.extend(part.skips)
            if len(batch.records) >= _BATCH:
                yield batch
                batch = ParseResult()
    yield batch


def _sync_cve5(index: VulnIndex, fetcher: Fetcher, base: str, report: ImportReport) -> dict[str, Any]:
    raw = fetcher.get("cve5", base, "releases/latest")
    assert raw is not None
    rel = load_json(raw, f"{base}/releases/latest")
    if not isinstance(rel, Mapping) or not isinstance(rel.get("assets"), list) or not rel.get("tag_name"):
        raise FeedError("cve5: releases/latest is not a release listing (tag_name, assets)", path=base)
    tag = str(rel["tag_name"])
    assets = {str(a.get("name")): a for a in rel["assets"] if isinstance(a, Mapping)}
    with index.transaction() as conn:
        st = get_state(conn, "cve5")
    cursor = dict(st.cursor) if st else {}
    day = tag[:10]
    wanted: list[str] = []
    if cursor.get("baseline_day") != day:
        wanted += sorted(n for n in assets if n.endswith("_all_CVEs_at_midnight.zip.zip"))
    wanted += sorted(n for n in assets if "_delta_CVEs_at_" in n and n not in cursor.get("applied", []))
    applied = list(cursor.get("applied", [])) if cursor.get("baseline_day") == day else []
    total = 0
    for name in wanted:
        url = (
            f"releases/download/{tag}/{name}"
            if base != UPSTREAMS["cve5"]
            else str(assets[name].get("browser_download_url", ""))
        )
        data = fetcher.get("cve5", base, url) if base != UPSTREAMS["cve5"] else fetcher.get("cve5", url)
        assert data is not None
        total += _apply_batches(index, "cve5", _cve5_batches(data, f"{base}/{url}"), f"{base}/{url}", report)
        applied.append(name)
        with index.transaction() as conn:
            record_state(
                conn, "cve5", method="sync", location=base, version=tag,
                cursor={"baseline_day": day, "applied": applied},
            )  # fmt: skip
    return {"version": tag, "archives": wanted, "records": total}


def sync_feeds(
    index: VulnIndex,
    sources: Sequence[str] = SOURCES,
    *,
    config: SyncConfig | None = None,
    fetcher: Fetcher | None = None,
    sink: AuditSink | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SyncReport:
    """Sync each of ``sources`` (in this order) and report; a failing source stops the run with its error.

    Raises:
        FeedError: bad data from a source (named with its URL; what was committed before stays).
        TransportError: a source could not be reached.
    """
    config = config or SyncConfig()
    sink = sink or NullSink()
    out = SyncReport()
    own = fetcher is None
    fetch = fetcher or Fetcher()
    try:
        for source in sources:
            base = config.base(source)
            try:
                out.sources[source] = _one(
                    index, fetch, source, base, config=config, report=out.report, progress=progress
                )
            except MedfwError as e:
                sink.record(
                    AuditEvent(
                        type="vuln.feed.sync", outcome="failure", reason=e.__class__.__name__,
                        actor="medfw vuln feed sync", objects={"source": source},
                        data={"location": base, "error": e.message, "url": e.path},
                    )
                )  # fmt: skip
                raise
            sink.record(
                AuditEvent(
                    type="vuln.feed.sync", outcome="success", actor="medfw vuln feed sync", objects={"source": source},
                    data={"location": base, **_jsonable(out.sources[source]), "counts": out.report.counts.get(source)},
                )
            )  # fmt: skip
    finally:
        if own:
            fetch.client.close()
    return out


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(data, default=str)))


def _one(
    index: VulnIndex,
    fetcher: Fetcher,
    source: str,
    base: str,
    *,
    config: SyncConfig,
    report: ImportReport,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, Any]:
    if source == "nvd":
        limit = config.nvd_rate if config.nvd_rate is not None else nvd_rate_limit(base, config.nvd_api_key)
        r = sync_nvd(
            index, fetcher, base, report, api_key=config.nvd_api_key, page_size=config.nvd_page_size, limit=limit,
            progress=(lambda done, total: progress("nvd", done, total)) if progress else None,
        )  # fmt: skip
        return {"mode": r.mode, "pages": r.pages, "records": r.records, "resumed_from": r.resumed_from,
                "windows": r.windows, "local": is_local(base)}  # fmt: skip
    if source == "kev":
        return _sync_kev(index, fetcher, base, report)
    if source == "epss":
        return _sync_epss(index, fetcher, base, report)
    if source == "osv":
        return _sync_osv(index, fetcher, base, config.osv_ecosystems, report)
    if source == "cve5":
        return _sync_cve5(index, fetcher, base, report)
    raise FeedError(f"unknown feed source {source!r} (one of {', '.join(SOURCES)})", field="--source")
