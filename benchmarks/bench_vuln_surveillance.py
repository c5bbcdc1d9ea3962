"""Surveillance benchmark: feed import rate, the whole ``medfw vuln scan`` process on a dense SBOM, feed sync from a
local fake NVD into SQLite and PostgreSQL (full and incremental), and ``rescan`` of 20 releases.

1. The synthetic feed of ``bench_vuln`` (``RECORDS`` NVD API 2.0 records generated from the real extract, 2,000 per
   page) imported with ``import_feeds`` into a fresh SQLite index: records/s.
2. A *dense* 1,000-component SBOM: each component is a real product of the extract in a random product family,
   products drawn in proportion to how many records name them, so a component has about 40 candidate records
   (the shape of a real firmware SBOM full of OpenSSL, curl, wolfSSL, Mbed TLS versions). The whole CLI process
   ``medfw vuln scan SBOM --format json --out F`` is measured with ``/usr/bin/time`` (wall, CPU, peak RSS), as a
   CI job runs it. medfw's modules are byte-compiled first (``installed.compile_medfw``), so the process loads ``.pyc``
   files as an installed package does: what is measured is the installed state, not a checkout whose environment sets
   ``PYTHONDONTWRITEBYTECODE`` and so recompiles every module in every process.
3. ``feed sync`` of the same records from ``tests/vuln/fake_upstream.py`` on 127.0.0.1 (2,000 per page, no rate
   limit) into a fresh SQLite index and into a PostgreSQL schema; then an incremental sync after 1,000 records
   changed upstream.
4. ``rescan`` of 20 registered releases × 100 components (slices of the dense SBOM) against the big index.

Run: ``python benchmarks/bench_vuln_surveillance.py`` (``MEDFW_BENCH_RECORDS`` to change the size,
``MEDFW_TEST_PG`` for the PostgreSQL server, ``MEDFW_BENCH_PG=0`` to skip it, ``MEDFW_BENCH_SYNC=0`` to skip
both syncs).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests" / "vuln")]

import bench_vuln  # noqa: E402
from fake_upstream import serve  # noqa: E402
from installed import compile_medfw  # noqa: E402

from medfw.vuln import add_release, import_feeds, open_index, rescan  # noqa: E402
from medfw.vuln.feeds.fetch import Fetcher  # noqa: E402
from medfw.vuln.feeds.sync import SyncConfig, sync_feeds  # noqa: E402
from medfw.vuln.match_store import candidates  # noqa: E402

RECORDS = int(os.environ.get("MEDFW_BENCH_RECORDS", "250000"))
VERDICTS: list[str] = []


def verdict(what: str, ok: bool, value: str, target: str) -> None:
    """Print and remember whether a target is met (the run ends with the list)."""
    line = f"TARGET {'met' if ok else 'NOT met'}: {what}: {value} (target {target}); load {os.getloadavg()[0]:.1f}"
    VERDICTS.append(line)
    print(line, flush=True)


PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MEDFW = str(Path(sys.executable).with_name("medfw"))


def _product_weights() -> dict[tuple[str, str], int]:
    count: dict[tuple[str, str], int] = {}
    for r in bench_vuln._real_records():
        keys = set()
        for conf in r["configurations"]:
            for node in conf["nodes"]:
                for m in node["cpeMatch"]:
                    p = m["criteria"].split(":")
                    if m["vulnerable"] and p[2] == "a":
                        keys.add((p[3], p[4]))
        for k in keys:
            count[k] = count.get(k, 0) + 1
    return count


def dense_sbom(families: int, products: list[tuple[str, str, str]], n: int = 1000, seed: int = 7) -> dict[str, Any]:
    """Components drawn in proportion to the records naming their product (about 40 candidates each)."""
    weights = _product_weights()
    prods = [(v, p, ver) for v, p, ver in products if (v, p) in weights]
    w = [weights[(v, p)] ** 1.25 for v, p, _ in prods]
    rng = random.Random(seed)
    comps = []
    for i in range(n):
        vendor, product, ver = rng.choices(prods, weights=w)[0]
        fam = rng.randrange(families)
        comps.append(
            {
                "type": "library",
                "bom-ref": f"c{i}",
                "name": f"{product}-s{fam}",
                "version": ver,
                "cpe": f"cpe:2.3:a:{vendor}:{product}-s{fam}:{ver}:*:*:*:*:*:*:*",
            }
        )
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.UUID(int=seed)}",
        "version": 1,
        "metadata": {"component": {"type": "firmware", "name": f"bench-fw-{seed}"}},
        "components": comps,
    }


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the import's worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _time_process(argv: list[str]) -> tuple[float, float, int]:
    """(wall s, user+sys CPU s, peak RSS KiB) of a whole process, from /usr/bin/time."""
    out = subprocess.run(
        ["/usr/bin/time", "-f", "TIME %e %U %S %M", *argv], capture_output=True, text=True, check=False
    )
    line = next(x for x in out.stderr.splitlines() if x.startswith("TIME "))
    _, wall, user, sys_, rss = line.split()
    return float(wall), float(user) + float(sys_), int(rss)


def bench_import_and_scan(t: Path, feed_dir: Path, families: int, products: list[tuple[str, str, str]]) -> Path:
    db = t / "big.db"
    index = open_index(str(db))
    start, cpu = time.perf_counter(), _cpu()
    rep = import_feeds(index, nvd=[str(feed_dir)])
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    n = rep.counts["nvd"]["added"]
    print(
        f"import: {n} records in {wall:.1f} s wall ({n / wall:.0f} records/s), "
        f"{cpu:.1f} s CPU with the worker processes ({n / cpu:.0f}/s CPU)"
    )
    verdict("import", n / wall >= 10_000, f"{n / wall:,.0f} records/s wall ({n / cpu:,.0f}/s CPU)", ">= 10,000/s")
    sbom = t / "dense.cdx.json"
    sbom.write_text(json.dumps(dense_sbom(families, products)))
    from medfw.vuln import scanner
    from medfw.vuln.sbom_input import read_sbom

    s = read_sbom(sbom.read_bytes())
    by_key, _, _ = scanner.build_targets(s.components, scanner.default_aliases())
    cands = candidates(index, {f"cpe:{k}" for k in by_key})
    pairs = sum(len(by_key[k.removeprefix("cpe:")]) for keys in cands.values() for k in keys if k.startswith("cpe:"))
    index.close()
    runs = [_time_process([MEDFW, "vuln", "scan", str(sbom), "--db", str(db), "--format", "json", "--out",
                           str(t / "scan.json")]) for _ in range(3)]  # fmt: skip
    findings = len(json.loads((t / "scan.json").read_text())["findings"])
    best = min(runs)
    print(
        f"scan process (dense SBOM, {len(s.components)} components, {len(cands)} candidate records, "
        f"{pairs} component×record pairs, {pairs / len(s.components):.0f} per component, {findings} findings): "
        f"wall best {best[0]:.2f} s (runs {', '.join(f'{r[0]:.2f}' for r in runs)}), "
        f"CPU {best[1]:.2f} s, peak RSS {max(r[2] for r in runs) / 1024:.0f} MiB; load {os.getloadavg()[0]:.1f}"
    )
    rss_mb = max(r[2] for r in runs) * 1024 / 1e6
    verdict("scan process time", best[0] < 1.0, f"{best[0]:.2f} s wall, {best[1]:.2f} s CPU", "< 1 s")
    verdict("scan process memory", rss_mb < 300, f"{rss_mb:.0f} MB peak RSS", "< 300 MB")
    return db


def _nvd_records(feed_dir: Path, n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in sorted(feed_dir.glob("page-*.json")):
        out.extend(v["cve"] for v in json.loads(p.read_text())["vulnerabilities"])
        if len(out) >= n:
            break
    return out[:n]


def bench_sync(t: Path, feed_dir: Path, label: str, db_url: str) -> None:
    pages = sorted(feed_dir.glob("page-*.json"))
    changed = copy.deepcopy(_nvd_records(feed_dir, 1000))
    with serve(t, [], pages=pages) as up:
        cfg = SyncConfig(mirrors={"nvd": up.url("nvd")}, nvd_page_size=bench_vuln.PAGE)
        index = open_index(db_url)
        start, cpu = time.perf_counter(), _cpu()
        rep = sync_feeds(index, ["nvd"], config=cfg, fetcher=Fetcher(timeout=120))
        full, cpu = time.perf_counter() - start, _cpu() - cpu
        n = rep.sources["nvd"]["records"]
        print(
            f"sync into {label}: {n} records, {rep.sources['nvd']['pages']} pages in {full:.1f} s ({n / full:.0f}/s), "
            f"{cpu:.1f} s CPU with the worker processes and the fake upstream"
        )
        verdict(f"full sync into {label}", full <= 60, f"{n} records in {full:.1f} s", "<= 60 s")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        for c in changed:
            c["lastModified"] = now
            c["descriptions"] = [{"lang": "en", "value": "changed upstream"}]
        up.pages, up.nvd = [], changed
        start = time.perf_counter()
        rep = sync_feeds(index, ["nvd"], config=cfg, fetcher=Fetcher(timeout=120))
        inc = time.perf_counter() - start
        print(
            f"incremental sync into {label}: {rep.report.counts['nvd']['updated']} records updated in {inc:.2f} s "
            f"({rep.sources['nvd']['pages']} page(s), window {rep.sources['nvd']['windows'][0][0]} …)"
        )
        verdict(f"incremental sync into {label}", inc <= 5, f"1,000 changed records in {inc:.2f} s", "<= 5 s")
        index.close()


def bench_rescan(t: Path, db: Path, families: int, products: list[tuple[str, str, str]]) -> None:
    index = open_index(str(db))
    for k in range(20):
        doc = dense_sbom(families, products, n=100, seed=100 + k)
        add_release(index, json.dumps(doc).encode())
    start, cpu = time.perf_counter(), time.process_time()
    report = rescan(index)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    total = sum(d.total for d in report.releases)
    print(
        f"rescan: {len(report.releases)} releases × 100 components, {total} findings in {wall:.2f} s ({cpu:.2f} s CPU)"
    )
    verdict("rescan of 20 releases x 100 components", wall <= 5, f"{wall:.2f} s wall ({cpu:.2f} s CPU)", "<= 5 s")
    index.close()


def main() -> None:
    start = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(f"{start}: machine: {os.cpu_count()} cores, load {os.getloadavg()}; records {RECORDS}")
    print(compile_medfw())  # before anything is timed: the installed state (benchmarks/installed.py)
    try:
        _run()
    finally:
        print(f"--- summary ({start} to {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}):")
        for line in VERDICTS:
            print(line)


def _run() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        feed_dir = t / "synthetic"
        feed_dir.mkdir()
        families, products = bench_vuln.write_synthetic(feed_dir, RECORDS)
        db = bench_import_and_scan(t, feed_dir, families, products)
        bench_rescan(t, db, families, products)
        if os.environ.get("MEDFW_BENCH_SYNC", "1") == "0":
            return
        bench_sync(t, feed_dir, "SQLite", str(t / "sync.db"))
        if os.environ.get("MEDFW_BENCH_PG", "1") != "0":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            try:
                bench_sync(t, feed_dir, "PostgreSQL", f"{PG}?schema={schema}")
            finally:
                import psycopg

                with psycopg.connect(PG, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
