"""Scanning: aliases, purls, platforms, precedence of overrides, triage, exclusions, OSV."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from medfw.errors import ManifestError
from medfw.vuln import scan
from medfw.vuln.index import VulnIndex
from medfw.vuln.sbom_input import read_sbom


def _ids(index: VulnIndex, sbom: bytes) -> set[str]:
    return {f.vuln_id for f in scan(index, sbom).findings}


def test_alias_map_drifting_vendor(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    # CISA-ADP style mbed:mbedtls; NVD/Anchore use arm:mbed_tls and mbed-tls:mbedtls
    sbom = sbom_factory(
        [{"bom-ref": "m", "name": "mbedtls", "version": "3.5.1", "cpe": "cpe:2.3:a:mbed:mbedtls:3.5.1:*:*:*:*:*:*:*"}]
    )
    result = scan(full_index, sbom)
    f = next(x for x in result.findings if x.vuln_id == "CVE-2024-49195")
    assert f.why[0].source == "nvd-override" and "alias" in f.why[0].identity
    assert f.why[0].bound == "3.5.0 <= v < 3.6.2"
    # Mbed Crypto is a different product: CVE-2024-28960's mbed_crypto '*' criterion must not hit mbedtls 2.16
    old = sbom_factory(
        [{"bom-ref": "m", "name": "mbedtls", "version": "2.16.0", "cpe": "cpe:2.3:a:arm:mbed_tls:2.16.0:*:*:*:*:*:*:*"}]
    )
    assert "CVE-2024-28960" not in _ids(full_index, old)


def test_purl_only_component_uses_curated_map(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = sbom_factory([{"bom-ref": "c", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"}])
    result = scan(full_index, sbom)
    assert "CVE-2024-2398" in {f.vuln_id for f in result.findings}
    assert all("(alias map)" in f.why[0].identity for f in result.findings)


def test_unknown_purl_is_not_guessed(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = sbom_factory([{"bom-ref": "x", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl-fork@8.4.0"}])
    assert _ids(full_index, sbom) == set()


def test_platform_cpe_is_never_reported(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    # CVE-2025-11563 names haxx:curl only as vulnerable:false; CVE-2014-2522 needs Windows
    sbom = sbom_factory(
        [{"bom-ref": "c", "name": "curl", "version": "8.17.0", "cpe": "cpe:2.3:a:haxx:curl:8.17.0:*:*:*:*:*:*:*"}]
    )
    assert "CVE-2025-11563" not in _ids(full_index, sbom)
    old = sbom_factory(
        [{"bom-ref": "c", "name": "curl", "version": "7.35.0", "cpe": "cpe:2.3:a:haxx:curl:7.35.0:*:*:*:*:*:*:*"}]
    )
    assert "CVE-2014-2522" not in _ids(full_index, old)
    on_windows = sbom_factory(
        [
            {"bom-ref": "c", "name": "curl", "version": "7.35.0", "cpe": "cpe:2.3:a:haxx:curl:7.35.0:*:*:*:*:*:*:*"},
            {"bom-ref": "w", "name": "windows", "version": "-", "cpe": "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"},
        ]
    )
    found = [f for f in scan(full_index, on_windows).findings if f.vuln_id == "CVE-2014-2522"]
    assert [f.component_ref for f in found] == ["c"]


def test_esp_idf_and_esp32_hardware(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    idf = {
        "bom-ref": "idf",
        "name": "esp-idf",
        "version": "4.1",
        "cpe": "cpe:2.3:a:espressif:esp-idf:4.1:*:*:*:*:*:*:*",
    }
    assert "CVE-2020-13595" not in _ids(full_index, sbom_factory([idf]))
    chip = {"bom-ref": "chip", "name": "esp32", "version": "-", "cpe": "cpe:2.3:h:espressif:esp32:-:*:*:*:*:*:*:*"}
    found = [f for f in scan(full_index, sbom_factory([idf, chip])).findings if f.vuln_id == "CVE-2020-13595"]
    assert [f.component_ref for f in found] == ["idf"] and found[0].severity == "medium"


def test_openssl_letter_release_bounds(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    def ids(v: str) -> set[str]:
        return _ids(
            full_index,
            sbom_factory(
                [
                    {
                        "bom-ref": "o",
                        "name": "openssl",
                        "version": v,
                        "cpe": f"cpe:2.3:a:openssl:openssl:{v}:*:*:*:*:*:*:*",
                    }
                ]
            ),
        )

    w, k = ids("1.1.1w"), ids("1.1.1k")
    assert w < k  # everything fixed by 1.1.1w still affects 1.1.1k
    assert "CVE-2024-5535" in w  # 1.1.1 <= v < 1.1.1za
    assert "CVE-2024-5535" not in ids("1.1.1za")
    assert "CVE-2024-5535" not in ids("1.2.11")  # not inside 1.1.1..1.1.1za (a semver-ish parser says it is)


def test_kev_epss_and_priority(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = sbom_factory(
        [
            {"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"},
            {
                "bom-ref": "m",
                "name": "mbedtls",
                "version": "3.5.1",
                "cpe": "cpe:2.3:a:arm:mbed_tls:3.5.1:*:*:*:*:*:*:*",
            },
        ]
    )
    result = scan(full_index, sbom)
    first = result.findings[0]
    assert (first.vuln_id, first.kev, first.severity, first.score) == ("CVE-2014-0160", True, "high", 7.5)
    assert first.epss == 0.94467 and first.priority == 1 and first.network
    assert result.findings[1].severity == "critical"  # a critical non-KEV comes after the KEV high
    mbed = next(f for f in result.findings if f.vuln_id == "CVE-2024-28755")
    assert mbed.ssvc["exploitation"] == "none"  # SSVC from the CISA-ADP container
    assert [f.priority for f in result.findings] == list(range(1, len(result.findings) + 1))


def test_osv_semver_range_merges_with_cve(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = sbom_factory([{"bom-ref": "m", "name": "mbedtls", "version": "3.5.1", "purl": "pkg:generic/mbedtls@3.5.1"}])
    f = next(x for x in scan(full_index, sbom).findings if x.vuln_id == "CVE-2024-28755")
    assert {w.source for w in f.why} == {"nvd-override", "osv"}
    assert "MEDFW-TEST-2026-1" in f.aliases
    osv_why = next(w for w in f.why if w.source == "osv")
    assert osv_why.bound.startswith("listed version 3.5.1") or "3.5.0 <= v < 3.6.0" in osv_why.bound


def test_osv_versions_list_and_git_ranges(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    # OSV-2022-15 lists tags v1.4.8..v1.5.1; the other zstd records carry GIT ranges only (never evaluated)
    sbom = sbom_factory([{"bom-ref": "z", "name": "zstd", "version": "1.5.0", "purl": "pkg:generic/zstd@1.5.0"}])
    (f,) = scan(full_index, sbom).findings
    assert (f.vuln_id, f.why[0].bound) == ("OSV-2022-15", "listed version v1.5.0")
    old = sbom_factory([{"bom-ref": "z", "name": "zstd", "version": "1.3.0", "purl": "pkg:generic/zstd@1.3.0"}])
    assert _ids(full_index, old) == set()


def test_cve_exclude_list(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    props = [
        {
            "name": "medfw:cve-exclude",
            "value": json.dumps(
                {"cve": "CVE-2024-2398", "reason": "HTTP2 disabled at build", "justification": "requires_configuration"}
            ),
        },
        {"name": "medfw:cve-exclude", "value": json.dumps({"cve": "CVE-2024-7264"})},
    ]
    sbom = sbom_factory(
        [{"bom-ref": "c", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0", "properties": props}]
    )
    result = scan(full_index, sbom)
    by_id = {f.vuln_id: f for f in result.findings}
    d = by_id["CVE-2024-2398"].decision
    assert (
        d is not None
        and d.state == "not_affected"
        and d.source == "sbom-exclude"
        and d.detail == "HTTP2 disabled at build"
    )
    assert by_id["CVE-2024-7264"].handled
    assert result.findings[-1].handled  # handled findings sort last


def test_sbom_without_identities(sbom_factory: Callable[..., bytes]) -> None:
    with pytest.raises(ManifestError, match="no component identities"):
        read_sbom(sbom_factory([{"bom-ref": "x", "name": "mystery", "version": "1"}]))
    with pytest.raises(ManifestError):
        read_sbom(b'{"spdxVersion": "SPDX-2.3"}')
    with pytest.raises(ManifestError, match="not a CycloneDX"):
        read_sbom(b"SPDXVersion: SPDX-2.3")
    with pytest.raises(ManifestError) as e:
        read_sbom(b'{"bomFormat": "CycloneDX", "components": [')
    assert e.value.offset is not None


def test_components_without_identity_are_warned(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = sbom_factory(
        [
            {"bom-ref": "c", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"},
            {"bom-ref": "app", "name": "app", "version": "1"},
        ]
    )
    assert any(w.startswith("app:") for w in scan(full_index, sbom).warnings)


def test_evidence_identity_cpes(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    comp = {
        "bom-ref": "c",
        "name": "libcurl",
        "version": "8.4.0",
        "evidence": {"identity": [{"field": "cpe", "concludedValue": "cpe:2.3:a:haxx:libcurl:8.4.0:*:*:*:*:*:*:*"}]},
    }
    assert "CVE-2024-2398" in _ids(full_index, sbom_factory([comp]))


def test_bad_exclude_property(sbom_factory: Callable[..., bytes]) -> None:
    props = [{"name": "medfw:cve-exclude", "value": "CVE-2024-2398"}]
    with pytest.raises(ManifestError, match="cve-exclude"):
        read_sbom(
            sbom_factory(
                [
                    {
                        "bom-ref": "c",
                        "name": "curl",
                        "version": "8.4.0",
                        "purl": "pkg:generic/curl@8.4.0",
                        "properties": props,
                    }
                ]
            )
        )


def test_parts_of_a_listed_package_do_not_repeat_its_findings(
    full_index: VulnIndex, sbom_factory: Callable[..., bytes]
) -> None:
    # ESP-IDF components carry the framework's purl with a subpath; the framework itself is listed too
    idf = "pkg:github/espressif/esp-idf@v5.3.1"
    parts = [
        {"bom-ref": f"component:{n}", "name": n, "version": "5.3.1", "purl": f"{idf}#components/{n}"}
        for n in ("log", "esp_wifi", "lwip")
    ]
    framework = {
        "bom-ref": "esp-idf",
        "name": "esp-idf",
        "version": "5.3.1",
        "purl": idf,
        "cpe": "cpe:2.3:a:espressif:esp-idf:5.3.1:*:*:*:*:*:*:*",
    }
    with_package = scan(full_index, sbom_factory([framework, *parts])).findings
    assert with_package, "the framework itself must still match"
    assert {f.component_ref for f in with_package} == {"esp-idf"}
    # with no package component in the SBOM, the parts are matched through their purl (nothing is lost)
    parts_only = scan(full_index, sbom_factory(parts)).findings
    assert {f.vuln_id for f in parts_only} == {f.vuln_id for f in with_package}
