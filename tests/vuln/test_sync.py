"""``feed sync`` against local fakes of every upstream (real HTTP on 127.0.0.1) and against directory mirrors."""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medfw.audit.sink import MemorySink
from medfw.cli import main
from medfw.errors import FeedError, TransportError
from medfw.vuln import open_index
from medfw.vuln.feeds.fetch import Fetcher, RateLimit
from medfw.vuln.feeds.sync import SyncConfig, sync_feeds
from medfw.vuln.freshness import feed_states
from medfw.vuln.index import VulnIndex

from .fake_data import build_tree, kev_catalog, nvd_records
from .fake_upstream import FakeUpstream, serve

PAGE = 37  # an odd page size: the last page is short


@pytest.fixture
def index(tmp_path: Path) -> Iterator[VulnIndex]:
    ix = open_index(str(tmp_path / "sync.db"))
    yield ix
    ix.close()


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return nvd_records()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path / "upstream")


def _fetcher(attempts: int = 5) -> Fetcher:
    return Fetcher(timeout=10, attempts=attempts, backoff=0.0, sleep=lambda _s: None)


def _nvd_queries(up: FakeUpstream) -> list[dict[str, list[str]]]:
    return [r["query"] for r in up.requests if r["path"].endswith("/cves/2.0")]


def test_nvd_paged_with_429_and_503_then_incremental(
    index: VulnIndex, tree: Path, records: list[dict[str, Any]]
) -> None:
    served = copy.deepcopy(records)
    with serve(tree, served, faults={3: 429, 7: 503}) as up:
        cfg = SyncConfig(mirrors=up.mirrors(), nvd_api_key="k-secret-123", nvd_page_size=PAGE)
        sink = MemorySink()
        report = sync_feeds(index, ["nvd"], config=cfg, fetcher=_fetcher(), sink=sink)
        pages = -(-len(records) // PAGE)
        assert report.sources["nvd"]["pages"] == pages and report.sources["nvd"]["mode"] == "full"
        assert index.record_count() == len(records)
        queries = _nvd_queries(up)
        assert len(queries) == pages + 2  # the 429 and the 503 were retried
        assert [int(q["startIndex"][0]) for q in queries if "startIndex" in q][-1] == (pages - 1) * PAGE
        assert {r["api_key"] for r in up.requests} == {"k-secret-123"}  # the key travels in the header only
        assert "k-secret-123" not in json.dumps([e.data for e in sink.events]) + json.dumps(report.as_dict())
        first_sync = next(s for s in feed_states(index) if s.source == "nvd")

        # 25 records change upstream; the next sync asks only for what changed since the last one
        changed = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        for rec in served[:25]:
            rec["lastModified"] = changed
            rec["descriptions"] = [{"lang": "en", "value": "updated upstream"}]
        up.requests.clear()
        report = sync_feeds(index, ["nvd"], config=cfg, fetcher=_fetcher())
    (query,) = _nvd_queries(up)
    start = dt.datetime.fromisoformat(query["lastModStartDate"][0])
    assert start <= dt.datetime.fromisoformat(first_sync.cursor["last_mod"]) < start + dt.timedelta(milliseconds=1)
    assert report.sources["nvd"]["mode"] == "incremental" and report.report.counts["nvd"]["updated"] == 25
    assert report.report.counts["nvd"]["added"] == 0


def test_nvd_full_sync_resumes_from_last_committed_page(
    index: VulnIndex, tree: Path, records: list[dict[str, Any]]
) -> None:
    with serve(tree, records, faults={4: 500}) as up:
        cfg = SyncConfig(mirrors=up.mirrors(), nvd_page_size=PAGE)
        with pytest.raises(TransportError, match="HTTP 500") as e:
            sync_feeds(index, ["nvd"], config=cfg, fetcher=_fetcher())
        assert "startIndex=111" in str(e.value.path)  # names the URL of the failing page
        assert index.record_count() == 3 * PAGE  # three pages committed, nothing half-applied
        up.requests.clear()
        report = sync_feeds(index, ["nvd"], config=cfg, fetcher=_fetcher())
    assert report.sources["nvd"]["resumed_from"] == 3 * PAGE
    assert int(_nvd_queries(up)[0]["startIndex"][0]) == 3 * PAGE
    assert index.record_count() == len(records)


def test_kev_newer_then_older_catalog(index: VulnIndex, tree: Path) -> None:
    kev_file = tree / "kev/known_exploited_vulnerabilities.json"
    kev_file.write_bytes(kev_catalog("2025.08.20", drop=3))
    with serve(tree, []) as up:
        cfg = SyncConfig(mirrors=up.mirrors())
        assert sync_feeds(index, ["kev"], config=cfg, fetcher=_fetcher()).sources["kev"]["version"] == "2025.08.20"
        kev_file.write_bytes(kev_catalog())  # newer: 2025.08.25, three more entries
        report = sync_feeds(index, ["kev"], config=cfg, fetcher=_fetcher())
        assert report.report.counts["kev"]["added"] == 3
        kev_file.write_bytes(kev_catalog("2025.08.01", drop=10))  # older: refused, never applied
        with pytest.raises(FeedError, match="older than the stored catalog 2025"):
            sync_feeds(index, ["kev"], config=cfg, fetcher=_fetcher())
    kev = next(s for s in feed_states(index) if s.source == "kev")
    assert (kev.version, kev.records) == ("2025.08.25", 1404)


def test_epss_gzip_osv_zip_and_cve5_archives(index: VulnIndex, tree: Path) -> None:
    with serve(tree, []) as up:
        cfg = SyncConfig(mirrors=up.mirrors())
        report = sync_feeds(index, ["epss", "osv", "cve5"], config=cfg, fetcher=_fetcher())
        assert report.sources["epss"] == {"version": "v2025.03.14", "data_date": "2026-11-20T00:00:00+0000"}
        assert report.sources["osv"]["ecosystems"]["OSS-Fuzz"]["via"] == "all.zip"
        assert report.report.counts["osv"]["added"] > 70
        assert report.sources["cve5"]["archives"] == [
            "2026-12-07_all_CVEs_at_midnight.zip.zip",
            "2026-12-07_delta_CVEs_at_0600Z.zip",
        ]
        # OSV incremental: only ids newer than the last sync in modified_id.csv are fetched
        (tree / "osv/OSS-Fuzz/modified_id.csv").write_text(
            "2099-01-01T00:00:00Z,OSV-2017-1\n2001-01-01T00:00:00Z,OSV-2017-8\n"
        )
        (tree / "osv/OSS-Fuzz/OSV-2017-1.json").write_text(
            json.dumps({"id": "OSV-2017-1", "modified": "2099-01-01T00:00:00Z", "affected": []})
        )
        up.requests.clear()
        report = sync_feeds(index, ["osv", "cve5"], config=cfg, fetcher=_fetcher())
    paths = [r["path"] for r in up.requests]
    assert "/osv/OSS-Fuzz/OSV-2017-1.json" in paths and "/osv/OSS-Fuzz/all.zip" not in paths
    assert report.report.counts["osv"]["updated"] == 1
    assert report.sources["cve5"]["archives"] == []  # the day's baseline and delta are applied already
    assert not any(p.endswith(".zip") for p in paths)


def test_directory_mirror_for_air_gapped_sites(index: VulnIndex, tree: Path, records: list[dict[str, Any]]) -> None:
    nvd_dir = tree / "nvd"
    nvd_dir.mkdir()
    for i in range(0, len(records), 100):
        page = {"format": "NVD_CVE", "version": "2.0", "totalResults": len(records), "startIndex": i,
                "resultsPerPage": 100, "vulnerabilities": [{"cve": c} for c in records[i : i + 100]]}  # fmt: skip
        (nvd_dir / f"page-{i:06d}.json.gz").write_bytes(gzip.compress(json.dumps(page).encode()))
    mirrors = {s: str(tree / s) for s in ("nvd", "kev", "epss", "osv")} | {"cve5": (tree / "cve5").as_uri()}
    report = sync_feeds(index, ["nvd", "kev", "epss", "osv", "cve5"], config=SyncConfig(mirrors=mirrors))
    assert report.sources["nvd"]["local"] and index.record_count() > len(records)
    states = {s.source: s for s in feed_states(index)}
    assert {"nvd", "kev", "epss", "osv", "cve5"} <= set(states) and states["nvd"].method == "sync"
    assert states["cve5"].version == "2026-12-07_0600Z"


def test_bad_input_names_source_and_url(index: VulnIndex, tree: Path) -> None:
    (tree / "epss/epss_scores-current.csv.gz").write_bytes(gzip.compress(b"cve,epss,percentile\n" * 50)[:-20])
    (tree / "kev/known_exploited_vulnerabilities.json").write_text(json.dumps({"vulnerabilities": []}))
    with serve(tree, []) as up:
        cfg = SyncConfig(mirrors={**up.mirrors(), "osv": up.base + "/nowhere"})
        with pytest.raises(FeedError, match="gzip stream is corrupt or truncated") as e:
            sync_feeds(index, ["epss"], config=cfg, fetcher=_fetcher())
        assert e.value.path == f"{up.base}/epss/epss_scores-current.csv.gz"
        with pytest.raises(FeedError, match="catalogVersion"):
            sync_feeds(index, ["kev"], config=cfg, fetcher=_fetcher())
        with pytest.raises(FeedError, match="HTTP 404") as e:
            sync_feeds(index, ["osv"], config=cfg, fetcher=_fetcher())
        assert e.value.path == f"{up.base}/nowhere/OSS-Fuzz/all.zip"
    with pytest.raises(TransportError, match="ConnectError"):  # the fake is gone: connection refused
        sync_feeds(index, ["kev"], config=cfg, fetcher=_fetcher(attempts=2))
    assert feed_states(index) == [] and index.record_count() == 0  # nothing half-applied


def test_nvd_page_that_is_not_nvd_json(index: VulnIndex, tmp_path: Path) -> None:
    d = tmp_path / "nvd"
    d.mkdir()
    (d / "a.json").write_text(json.dumps({"format": "NVD_CVE", "totalResults": 1, "vulnerabilities": [
        {"cve": nvd_records()[0]}]}))  # fmt: skip
    (d / "b.json").write_text('{"message": "rate limited"}')
    with pytest.raises(FeedError, match=r"not an NVD CVE API 2\.0 page") as e:
        sync_feeds(index, ["nvd"], config=SyncConfig(mirrors={"nvd": str(d)}))
    assert e.value.path == str(d / "b.json") and index.record_count() == 1  # the good page stays committed


def test_rate_limit_sliding_window() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    limit = RateLimit(5, 30.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        assert limit.wait() == 0.0
        now[0] += 1.0
    assert limit.wait() == pytest.approx(25.0)  # the 6th request waits until the first leaves the window
    assert slept == [pytest.approx(25.0)]


def result_of(out: str) -> Any:
    """The result of a ``--json`` command's envelope."""
    doc = json.loads(out)
    assert doc["ok"] is True and doc["exit_code"] == 0
    return doc["result"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_feed_sync_cli_with_mirrors_and_key_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    monkeypatch.setenv("MEDFW_VULN_DB", str(tmp_path / "s.db"))
    monkeypatch.setenv("MEDFW_NVD_API_KEY", "env-key-42")
    tree = build_tree(tmp_path / "up")
    config = tmp_path / "sync.yml"
    with serve(tree, nvd_records()[:90]) as up:
        config.write_text(f"mirrors:\n  kev: {up.url('kev')}\nosv_ecosystems: [OSS-Fuzz]\n")
        rc, out, err = _run(
            capsys, "vuln", "feed", "sync", "--json", "--config", str(config), "--source", "nvd", "--source", "kev",
            "--mirror", f"nvd={up.url('nvd')}", "--page-size", "40",
        )  # fmt: skip
    assert rc == 0, err
    res = result_of(out)
    assert res["sources"]["nvd"]["pages"] == 3 and res["sources"]["kev"]["version"] == "2025.08.25"
    assert {r["api_key"] for r in up.requests if "cves" in r["path"]} == {"env-key-42"}
    assert "env-key-42" not in out + err
    rc, out, _ = _run(capsys, "vuln", "feed", "status")
    assert rc == 0 and "sync" in out
    rc, _, err = _run(capsys, "vuln", "feed", "sync", "--mirror", "bogus")
    assert rc == 2 and "SOURCE=URL" in err
    rc, _, err = _run(capsys, "vuln", "feed", "sync", "--source", "kev", "--mirror", f"kev={tmp_path / 'none'}")
    assert rc == 2 and "mirror file not found" in err
