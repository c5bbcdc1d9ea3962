"""Incremental import, skip reporting, all-or-nothing on bad files; SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from medfw.errors import FeedError, InputError
from medfw.vuln import import_feeds, open_index
from medfw.vuln.index import VulnIndex


def _page(vuln_vectors: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((vuln_vectors / "nvd/official-shapes/api-2.0-page/test.json").read_text())
    return doc


def test_incremental_reimport(tmp_path: Path, vuln_vectors: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    page = _page(vuln_vectors)
    f = tmp_path / "page.json"
    f.write_text(json.dumps(page))
    first = import_feeds(index, nvd=[str(f)])
    assert first.counts["nvd"]["added"] == 13
    again = import_feeds(index, nvd=[str(f)])
    assert again.counts["nvd"]["unchanged"] == 13 and again.counts["nvd"]["added"] == 0

    changed = copy.deepcopy(page)
    vulns = changed["vulnerabilities"]
    assert isinstance(vulns, list)
    vulns[0]["cve"]["descriptions"][0]["value"] = "changed"
    vulns[0]["cve"]["lastModified"] = "2099-01-01T00:00:00.000"
    vulns[1]["cve"]["descriptions"][0]["value"] = "older edit"
    vulns[1]["cve"]["lastModified"] = "1999-01-01T00:00:00.000"
    f.write_text(json.dumps(changed))
    third = import_feeds(index, nvd=[str(f)])
    assert third.counts["nvd"] == {"added": 0, "updated": 1, "unchanged": 11, "stale": 1, "skipped": 0}
    assert index.record_count() == 13
    index.close()


def test_truncated_file_rolls_back_everything(tmp_path: Path, vuln_vectors: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    with pytest.raises(FeedError):
        import_feeds(
            index,
            nvd=[
                str(vuln_vectors / "nvd/official-shapes/api-2.0-page/test.json"),
                str(vuln_vectors / "custom/truncated-nvd-page.json"),
            ],
        )
    assert index.record_count() == 0
    index.close()


def test_skips_are_counted_and_named(tmp_path: Path, vuln_vectors: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    r = import_feeds(index, nvd=[str(vuln_vectors / "custom/schema-violations-nvd-page.json")])
    assert r.counts["nvd"]["added"] == 11 and r.counts["nvd"]["skipped"] == 2
    assert {s.record_id for s in r.skips} == {"CVE-2026-20912", "CVE-XXXX"}
    index.close()


def test_directory_skips_foreign_json(tmp_path: Path, vuln_vectors: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    r = import_feeds(index, nvd=[str(vuln_vectors / "nvd/anchore-overrides")])
    assert r.counts["nvd"]["added"] == 351
    assert sorted(s.record_id for s in r.skips) == ["index.json", "overrides.schema.json"]
    index.close()


def test_missing_path_and_no_feeds(tmp_path: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    with pytest.raises(InputError, match="not found"):
        import_feeds(index, osv=[str(tmp_path / "nope")])
    with pytest.raises(InputError, match="no feed"):
        import_feeds(index)
    index.close()


def test_kev_and_epss_incremental(tmp_path: Path, vuln_vectors: Path) -> None:
    index = open_index(str(tmp_path / "i.db"))
    kev = vuln_vectors / "kev/known_exploited_vulnerabilities.json"
    epss = vuln_vectors / "custom/epss_scores-2026-11-20.csv"
    r = import_feeds(index, kev=[str(kev)], epss=[str(epss)])
    assert r.counts["kev"]["added"] == 1404 and r.counts["epss"]["added"] == 4
    small = json.loads(kev.read_text())
    small["vulnerabilities"] = small["vulnerabilities"][:10]
    small["vulnerabilities"][0]["notes"] = "x"
    small["vulnerabilities"][1]["dueDate"] = "2030-01-01"
    f = tmp_path / "kev.json"
    f.write_text(json.dumps(small))
    r2 = import_feeds(index, kev=[str(f)], epss=[str(epss)])
    assert r2.counts["kev"]["removed"] == 1394 and r2.counts["kev"]["updated"] == 1
    assert r2.counts["epss"]["unchanged"] == 4
    index.close()


@pytest.fixture
def pg_index() -> Iterator[VulnIndex]:
    psycopg = pytest.importorskip("psycopg")
    schema = f"medfw_vuln_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres", autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL not reachable: {e}")
    conn.execute(f'CREATE SCHEMA "{schema}"')
    index = open_index(f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}")
    try:
        yield index
    finally:
        index.close()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        conn.close()


@pytest.mark.postgres
def test_postgres_import_and_scan(pg_index: VulnIndex, vuln_vectors: Path, sbom_factory: Callable[..., bytes]) -> None:
    from medfw.vuln import scan

    r = import_feeds(pg_index, nvd=[str(vuln_vectors / "nvd/anchore-overrides")])
    assert r.counts["nvd"]["added"] == 351
    r2 = import_feeds(pg_index, nvd=[str(vuln_vectors / "nvd/anchore-overrides")])
    assert r2.counts["nvd"]["unchanged"] == 351
    sbom = sbom_factory([{"bom-ref": "curl", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"}])
    result = scan(pg_index, sbom)
    assert "CVE-2024-2398" in {f.vuln_id for f in result.findings}


def test_worker_processes_prepare_the_same_import(tmp_path: Path, vuln_vectors: Path) -> None:
    from sqlalchemy import select

    from medfw.vuln.schema import vuln_match, vuln_record

    v = vuln_vectors
    feeds = {"nvd": [str(v / "nvd")], "osv": [str(v / "osv")], "cve5": [str(v / "cve5")]}
    stored = []
    for workers in (0, 2):
        index = open_index(str(tmp_path / f"w{workers}.db"))
        report = import_feeds(index, workers=workers, **feeds)  # type: ignore[arg-type]
        with index.transaction() as conn:
            rows = conn.execute(select(vuln_record.c.rid, vuln_record.c.content_hash).order_by("rid")).all()
            matches = conn.execute(select(vuln_match).order_by("rid", "ord", "key")).all()
        stored.append((report.counts, report.files, [tuple(r) for r in rows], [tuple(m) for m in matches]))
        index.close()
    assert stored[0] == stored[1] and stored[0][2]


def _versions(page: dict[str, object], tmp_path: Path) -> list[str]:
    """Four files of one page: as is, again, then with one record edited later, and edited earlier."""
    vulns = page["vulnerabilities"]
    assert isinstance(vulns, list)
    newer, older = copy.deepcopy(page), copy.deepcopy(page)
    for doc, stamp in ((newer, "2099-01-01T00:00:00.000"), (older, "1999-01-01T00:00:00.000")):
        v = doc["vulnerabilities"]
        assert isinstance(v, list)
        v[0]["cve"]["descriptions"][0]["value"] = f"edited {stamp}"
        v[0]["cve"]["lastModified"] = stamp
    paths = []
    for i, doc in enumerate((page, page, newer, older)):
        p = tmp_path / "feed" / f"{i}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(doc))
        paths.append(str(p))
    return paths


def test_bulk_load_into_an_empty_index_counts_as_record_by_record(tmp_path: Path, vuln_vectors: Path) -> None:
    from sqlalchemy import inspect, select

    from medfw.vuln.schema import vuln_match, vuln_record

    _versions(_page(vuln_vectors), tmp_path)
    stored = []
    for name, seed in (("empty", None), ("seeded", vuln_vectors / "nvd/anchore-overrides")):
        index = open_index(str(tmp_path / f"{name}.db"))
        if seed is not None:  # an index holding records already: rows are checked against the stored ones
            import_feeds(index, nvd=[str(seed)])
        report = import_feeds(index, nvd=[str(tmp_path / "feed")], workers=0)
        with index.transaction() as conn:
            assert "ix_vuln_match_lookup" in {ix["name"] for ix in inspect(conn).get_indexes("vuln_match")}
            rows = conn.execute(select(vuln_record.c.rid, vuln_record.c.content_hash).where(
                vuln_record.c.source == "nvd").order_by("rid")).all()  # fmt: skip
            matches = conn.execute(select(vuln_match).where(vuln_match.c.source == "nvd").order_by("rid", "ord")).all()
        stored.append((report.counts["nvd"], [tuple(r) for r in rows], [tuple(m) for m in matches]))
        index.close()
    assert stored[0] == stored[1]
    assert stored[0][0] == {"added": 13, "updated": 1, "unchanged": 37, "stale": 1, "skipped": 0}


def test_failed_bulk_load_keeps_the_lookup_index(tmp_path: Path, vuln_vectors: Path) -> None:
    from sqlalchemy import inspect

    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a.json").write_text(json.dumps(_page(vuln_vectors)))
    (feed / "b.json").write_text('{"format": "NVD_CVE", "vulnerabilities": [')
    index = open_index(str(tmp_path / "i.db"))
    with pytest.raises(FeedError):
        import_feeds(index, nvd=[str(feed)], workers=0)
    assert index.record_count() == 0
    with index.transaction() as conn:
        assert "ix_vuln_match_lookup" in {ix["name"] for ix in inspect(conn).get_indexes("vuln_match")}
    (feed / "b.json").unlink()
    assert import_feeds(index, nvd=[str(feed)]).counts["nvd"]["added"] == 13
    index.close()


@pytest.mark.postgres
def test_postgres_bulk_load_matches_sqlite(pg_index: VulnIndex, tmp_path: Path, vuln_vectors: Path) -> None:
    from sqlalchemy import inspect, select

    from medfw.vuln.schema import vuln_match

    feeds = [str(vuln_vectors / "nvd/anchore-overrides"), str(vuln_vectors / "nvd/official-shapes")]
    lite = open_index(str(tmp_path / "i.db"))
    stored = []
    for index in (pg_index, lite):
        report = import_feeds(index, nvd=feeds)
        with index.transaction() as conn:
            assert "ix_vuln_match_lookup" in {ix["name"] for ix in inspect(conn).get_indexes("vuln_match")}
            rows = conn.execute(select(vuln_match).order_by("rid", "ord", "key")).all()
        stored.append((report.counts, [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]))
    lite.close()
    assert stored[0] == stored[1] and stored[0][1]


@pytest.mark.postgres
def test_postgres_updates_replace_rows(pg_index: VulnIndex, tmp_path: Path, vuln_vectors: Path) -> None:
    from sqlalchemy import select

    from medfw.vuln.schema import vuln_match, vuln_record

    _versions(_page(vuln_vectors), tmp_path)
    files = sorted(str(p) for p in (tmp_path / "feed").glob("*.json"))
    lite = open_index(str(tmp_path / "i.db"))
    stored = []
    for index in (pg_index, lite):
        counts = [import_feeds(index, nvd=[f]).counts["nvd"] for f in files]  # one transaction per file
        with index.transaction() as conn:
            recs = conn.execute(select(vuln_record.c.rid, vuln_record.c.content_hash).order_by("rid")).all()
            n = conn.execute(select(vuln_match.c.rid)).all()
        stored.append((counts, [tuple(r) for r in recs], len(n)))
    lite.close()
    assert stored[0] == stored[1]
    assert [c["updated"] for c in stored[0][0]] == [0, 0, 1, 0] and stored[0][2] > 0
