"""The reviewer's HTML report: self-contained, escaped, and rendered by headless Chromium without errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medfw.evidence.pdf import print_pdf
from medfw.evidence.report import CheckLine, ReportData, render_report, severity_counts
from medfw.evidence.trace import TRACE_MATRIX
from medfw.evidence.verdict import closure, summarize_open

from .conftest import Built

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def _hostile() -> ReportData:
    evil = "<script>alert(1)</script>\"'&"
    return ReportData(
        release={"name": evil, "version": "1"},
        created="2026-01-01T00:00:00Z",
        checks=[CheckLine(evil, False, evil, evil)],
        components=[{"name": evil, "version": evil, "supplier": evil, "license": evil, "purl": evil}],
        findings=[{"id": evil, "component": evil, "severity": evil, "state": evil, "detail": evil}],
        trace=TRACE_MATRIX,
        audit_events=[{"seq": 1, "time": evil, "type": evil, "outcome": "denied", "reason": evil, "actor": evil}],
        history=[(evil, {"critical": 1})],
        files=[{"path": evil, "size": 1, "sha256": evil}],
    )


def test_values_are_escaped_and_nothing_is_fetched() -> None:
    html = render_report(_hostile())
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "Content-Security-Policy" in html
    assert severity_counts([{"severity": "weird"}, {"severity": "HIGH"}])["unknown"] == 1


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(built: Built, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    shutil.copyfile(built.path / "report.html", report)
    dom = _chromium(["--dump-dom", report.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    text = dom.stdout
    for section in ("summary", "components", "findings", "history", "traceability", "audit", "files"):
        assert f'<section id="{section}">' in text
    assert "Release evidence: infusion-pump-fw 1.1.0" in text
    assert f'<b id="finding-count">{built.release.findings}</b>' in text
    assert '<b id="checks-passed">9/9</b>' in text
    for cve in ("CVE-2024-49195", "CVE-2024-30166", "CVE-2024-28755"):
        assert cve in text
    assert "not_affected" in text and "exploitable" in text
    assert "no-longer-maintained" in text and "2027-03-31" in text
    assert 'aria-label="severity distribution"' in text and 'aria-label="findings over releases"' in text
    assert ">1.0.0</text>" in text and ">1.1.0</text>" in text
    scan = json.loads((built.path / "vuln/scan.json").read_text())
    assert len(re.findall(r"<tr(?: class=kev)?><td>CVE-", text)) == len(scan["findings"])
    assert '<b id="verdict-word">PASS</b>' in text and text.index('id="verdict"') < text.index('id="summary"')
    assert text.count("release.sign") >= 2 and "vuln.decision" in text
    for row in TRACE_MATRIX:
        assert row.tests[0] in text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "evidence-report.png"
    png = tmp_path / "report.png"
    done = _chromium([f"--screenshot={png}", "--window-size=1400,3000", report.as_uri()], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _console_errors(done.stderr) == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.copyfile(png, shot)


def _finding(i: str, sev: str, state: str | None, **kw: object) -> dict[str, object]:
    return {"id": i, "component": "mbedtls", "severity": sev, "state": state, **kw}


OPEN_CASE = [
    _finding("CVE-2025-0001", "low", "not_affected", justification="code_not_reachable"),
    _finding("CVE-2025-0002", "high", "resolved"),
    _finding("CVE-2025-0003", "medium", "exploitable", response="update", detail="patch in 1.2, due 2027-01-31"),
    _finding("CVE-2025-0004", "critical", "exploitable", response="update", detail="no date yet"),
    _finding("CVE-2025-0005", "high", "exploitable", detail="due 2027-01-31"),
    _finding("CVE-2025-0006", "unknown", "not_affected"),
    _finding("CVE-2099-0007", "medium", "in_triage", kev=True, severity_source="CISA-ADP CVSS 3.1"),
    *[_finding(f"CVE-2025-01{n:02d}", "medium", "in_triage", severity_source="NVD primary CVSS 3.1") for n in range(8)],
    _finding("CVE-2025-0200", "unknown", None),
]


def test_only_closing_decisions_close_a_finding() -> None:
    closed = {str(f["id"]): closure(f).closed for f in OPEN_CASE}
    assert [k for k, v in closed.items() if v] == ["CVE-2025-0001", "CVE-2025-0002", "CVE-2025-0003"]
    assert closure(OPEN_CASE[3]).reason == "exploitable without a due date"
    assert closure(OPEN_CASE[4]).reason == "exploitable without a response"
    assert closure(OPEN_CASE[2]).due == "2027-01-31"
    summary = summarize_open(OPEN_CASE)
    assert summary.startswith("CVE-2099-0007 (mbedtls), CVE-2025-0004 (mbedtls)")  # KEV first, then critical
    assert summary.endswith("and 8 more (all listed under Open items)")


def _open_report() -> str:
    return render_report(
        ReportData(
            release={"name": "pump", "version": "2.0.0"},
            created="2026-01-01T00:00:00Z",
            checks=[CheckLine("Image signatures", True, "ok"), CheckLine("Vulnerability decisions", False, "13 open")],
            components=[],
            findings=OPEN_CASE,
            trace=TRACE_MATRIX,
            audit_events=[],
        )
    )


def test_one_verdict_banner_every_open_item_kev_first_severity_source() -> None:
    html = _open_report()
    assert html.count('id="verdict"') == 1 and '<b id="verdict-word">FAIL</b>' in html
    banner = html[html.index('id="verdict"') : html.index("</section>", html.index('id="verdict"'))]
    assert "1/2 checks pass" in banner and "13 open (1 known exploited)" in banner and "#open-items" in banner
    assert html.index('id="verdict"') < html.index('id="summary"') < html.index('id="open-items"')
    open_items = html[html.index('id="open-items"') : html.index('id="findings"')]
    for f in OPEN_CASE[3:]:
        assert str(f["id"]) in open_items
    for f in OPEN_CASE[:3]:
        assert str(f["id"]) not in open_items
    assert '<b id="open-count">13</b>' in html
    findings = html[html.index('id="findings"') :]
    rows = re.findall(r"<tr(?: class=kev)?><td>(CVE-[0-9-]+)", findings)
    assert rows[0] == "CVE-2099-0007" and rows[1] == "CVE-2025-0004"  # KEV first, then by severity
    assert "<tr class=kev><td>CVE-2099-0007" in findings
    assert "CISA-ADP CVSS 3.1" in findings and "no score in any feed" in findings


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_pdf_has_the_verdict_on_page_one(built: Built, tmp_path: Path) -> None:
    from pypdf import PdfReader

    page1 = PdfReader(built.path / "report.pdf").pages[0].extract_text()
    assert "PASS" in page1 and "Release evidence: infusion-pump-fw 1.1.0" in page1
    html = tmp_path / "open.html"
    html.write_text(_open_report(), encoding="utf-8")
    print_pdf(html, tmp_path / "open.pdf")
    reader = PdfReader(tmp_path / "open.pdf")
    assert "FAIL" in reader.pages[0].extract_text() and "13 open" in reader.pages[0].extract_text()
    assert "CVE-2025-0200" in "".join(p.extract_text() for p in reader.pages)  # the last open item is listed


def test_no_absolute_build_machine_path_in_the_bundle(built: Built) -> None:
    roots = {str(built.release.root), str(built.path.parent), str(Path.home())}
    for p in built.path.rglob("*"):
        if p.is_file() and p.suffix in {".html", ".json", ".pem", ""}:
            text = p.read_text(encoding="utf-8", errors="replace")
            for root in roots:
                assert root not in text, f"{p.name} names {root}"
