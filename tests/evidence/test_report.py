"""The reviewer's HTML report: self-contained, escaped, and rendered by headless Chromium without errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medfw.evidence.report import CheckLine, ReportData, render_report, severity_counts
from medfw.evidence.trace import TRACE_MATRIX

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
    assert len(re.findall(r"<tr><td>CVE-", text)) == len(scan["findings"])
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
