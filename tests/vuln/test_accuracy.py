"""Accuracy against vendor truth: curl's and OpenSSL's own affected-version data.

For several curl and OpenSSL versions an SBOM is scanned against the NVD-shaped extract (Anchore overrides plus
the official NVD API 2.0 records). Two checks:

1. **Matcher vs feed semantics** (must be exact): an independent oracle evaluates the same records with its own
   simple comparators (integer tuples for curl, OpenSSL letter releases as (length, letters)); the scanner must
   report exactly the (version, CVE) pairs the oracle derives — no platform CPE hits, no version-order errors.
2. **End to end vs vendor truth** (reported): recall = found / (vendor-affected pairs whose CVE the feed covers),
   precision = found-and-vendor-affected / found-where-the-vendor-assessed-the-branch. Every disagreement is
   listed with the feed bound and the vendor range; they are data disagreements between NVD and the vendor.

Run with ``-s`` to see the numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from medfw.vuln import import_feeds, open_index, scan
from medfw.vuln.index import VulnIndex

V = Path(__file__).parent.parent / "vectors" / "vuln"
CURL_KEYS = {"haxx:curl", "haxx:libcurl", "curl:curl", "curl:libcurl"}
OPENSSL_KEYS = {"openssl:openssl"}
CURL_VERSIONS = ["7.29.0", "7.58.0", "7.64.0", "7.74.0", "7.81.0", "7.88.1", "8.4.0", "8.9.1", "8.11.0", "8.17.0"]
OPENSSL_VERSIONS = ["1.0.1f", "1.0.2u", "1.0.2zj", "1.1.1k", "1.1.1w", "3.0.7", "3.0.13", "3.1.4", "3.2.1", "3.4.0"]


# ---- independent oracle comparators ------------------------------------------------------------------------


def curl_key(v: str) -> tuple[int, ...] | None:
    if not re.fullmatch(r"\d+(\.\d+)*", v):
        return None
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (4 - len(parts)))


def openssl_key(v: str) -> tuple[Any, ...] | None:
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?([a-z]*)", v)
    if m is None:
        return None
    a, b, c, letters = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), m.group(4)
    return (a, b, c, len(letters), letters)


def openssl_branch(v: str) -> tuple[int, ...]:
    k = openssl_key(v)
    assert k is not None
    return (k[0], k[1]) if k[0] >= 3 else (k[0], k[1], k[2])


# ---- the feed, read independently ---------------------------------------------------------------------------


def feed_records() -> dict[str, list[dict[str, Any]]]:
    """CVE → configurations, an override replacing NVD's (as NVD-shaped overrides are meant to)."""
    nvd: dict[str, list[dict[str, Any]]] = {}
    for p in sorted((V / "nvd/official-shapes").rglob("*.json")):
        doc = json.loads(p.read_text())
        for v in doc.get("vulnerabilities", []):
            nvd[v["cve"]["id"]] = v["cve"].get("configurations", [])
    for p in sorted((V / "nvd/anchore-overrides").glob("*/CVE-*.json")):
        doc = json.loads(p.read_text())
        nvd[doc["_annotation"]["cve_id"]] = doc["cve"]["configurations"]
    return nvd


def _crit_key(criteria: str) -> tuple[str, str]:
    parts = criteria.split(":")
    return f"{parts[3]}:{parts[4]}", parts[5]


def oracle(configs: list[dict[str, Any]], keys: set[str], version: str, key: Callable[[str], Any]) -> bool:
    vk = key(version)

    def crit_ok(m: dict[str, Any]) -> bool:
        ck, cver = _crit_key(m["criteria"])
        if ck not in keys:
            return False  # platforms (windows, esp32, …) are not in a library-only SBOM
        if cver != "*":
            return key(cver.replace("\\", "")) == vk
        for bound, ok in (
            ("versionStartIncluding", lambda b: vk >= b),
            ("versionStartExcluding", lambda b: vk > b),
            ("versionEndIncluding", lambda b: vk <= b),
            ("versionEndExcluding", lambda b: vk < b),
        ):
            if bound in m:
                b = key(m[bound])
                if b is None or not ok(b):
                    return False
        return True

    for conf in configs:
        results = []
        vulnerable_hit = False
        for node in conf["nodes"]:
            assert not node.get("negate"), "the oracle does not model negation"
            matched = [crit_ok(m) for m in node["cpeMatch"]]
            results.append(all(matched) if node.get("operator") == "AND" else any(matched))
            vulnerable_hit |= any(ok and m["vulnerable"] for ok, m in zip(matched, node["cpeMatch"], strict=True))
        holds = all(results) if conf.get("operator") == "AND" else any(results)
        if holds and vulnerable_hit:
            return True
    return False


def covers(configs: list[dict[str, Any]], keys: set[str]) -> bool:
    return any(
        m["vulnerable"] and _crit_key(m["criteria"])[0] in keys
        for c in configs
        for n in c["nodes"]
        for m in n["cpeMatch"]
    )


# ---- vendor truth ---------------------------------------------------------------------------------------------


def curl_truth() -> dict[str, Callable[[str], bool]]:
    doc = json.loads((V / "vendor/curl/curl_vulnerabilities.json").read_text())
    out: dict[str, Callable[[str], bool]] = {}
    for r in doc["vulnerabilities"]:
        lo, hi = curl_key(r["first_vulnerable"]), curl_key(r["last_vulnerable"])
        assert lo is not None and hi is not None
        out[r["cve"]] = lambda v, lo=lo, hi=hi: lo <= curl_key(v) <= hi  # type: ignore[misc,operator]
    return out


def openssl_truth() -> tuple[dict[str, list[tuple[Any, Any, bool]]], dict[str, set[tuple[int, ...]]]]:
    ranges: dict[str, list[tuple[Any, Any, bool]]] = {}
    branches: dict[str, set[tuple[int, ...]]] = {}
    for p in sorted((V / "vendor/openssl/secjson").glob("CVE-*.json")):
        doc = json.loads(p.read_text())
        cve = doc["cveMetadata"]["cveId"]
        for aff in doc["containers"]["cna"].get("affected", []):
            for v in aff.get("versions", []):
                if v.get("status") != "affected":
                    continue
                lo = openssl_key(v["version"])
                hi_text = v.get("lessThan") or v.get("lessThanOrEqual")
                hi = openssl_key(hi_text) if hi_text else lo
                if lo is None or hi is None:
                    continue
                ranges.setdefault(cve, []).append((lo, hi, "lessThan" not in v))
                branches.setdefault(cve, set()).add(openssl_branch(v["version"]))
    return ranges, branches


# ---- the test -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nvd_index(tmp_path_factory: pytest.TempPathFactory) -> VulnIndex:
    index = open_index(str(tmp_path_factory.mktemp("acc") / "nvd.db"))
    import_feeds(
        index,
        nvd=[
            str(V / "nvd/anchore-overrides"),
            str(V / "nvd/official-shapes/api-2.0-page"),
            str(V / "nvd/official-shapes/api-2.0-single"),
        ],
    )
    return index


def _scan_versions(index: VulnIndex, name: str, versions: Iterable[str], cpe: str) -> dict[tuple[str, str], list[str]]:
    comps = [
        {"type": "library", "bom-ref": f"{name}-{v}", "name": name, "version": v, "cpe": cpe.format(v=v)}
        for v in versions
    ]
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "urn:uuid:00000000-0000-4000-8000-000000000001",
        "version": 1,
        "components": comps,
    }
    result = scan(index, json.dumps(doc).encode())
    return {(f.component_version, f.vuln_id): [w.bound for w in f.why] for f in result.findings}


def _report(
    name: str,
    found: dict[tuple[str, str], list[str]],
    truth: set[tuple[str, str]],
    covered: set[str],
    assessed: set[tuple[str, str]],
    vendor_range: Callable[[str], str],
) -> tuple[float, float]:
    covered_truth = {p for p in truth if p[1] in covered}
    hit = set(found) & covered_truth
    judged = {p for p in found if p in assessed}
    correct = judged & truth
    recall = len(hit) / len(covered_truth) if covered_truth else 1.0
    precision = len(correct) / len(judged) if judged else 1.0
    print(
        f"\n== {name}: vendor-affected pairs covered by the feed {len(covered_truth)}, found {len(hit)}"
        f" -> recall {recall:.3f}; findings judged by the vendor {len(judged)}, vendor-confirmed {len(correct)}"
        f" -> precision {precision:.3f}; findings the vendor did not assess {len(set(found) - assessed)}"
    )
    for v, cve in sorted(covered_truth - set(found)):
        print(f"   missed  {cve} {name} {v}: NVD/feed range excludes it; vendor: {vendor_range(cve)}")
    for v, cve in sorted(judged - truth):
        print(f"   extra   {cve} {name} {v}: feed {found[(v, cve)]}; vendor: {vendor_range(cve)}")
    return recall, precision


def test_curl_accuracy(nvd_index: VulnIndex) -> None:
    records = feed_records()
    found = _scan_versions(nvd_index, "curl", CURL_VERSIONS, "cpe:2.3:a:haxx:curl:{v}:*:*:*:*:*:*:*")
    expected = {
        (v, cve) for cve, confs in records.items() for v in CURL_VERSIONS if oracle(confs, CURL_KEYS, v, curl_key)
    }
    assert set(found) == expected  # exact agreement with the feed's own semantics
    truth_fn = curl_truth()
    truth = {(v, cve) for cve, fn in truth_fn.items() for v in CURL_VERSIONS if fn(v)}
    covered = {cve for cve, confs in records.items() if covers(confs, CURL_KEYS)}
    assessed = {(v, cve) for v in CURL_VERSIONS for cve in truth_fn}
    doc = {
        r["cve"]: r for r in json.loads((V / "vendor/curl/curl_vulnerabilities.json").read_text())["vulnerabilities"]
    }
    recall, precision = _report(
        "curl",
        found,
        truth,
        covered,
        assessed,
        lambda c: f"{doc[c]['first_vulnerable']} <= v <= {doc[c]['last_vulnerable']}" if c in doc else "no record",
    )
    uncovered = sorted({cve for (_, cve) in truth if cve not in covered})
    print(
        f"   {len(uncovered)} vendor-affected CVEs are not in the NVD-shaped extract for curl (coverage gap, not a miss)"
    )
    assert recall >= 0.9 and precision >= 0.9


def test_openssl_accuracy(nvd_index: VulnIndex) -> None:
    records = feed_records()
    found = _scan_versions(nvd_index, "openssl", OPENSSL_VERSIONS, "cpe:2.3:a:openssl:openssl:{v}:*:*:*:*:*:*:*")
    expected = {
        (v, cve)
        for cve, confs in records.items()
        for v in OPENSSL_VERSIONS
        if oracle(confs, OPENSSL_KEYS, v, openssl_key)
    }
    assert set(found) == expected
    ranges, branches = openssl_truth()

    def affected(cve: str, v: str) -> bool:
        k = openssl_key(v)
        return any(lo <= k <= hi if incl else lo <= k < hi for lo, hi, incl in ranges.get(cve, []))  # type: ignore[operator]

    truth = {(v, cve) for cve in ranges for v in OPENSSL_VERSIONS if affected(cve, v)}
    covered = {cve for cve, confs in records.items() if covers(confs, OPENSSL_KEYS)}
    assessed = {(v, cve) for cve in branches for v in OPENSSL_VERSIONS if openssl_branch(v) in branches[cve]}

    def vendor_range(cve: str) -> str:
        if cve not in ranges:
            return "no OpenSSL record"
        return "; ".join(
            f"{'.'.join(map(str, lo[:3]))}{lo[4]} .. {'.'.join(map(str, hi[:3]))}{hi[4]}" for lo, hi, _ in ranges[cve]
        )

    recall, precision = _report("openssl", found, truth, covered, assessed, vendor_range)
    unassessed = sorted(p for p in found if p not in assessed)
    for v, cve in unassessed:
        print(f"   unassessed {cve} openssl {v}: vendor {vendor_range(cve)} (branch not listed: EOL or no record)")
    assert recall >= 0.9 and precision >= 0.9
