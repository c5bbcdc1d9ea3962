"""`make demo` end to end: the whole pipeline on the example device, and what it must establish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medfw.cli import main


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "medfw.demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads((out / "demo-facts.json").read_text())

    # the device took the OTA update and confirmed it
    assert facts["ota_update"]["version"] == "1.1.0"
    status = facts["status"]
    assert status["efuse"]["secure_version_counter"] == 2
    running = status["slots"][status["running_slot"]]
    assert (running["version"], running["ok"]) == ("1.1.0", True)
    # the downgrade was refused by anti-rollback
    assert "(reason rollback)" in facts["downgrade_refused"]
    # the evidence bundle exists and verifies again, independently of the demo's own check
    bundle = out / "evidence-bundle"
    assert (bundle / "report.html").is_file()
    assert main(["evidence", "verify", str(bundle), "--key", str(out / "keys" / "evidence.pub.pem")]) == 0
    # tampering with the demo's bundle is detected
    sbom = bundle / "sbom" / "sbom.cdx.json"
    if not sbom.exists():
        sbom = next(p for p in bundle.rglob("*.cdx.json"))
    sbom.write_bytes(sbom.read_bytes().replace(b"mbedtls", b"mbedtlz", 1))
    assert main(["evidence", "verify", str(bundle), "--key", str(out / "keys" / "evidence.pub.pem")]) == 1
    # the audit log the demo wrote verifies with its offline key
    assert main(["audit", "verify", str(out / "audit.db"), "--key", str(out / "keys" / "audit.vkey")]) == 0
    # no secret in a world-readable file: the logs hold the bootstrap admin token's output
    logs = out / "logs"
    assert logs.stat().st_mode & 0o077 == 0
    for log in logs.iterdir():
        assert log.stat().st_mode & 0o077 == 0, log
    assert any("mft_" in log.read_text() for log in logs.iterdir())  # the token is there, and private
