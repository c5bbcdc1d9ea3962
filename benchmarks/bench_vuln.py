"""Vulnerability-scanning benchmark: feed import time, and scans of a 1,000-component SBOM against a feed scaled
to 250,000 CVE records.

1. Import of the shipped real extracts (tests/vectors/vuln: NVD API 2.0 + NVD-shaped overrides, CVE 5, OSV,
   KEV, EPSS) into a fresh SQLite index, and a no-change re-import.
2. A synthetic feed of ``RECORDS`` NVD API 2.0 records generated from the real NVD-shaped records: record *i*
   is real record ``i % n`` with its CVE id renumbered and every vendor/product renamed into product family
   ``i // n`` (``haxx:curl`` → ``haxx:curl-s17``), so each of the families (646 at 250,000 records) repeats the real distribution
   of criteria, bounds, AND/platform configurations. Written as API 2.0 pages and imported with ``import_feeds``.
3. Scans of a 1,000-component SBOM (real product names and versions spread over the families) against it:
   wall time per scan after import (best and median of ``REPEAT``), peak RSS.

Reference, side by side: Espressif's esp-idf-sbom (the ``bench`` extra) evaluates NVD configurations per CPE
with ``libsbom.nvd.is_configuration_vulnerable`` / ``is_version_vulnerable``. It has no local index (it asks the
NVD API or greps a git mirror by CPE), so it is given the candidate records medfw's index found, already parsed
in memory, and only its evaluation is timed — a comparison that favours the reference. Its findings are
compared with medfw's.

Run: ``python benchmarks/bench_vuln.py`` (about 5 minutes on 2 cores; ``MEDFW_BENCH_RECORDS`` to change size).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from medfw.vuln import import_feeds, open_index
from medfw.vuln import scanner as scanner_mod
from medfw.vuln.match_store import candidates
from medfw.vuln.sbom_input import read_sbom

ROOT = Path(__file__).resolve().parent.parent
VEC = ROOT / "tests" / "vectors" / "vuln"
RECORDS = int(os.environ.get("MEDFW_BENCH_RECORDS", "250000"))
COMPONENTS = 1000
PAGE = 2000
REPEAT = 5


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _real_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in sorted((VEC / "nvd/anchore-overrides").glob("*/CVE-*.json")):
        doc = json.loads(p.read_text())
        out.append({"id": doc["_annotation"]["cve_id"], "configurations": doc["cve"]["configurations"]})
    for p in sorted((VEC / "nvd/official-shapes").rglob("*.json")):
        for v in json.loads(p.read_text()).get("vulnerabilities", []):
            out.append(
                {
                    "id": v["cve"]["id"],
                    "configurations": v["cve"].get("configurations", []),
                    "metrics": v["cve"].get("metrics", {}),
                }
            )
    return out


def _rename(configs: list[dict[str, Any]], family: int) -> list[dict[str, Any]]:
    out = json.loads(json.dumps(configs))
    for conf in out:
        for node in conf["nodes"]:
            for m in node["cpeMatch"]:
                parts = m["criteria"].split(":")
                parts[4] = f"{parts[4]}-s{family}"
                m["criteria"] = ":".join(parts)
    return out


def write_synthetic(dst: Path, n_records: int) -> tuple[int, list[tuple[str, str, str]]]:
    """Write ``n_records`` API 2.0 records in pages; return (families, products (vendor, product, a version))."""
    real = _real_records()
    products: dict[tuple[str, str], str] = {}
    for r in real:
        for conf in r["configurations"]:
            for node in conf["nodes"]:
                for m in node["cpeMatch"]:
                    parts = m["criteria"].split(":")
                    if m["vulnerable"] and parts[2] == "a":
                        ver = m.get("versionEndExcluding") or m.get("versionEndIncluding") or parts[5]
                        products.setdefault((parts[3], parts[4]), ver if ver not in "*-" else "1.0.0")
    page: list[dict[str, Any]] = []
    n_page = 0
    for i in range(n_records):
        r = real[i % len(real)]
        family = i // len(real)
        cve = {
            "id": f"CVE-{2000 + i % 27}-{1000000 + i}",
            "published": "2026-01-01T00:00:00.000",
            "lastModified": "2026-06-01T00:00:00.000",
            "vulnStatus": "Analyzed",
            "descriptions": [{"lang": "en", "value": f"synthetic record from {r['id']}"}],
            "metrics": r.get("metrics", {}),
            "configurations": _rename(r["configurations"], family),
        }
        page.append({"cve": cve})
        if len(page) == PAGE or i == n_records - 1:
            doc = {
                "resultsPerPage": len(page),
                "startIndex": n_page * PAGE,
                "totalResults": n_records,
                "format": "NVD_CVE",
                "version": "2.0",
                "timestamp": "2026-11-20T00:00:00.000",
                "vulnerabilities": page,
            }
            (dst / f"page-{n_page:04d}.json").write_text(json.dumps(doc))
            page = []
            n_page += 1
    families = (n_records + len(real) - 1) // len(real)
    return families, [(v, p, ver) for (v, p), ver in sorted(products.items())]


def make_sbom(families: int, products: list[tuple[str, str, str]]) -> bytes:
    rng = random.Random(7)
    comps = []
    for i in range(COMPONENTS):
        vendor, product, ver = products[i % len(products)]
        fam = rng.randrange(families)
        v = ver
        comps.append(
            {
                "type": "library",
                "bom-ref": f"c{i}",
                "name": f"{product}-s{fam}",
                "version": v,
                "cpe": f"cpe:2.3:a:{vendor}:{product}-s{fam}:{v}:*:*:*:*:*:*:*",
            }
        )
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "urn:uuid:00000000-0000-4000-8000-00000000b001",
        "version": 1,
        "metadata": {"component": {"type": "firmware", "name": "bench-fw"}},
        "components": comps,
    }
    return json.dumps(doc).encode()


def explain_difference(index: Any, sbom_bytes: bytes, pairs: set[tuple[str, str]]) -> dict[str, int]:
    """Classify the findings only the reference reports, by the criterion it matched."""
    comps = {c.ref: c for c in read_sbom(sbom_bytes).components}
    recs = index.records_by_rid({f"nvd|{v}" for _, v in pairs})
    out = {
        "AND/platform configuration ignored": 0,
        "criterion restricted to a target_sw/edition": 0,
        "version order (reference: 39 < 39.0)": 0,
    }
    for ref, v in pairs:
        confs = recs[f"nvd|{v}"].data.get("configurations", [])
        base = ":".join(comps[ref].cpes[0].split(":")[:5]) + ":"
        crits = [
            m["criteria"] for c in confs for n in c["nodes"] for m in n["cpeMatch"] if m["criteria"].startswith(base)
        ]
        if any(c.get("operator") == "AND" for c in confs):
            out["AND/platform configuration ignored"] += 1
        elif crits and all(any(x not in ("*", "-") for x in c.split(":")[6:]) for c in crits):
            out["criterion restricted to a target_sw/edition"] += 1
        else:
            out["version order (reference: 39 < 39.0)"] += 1
    return out


def reference_findings(index: Any, sbom_bytes: bytes) -> tuple[float, set[tuple[str, str]], int]:
    """esp-idf-sbom's evaluation over the candidate records medfw's index found (pre-loaded)."""
    from esp_idf_sbom.libsbom import nvd as esp_nvd

    sbom = read_sbom(sbom_bytes)
    by_key, _, _ = scanner_mod.build_targets(sbom.components, scanner_mod.default_aliases())
    cands = candidates(index, {f"cpe:{k}" for k in by_key})
    recs = index.records_by_rid(cands)
    work = [
        (c.ref, c.cpes[0], r)
        for c in sbom.components
        for r in recs.values()
        if f"cpe:{c.cpes[0].split(':')[3]}:{c.cpes[0].split(':')[4]}" in cands.get(f"nvd|{r.record_id}", set())
    ]
    start = time.process_time()
    found: set[tuple[str, str]] = set()
    for ref, cpe, r in work:
        for conf in r.data.get("configurations", []):
            cfg = {
                "nodes": [
                    {"operator": n.get("operator", "OR"), "negate": n.get("negate", False), "cpeMatch": n["cpeMatch"]}
                    for n in conf["nodes"]
                ],
                "operator": conf.get("operator", "OR") if len(conf["nodes"]) > 1 else None,
                "negate": conf.get("negate", False),
            }
            if esp_nvd.is_version_vulnerable(cpe, cfg):
                found.add((ref, r.vuln_id))
                break
    return time.process_time() - start, found, len(work)


def main() -> None:
    print(f"machine: {os.cpu_count()} cores; records {RECORDS}, SBOM components {COMPONENTS}")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        # 1. real extracts
        index = open_index(str(t / "real.db"))
        feeds = {
            "nvd": [str(VEC / "nvd"), str(VEC / "custom/heartbleed-nvd-api-2.0.json")],
            "cve5": [str(VEC / "cve5")],
            "osv": [str(VEC / "osv")],
            "kev": [str(VEC / "kev/known_exploited_vulnerabilities.json")],
            "epss": [str(VEC / "custom/epss_scores-2026-11-20.csv")],
        }
        start = time.perf_counter()
        rep = import_feeds(index, **feeds)
        first = time.perf_counter() - start
        start = time.perf_counter()
        rep2 = import_feeds(index, **feeds)
        second = time.perf_counter() - start
        index.close()
        n_real = rep.total("added")
        print(
            f"real extracts: {rep.files} files, {n_real} records/entries added in {first:.2f} s; "
            f"re-import ({rep2.total('unchanged')} unchanged) {second:.2f} s"
        )

        # 2. synthetic feed
        feed_dir = t / "synthetic"
        feed_dir.mkdir()
        start = time.perf_counter()
        families, products = write_synthetic(feed_dir, RECORDS)
        gen = time.perf_counter() - start
        index = open_index(str(t / "big.db"))
        start = time.perf_counter()
        rep = import_feeds(index, nvd=[str(feed_dir)])
        imp = time.perf_counter() - start
        size = (t / "big.db").stat().st_size / 2**20
        print(
            f"synthetic feed: {rep.counts['nvd']['added']} records ({families} product families) generated in {gen:.1f} s, "
            f"imported in {imp:.1f} s ({rep.counts['nvd']['added'] / imp:.0f} records/s), database {size:.0f} MiB"
        )

        # 3. scans
        sbom_bytes = make_sbom(families, products)
        sbom = read_sbom(sbom_bytes)
        times = []
        cpu = []
        result = None
        for _ in range(REPEAT):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = scanner_mod.scan(index, sbom)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert result is not None
        medfw_found = {(f.component_ref, f.vuln_id) for f in result.findings}
        best, median = min(times), statistics.median(times)
        print(
            f"scan: {len(result.findings)} findings; wall best {best:.3f} s, median {median:.3f} s; "
            f"CPU best {min(cpu):.3f} s, median {statistics.median(cpu):.3f} s; peak RSS {_rss_mib():.0f} MiB; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        try:
            ref_time, ref_found, pairs = reference_findings(index, sbom_bytes)
        except ImportError:
            print("esp-idf-sbom not installed (pip install -e '.[bench]'): no reference row")
            ref_time, ref_found, pairs = float("nan"), set(), 0
        why = explain_difference(index, sbom_bytes, ref_found - medfw_found)
        index.close()
        print()
        print("| measurement | medfw | esp-idf-sbom | medfw / reference |")
        print("|---|---:|---:|---:|")
        print(
            f"| CPU time, 1,000 components vs {RECORDS:,} records | {min(cpu):.3f} s (whole scan incl. DB lookup) | "
            f"{ref_time:.3f} s (evaluation only, {pairs} component×record pairs) | {min(cpu) / ref_time:.2f} |"
        )
        print(
            f"| findings | {len(medfw_found)} | {len(ref_found)} | only medfw {len(medfw_found - ref_found)}, "
            f"only esp-idf-sbom {len(ref_found - medfw_found)} |"
        )
        print(f"findings only esp-idf-sbom reports, by cause: {why}")


if __name__ == "__main__":
    main()
