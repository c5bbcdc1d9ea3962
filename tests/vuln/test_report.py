"""Report renderers: the HTML report is self-contained and escapes everything; CycloneDX validates."""

from __future__ import annotations

import datetime as dt

from medfw.vuln.model import Decision, Finding, MatchReason, ScanComponent, ScanInput, ScanResult
from medfw.vuln.report import to_cyclonedx, to_html
from medfw.vuln.vex import validate_cyclonedx

SERIAL = "urn:uuid:12345678-1234-4234-8234-123456789abc"


def _result() -> ScanResult:
    sbom = ScanInput(SERIAL, 2, "pump <fw>", (ScanComponent("c", "curl", "8.4.0", "pkg:generic/curl@8.4.0"),), "ab")
    why = (MatchReason("nvd", "CVE-2024-2398", "cpe:2.3:a:haxx:curl:*:*:*:*:*:*:*:*", "7.44.0 <= v < 8.7.0", "x"),)
    d = Decision(
        SERIAL,
        "c",
        "CVE-2024-2398",
        "not_affected",
        "code_not_reachable",
        (),
        "<script>alert(1)</script>",
        "qa",
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    f = Finding(
        "CVE-2024-2398",
        "c",
        "curl",
        "8.4.0",
        "high",
        8.6,
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:H",
        False,
        0.003,
        0.5,
        {},
        True,
        why,
        d,
        "desc",
        (),
        1,
    )
    g = Finding(
        "CVE-2014-0160",
        "c",
        "curl",
        "8.4.0",
        "critical",
        None,
        None,
        True,
        None,
        None,
        {"exploitation": "active"},
        False,
        why,
    )
    return ScanResult(sbom, (g, f))


def test_html_escapes_and_groups() -> None:
    page = to_html(_result())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "pump &lt;fw&gt;" in page
    assert page.index("CRITICAL") < page.index("HIGH")
    assert "KEV" in page and "no decision" in page


def test_cyclonedx_findings_validate() -> None:
    doc = to_cyclonedx(_result())
    assert validate_cyclonedx(doc) is None
    v = next(x for x in doc["vulnerabilities"] if x["id"] == "CVE-2024-2398")
    assert v["affects"][0]["ref"] == "urn:cdx:12345678-1234-4234-8234-123456789abc/2#c"
    assert v["analysis"]["justification"] == "code_not_reachable" and v["ratings"][0]["method"] == "CVSSv31"
