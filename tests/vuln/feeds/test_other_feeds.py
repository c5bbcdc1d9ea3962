"""CVE 5, OSV, KEV and EPSS parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.errors import FeedError
from medfw.vuln.feeds.cve5 import parse_cve5
from medfw.vuln.feeds.epss import parse_epss
from medfw.vuln.feeds.kev import parse_kev
from medfw.vuln.feeds.osv import parse_osv, purl_base


def test_cve5_vulnrichment_adp(vuln_vectors: Path) -> None:
    p = vuln_vectors / "cve5/vulnrichment/2024/28xxx/CVE-2024-28755.json"
    records = {r.record_id: r for r in parse_cve5(p.read_bytes(), str(p)).records}
    assert records["CVE-2024-28755"].source == "cve5-cna"  # containers are kept apart
    rec = records["CVE-2024-28755#CISA-ADP"]
    assert rec.source == "cve5-adp" and rec.vuln_id == "CVE-2024-28755"
    assert rec.data["ssvc"] == {"exploitation": "none", "automatable": "yes", "technical_impact": "partial"}
    assert any(c["version"] == "3.1" for c in rec.data["cvss"])
    crit = [m for c in rec.data["configurations"] for n in c["nodes"] for m in n["cpeMatch"]]
    assert crit and all(m["criteria"].startswith("cpe:2.3:a:mbed:mbedtls:") for m in crit)


def test_cve5_skips_unparsable_range_start(vuln_vectors: Path) -> None:
    p = vuln_vectors / "cve5/vulnrichment/2024/28xxx/CVE-2024-28960.json"
    records = parse_cve5(p.read_bytes(), str(p)).records
    bounds = [
        m.get("versionStartIncluding")
        for rec in records
        for c in rec.data["configurations"]
        for n in c["nodes"]
        for m in n["cpeMatch"]
    ]
    assert "3.x" not in bounds


def test_cve5_vendor_record_openssl_letters(vuln_vectors: Path) -> None:
    p = vuln_vectors / "vendor/openssl/secjson/CVE-2024-0727.json"
    (rec,) = parse_cve5(p.read_bytes(), str(p)).records
    assert rec.data["ratings"] == [{"rating": "Low", "severity": "low", "source": "openssl"}]  # metrics.other
    ends = {m.get("versionEndExcluding") for c in rec.data["configurations"] for n in c["nodes"] for m in n["cpeMatch"]}
    assert {"1.1.1x", "1.0.2zj", "3.0.13"} <= ends


def test_cve5_not_a_record_is_a_skip(vuln_vectors: Path) -> None:
    p = vuln_vectors / "cve5/vulnrichment/index.json"
    r = parse_cve5(p.read_bytes(), str(p))
    assert not r.records and len(r.skips) == 1


def test_osv_yaml_git_record(vuln_vectors: Path) -> None:
    p = vuln_vectors / "osv/oss-fuzz-vulns/zstd/OSV-2022-110.yaml"
    (rec,) = parse_osv(p.read_bytes(), str(p)).records
    (aff,) = rec.data["osv"]
    assert aff["purl"] == "pkg:generic/zstd" and aff["ranges"][0]["type"] == "GIT"


def test_osv_alias_becomes_vuln_id(vuln_vectors: Path) -> None:
    p = vuln_vectors / "custom/osv-semver-mbedtls.json"
    (rec,) = parse_osv(p.read_bytes(), str(p)).records
    assert rec.record_id == "MEDFW-TEST-2026-1" and rec.vuln_id == "CVE-2024-28755"


def test_osv_bad_events_skip(tmp_path: Path) -> None:
    doc = {
        "id": "X-1",
        "modified": "2020-01-01T00:00:00Z",
        "affected": [{"ranges": [{"type": "SEMVER", "events": [{"fixed": "1"}]}]}],
    }
    p = tmp_path / "x.json"
    p.write_text(json.dumps(doc))
    r = parse_osv(p.read_bytes(), str(p))
    assert not r.records and "no introduced" in r.skips[0].reason


def test_osv_truncated_yaml() -> None:
    with pytest.raises(FeedError, match="YAML"):
        parse_osv(b"id: X\naffected:\n  - package: {name: [", "t.yaml")


def test_purl_base() -> None:
    assert purl_base("pkg:github/Mbed-TLS/mbedtls@v3.5.1?x=y") == "pkg:github/mbed-tls/mbedtls"


def test_kev(vuln_vectors: Path) -> None:
    cat = parse_kev((vuln_vectors / "kev/known_exploited_vulnerabilities.json").read_bytes(), "kev")
    assert cat.version == "2025.08.25" and len(cat.entries) == 1404
    assert "CVE-2014-0160" in cat.entries and not cat.skips


def test_kev_bad_entry_is_skipped() -> None:
    doc = {"catalogVersion": "1", "vulnerabilities": [{"cveID": "CVE-1-1"}]}
    cat = parse_kev(json.dumps(doc).encode(), "k")
    assert not cat.entries and len(cat.skips) == 1


def test_kev_wrong_format() -> None:
    with pytest.raises(FeedError, match="KEV"):
        parse_kev(b'{"vulnerabilities": []}', "k")


def test_epss(vuln_vectors: Path) -> None:
    s = parse_epss((vuln_vectors / "custom/epss_scores-2026-11-20.csv").read_bytes(), "e")
    assert s.score_date.startswith("2026-11-20") and s.scores["CVE-2014-0160"] == (0.94467, 0.99983)


def test_epss_bad_rows_and_header() -> None:
    s = parse_epss(
        b"cve,epss,percentile\nCVE-2020-0001,0.5,0.9\nCVE-2020-0002,x,0.1\nbogus,1,1\nCVE-2020-0003,2,0.1\n", "e"
    )
    assert list(s.scores) == ["CVE-2020-0001"] and len(s.skips) == 3
    with pytest.raises(FeedError, match="header"):
        parse_epss(b"a,b,c\n", "e")
