"""`make demo` end to end: the remediation loop on the example device and a fleet, and what each step established.

The demo writes ``demo-facts.json``; this test checks every step of the loop from it, then re-checks the outputs
independently (the example device agrees with the images, the feed record that makes 1.0.0 affected, the bundle
verifies and detects tampering, the report renders in headless Chromium without console errors and its PDF has
the verdict on page 1).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from medfw.cli import main

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "device"
CVE = "CVE-2024-49195"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "medfw.demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "demo-facts.json").read_text())


@pytest.mark.slow
def test_release_100_is_the_example_device_and_ships_the_affected_mbedtls(demo: tuple[Path, dict[str, Any]]) -> None:
    _, facts = demo
    desc = json.loads((EXAMPLE / "build" / "project_description.json").read_text())
    r100 = facts["releases"]["1.0.0"]
    # the example's build metadata, sdkconfig and manifests agree with the image the demo built from it
    assert (r100["sbom_image_version"], r100["sbom_image_chip"], r100["sbom_image_idf"]) == (
        desc["project_version"],
        desc["target"],
        desc["git_revision"],
    )
    sdkconfig = (EXAMPLE / "sdkconfig").read_text()
    assert f'CONFIG_IDF_TARGET="{desc["target"]}"' in sdkconfig
    assert f'CONFIG_APP_PROJECT_VER="{desc["project_version"]}"' in sdkconfig
    assert f"version: '{desc['project_version']}'" in (EXAMPLE / "sbom.yml").read_text()
    mbedtls = (EXAMPLE / "esp-idf/components/mbedtls/mbedtls/sbom.yml").read_text()
    assert f"version: {r100['mbedtls']}" in mbedtls and r100["mbedtls"] == "3.6.1"
    assert r100["build_check_passed"] and facts["releases"]["1.1.0"]["build_check_passed"]
    r110 = facts["releases"]["1.1.0"]
    assert (r110["sbom_image_version"], r110["mbedtls"], r110["secure_version"]) == ("1.1.0", "3.6.4", 2)
    # the real feed record that makes 3.6.1 affected and scores it (CISA-ADP, in the CVE 5 record)
    record = json.loads((REPO / "tests/vectors/vuln/cve5/vulnrichment/2024/49xxx" / f"{CVE}.json").read_text())
    adp = record["containers"]["adp"]
    ranges = [v for a in adp for aff in a.get("affected", []) for v in aff["versions"]]
    assert {"status": "affected", "version": "3.5.0", "lessThan": "3.6.2", "versionType": "custom"} in ranges


@pytest.mark.slow
def test_feed_update_flags_decides_and_exposes(demo: tuple[Path, dict[str, Any]]) -> None:
    _, facts = demo
    flagged = facts["flagged"]
    assert flagged["id"] == CVE and flagged["severity"] == "critical" and flagged["score"] == 9.8
    assert flagged["severity_source"] == "CISA-ADP CVSS 3.1" and flagged["new_in_rescan"]
    assert facts["baseline_findings"] < facts["findings_1.0.0"]  # the update added findings the baseline lacked
    units = [f"unit-{i:04d}" for i in range(1, facts["fleet_size"] + 1)]
    assert facts["fleet_size"] >= 5 and facts["exposure_before"]["exposed"] == units
    decided = facts["decisions_1.0.0"]
    assert "in_triage" not in decided and decided["not_affected"] > 0 and decided["exploitable"] > 0
    assert set(facts["decisions_1.1.0"]) == {"not_affected"}
    assert "mbedtls 3.6.1 -> 3.6.4" in facts["sbom_changes"]


@pytest.mark.slow
def test_staged_rollout_canary_revert_exposure_downgrade(demo: tuple[Path, dict[str, Any]]) -> None:
    _, facts = demo
    rollout = facts["rollout"]
    canary, second, last = "unit-0001", "unit-0002", f"unit-{facts['fleet_size']:04d}"
    assert rollout["canary"] == canary and rollout["phases"] == ["1", "100%"]
    assert (rollout["before_canary"][second]["outcome"], rollout["before_canary"][second]["version"]) == (
        "idle",
        "1.0.0",
    )
    assert (rollout["results"][canary]["outcome"], rollout["results"][canary]["version"]) == ("confirmed", "1.1.0")
    assert rollout["after_canary"]["current_phase"] == 2  # phases are numbered from 1: the canary phase is done
    assert rollout["after_canary"]["phases"][0]["counts"] == {"confirmed": 1}
    assert (rollout["results"][last]["outcome"], rollout["results"][last]["version"]) == ("reverted", "1.0.0")
    assert rollout["final"]["phases"][1]["counts"] == {"confirmed": facts["fleet_size"] - 2, "reverted": 1}
    after = facts["exposure_after"]
    updated = [u for u, v in after["running"].items() if v == "1.1.0"]
    assert len(updated) == facts["fleet_size"] - 1 and not set(updated) & set(after["exposed"])
    assert after["exposed"] == [last]  # the unit that reverted still runs 1.0.0, and is still exposed
    fix = after["report"][0]["fixed_by"][0]
    assert (fix["version"], fix["rollout"]["state"]) == ("1.1.0", "finished")
    assert "(reason rollback)" in facts["downgrade_refused"]


@pytest.mark.slow
def test_evidence_shows_the_fix_and_verifies(demo: tuple[Path, dict[str, Any]]) -> None:
    out, facts = demo
    ev = facts["evidence"]
    assert ev["ok"] and ev["failed_checks"] == []
    fixed = {f["id"]: f for f in ev["fixed"]["fixed"]}
    assert ev["fixed"]["previous_release"] == "1.0.0"
    assert (fixed[CVE]["version_before"], fixed[CVE]["version_now"], fixed[CVE]["severity"]) == (
        "3.6.1",
        "3.6.4",
        "critical",
    )
    bundle = out / "evidence-bundle"
    key = str(out / "keys" / "evidence.pub.pem")
    assert main(["evidence", "verify", str(bundle), "--key", key]) == 0
    html = (bundle / "report.html").read_text()
    assert '<b id="verdict-word">PASS</b>' in html and '<section id="fixed">' in html and CVE in html
    assert str(out) not in html and str(REPO) not in html  # no absolute path of the build machine
    sbom = bundle / "sbom" / "sbom.cdx.json"
    sbom.write_bytes(sbom.read_bytes().replace(b"mbedtls", b"mbedtlz", 1))
    assert main(["evidence", "verify", str(bundle), "--key", key]) == 1
    assert main(["audit", "verify", str(out / "audit.db"), "--key", str(out / "keys" / "audit.vkey")]) == 0
    # the release on the fleet server carries its evidence bundle, VEX and the signed CSAF advisory
    documents = facts["documents"]
    kinds = ["evidence", "vex-cyclonedx", "vex-openvex", "csaf", "csaf-signature"]
    assert documents["attached"] == kinds and [d["kind"] for d in documents["listed"]] == kinds
    evidence = documents["listed"][0]
    assert evidence["summary"]["version"] == "1.1.0" and evidence["summary"]["files"] > 10
    # no secret in a world-readable file: the logs hold the bootstrap admin token's output
    logs = out / "logs"
    assert logs.stat().st_mode & 0o077 == 0
    for log in logs.iterdir():
        assert log.stat().st_mode & 0o077 == 0, log
    assert any("mft_" in log.read_text() for log in logs.iterdir())  # the token is there, and private


@pytest.mark.slow
@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_without_console_errors_and_pdf_has_the_verdict(
    demo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    from pypdf import PdfReader

    out, _ = demo
    assert CHROMIUM is not None
    report = out / "evidence-bundle" / "report.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run(
        [CHROMIUM, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", report.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [line for line in dom.stderr.splitlines() if "CONSOLE" in line] == []
    assert '<section id="verdict" class="verdict pass"' in dom.stdout
    page1 = PdfReader(out / "evidence-bundle" / "report.pdf").pages[0].extract_text()
    assert "PASS" in page1 and "9/9 checks pass" in page1
