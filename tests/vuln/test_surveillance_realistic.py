"""The realistic ESP-IDF 5.2.1 firmware SBOM (15 components) against every imported source.

Severity for every finding names its source or is "unscored" with the reason; every component no record describes
is listed as "no feed data"; sources are kept apart so import order never changes a severity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

from medfw.vuln import import_feeds, open_index, scan
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import ScanResult

V = Path(__file__).parent.parent / "vectors" / "vuln"
SBOM = V / "custom" / "esp-idf-5.2.1-realistic.cdx.json"
NO_DATA = {"freertos", "lwip", "wpa_supplicant", "cjson", "littlefs", "tinycbor"}


def _import_all(index: VulnIndex) -> None:
    import_feeds(
        index,
        cve5=[str(V / "cve5"), str(V / "vendor/openssl/secjson")],
        nvd=[str(V / "nvd"), str(V / "custom/heartbleed-nvd-api-2.0.json")],
        osv=[str(V / "osv")],
        vendor=[str(V / "vendor/curl/curl_vulnerabilities.json")],
        kev=[str(V / "kev/known_exploited_vulnerabilities.json")],
        epss=[str(V / "custom/epss_scores-2026-11-20.csv")],
    )


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> tuple[VulnIndex, ScanResult]:
    index = open_index(str(tmp_path_factory.mktemp("real") / "real.db"))
    _import_all(index)
    return index, scan(index, SBOM)


def _independently_scorable(records: list[dict[str, object]]) -> bool:
    """Whether any stored record carries a parsable CVSS 3.x/4.0 vector or a qualitative vendor rating."""
    for data in records:
        for e in data.get("cvss") or []:  # type: ignore[union-attr]
            try:
                if str(e["version"]).startswith("4"):
                    CVSS4(e["vector"])
                elif str(e["version"]).startswith("3"):
                    CVSS3(e["vector"])
                else:
                    continue
            except (CVSSError, ValueError, KeyError):
                continue
            return True
        if data.get("ratings"):
            return True
    return False


def test_no_bare_unknown_and_scored_with_source(realistic: tuple[VulnIndex, ScanResult]) -> None:
    index, result = realistic
    assert len(result.findings) > 100
    assert not [f for f in result.findings if f.severity == "unknown"]
    stored = index.records_for({f.vuln_id for f in result.findings})
    scorable = [f for f in result.findings if _independently_scorable([r.data for r in stored[f.vuln_id]])]
    scored = [f for f in scorable if f.severity != "unscored" and f.severity_source]
    print(f"\nfindings {len(result.findings)}, scorable {len(scorable)}, shown scored {len(scored)}")
    assert len(scored) >= 0.95 * len(scorable) and len(scorable) > 80
    for f in result.findings:
        if f.severity == "unscored":
            assert f.unscored_reason.startswith("no imported source scores it") and f.score is None
        else:
            assert f.severity_source, f.vuln_id
    # vendor ratings count: OpenSSL's Low/Moderate/High and curl's table
    sources = {f.severity_source for f in result.findings}
    assert any(s.startswith("vendor rating") and "(openssl)" in s for s in sources)
    assert any(s.startswith("vendor rating") and "(curl)" in s for s in sources)


def test_every_no_data_component_listed(realistic: tuple[VulnIndex, ScanResult]) -> None:
    _, result = realistic
    assert {n.ref for n in result.no_data} == NO_DATA
    lwip = next(n for n in result.no_data if n.ref == "lwip")
    assert "cpe:2.3:a:lwip_project:lwip:2.1.3:*:*:*:*:*:*:*" in lwip.identifiers
    assert "no imported record names" in lwip.reason
    found_components = {f.component_ref for f in result.findings}
    assert not found_components & NO_DATA
    doc = result.as_dict()
    assert {n["ref"] for n in doc["no_data"]} == NO_DATA
    assert {"nvd", "cve5", "osv", "vendor", "kev", "epss"} <= set(doc["feed"])
    assert doc["feed"]["kev"]["version"] == "2025.08.25"


@pytest.mark.parametrize("openssl_first", [False, True])
def test_cna_and_adp_kept_apart_whatever_the_order(tmp_path: Path, openssl_first: bool) -> None:
    index = open_index(str(tmp_path / "o.db"))
    parts = [str(V / "cve5"), str(V / "vendor/openssl/secjson")]
    for part in reversed(parts) if openssl_first else parts:
        import_feeds(index, cve5=[part])
    sbom = json.loads(SBOM.read_text())
    sbom["components"] = [c for c in sbom["components"] if c["name"] == "openssl"]
    result = scan(index, json.dumps(sbom).encode())
    f = next(f for f in result.findings if f.vuln_id == "CVE-2024-5535")
    assert (f.severity, f.score, f.severity_source) == ("critical", 9.1, "CISA-ADP CVSS 3.1")
    index.close()


def test_reimport_of_identical_data_changes_nothing(tmp_path: Path) -> None:
    index = open_index(str(tmp_path / "r.db"))
    _import_all(index)
    before = index.record_count()
    report = import_feeds(
        index,
        nvd=[str(V / "nvd"), str(V / "custom/heartbleed-nvd-api-2.0.json")],
        cve5=[str(V / "cve5"), str(V / "vendor/openssl/secjson")],
        osv=[str(V / "osv")],
        vendor=[str(V / "vendor/curl/curl_vulnerabilities.json")],
        kev=[str(V / "kev/known_exploited_vulnerabilities.json")],
        epss=[str(V / "custom/epss_scores-2026-11-20.csv")],
    )
    assert report.total("added") == 0 and report.total("updated") == 0
    assert report.total("unchanged") > 1000 and index.record_count() == before
    index.close()
