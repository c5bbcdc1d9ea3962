"""``medfw vuln decide`` (--fixed-in, --batch, candidates) and ``vuln release add`` carrying decisions over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.cli import main

from ._json import envelope
from ._json import result as cli_result

ROOT = Path(__file__).parent.parent / "vectors"
MBEDTLS = "component:mbedtls/mbedtls"


def _release(tmp_path: Path, mbedtls: str, serial_tail: str) -> Path:
    doc = json.loads((ROOT / "sbom" / "example-device.cdx.json").read_text(encoding="utf-8"))
    doc["serialNumber"] = f"urn:uuid:0e6f7c62-7f0b-4b54-9a55-{serial_tail}"
    for c in doc["components"]:
        if c["bom-ref"] == MBEDTLS:
            c["version"] = mbedtls
            c["purl"] = f"pkg:github/mbed-tls/mbedtls@v{mbedtls}"
            c["cpe"] = f"cpe:2.3:a:arm:mbed_tls:{mbedtls}:*:*:*:*:*:*:*"
    p = tmp_path / f"r-{mbedtls}.cdx.json"
    p.write_text(json.dumps(doc))
    return p


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "v.db")
    monkeypatch.setenv("MEDFW_VULN_DB", path)
    monkeypatch.delenv("MEDFW_AUDIT_LOG", raising=False)
    return path


def test_decide_fixed_in_batch_and_release_carry_over(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["vuln", "feed", "import", "--nvd", str(ROOT / "vuln/nvd/anchore-overrides"), "--json"]) == 0
    capsys.readouterr()
    r1, r2 = _release(tmp_path, "3.5.1", "35e1a1111111"), _release(tmp_path, "3.6.4", "36e4a2222222")
    assert main(["vuln", "release", "add", str(r1), "--json"]) == 0
    capsys.readouterr()
    args = ["vuln", "decide", str(r1), "cve-2025-47917", "--component", MBEDTLS, "--state", "resolved"]
    assert main([*args, "--fixed-in", "3.6.4", "--detail", "fixed upstream", "--json"]) == 0
    decision = cli_result(capsys.readouterr().out)["decision"]
    assert (decision["vuln_id"], decision["fixed_in"]) == ("CVE-2025-47917", "3.6.4")

    # a wrong --component is a usage error that lists the candidates
    bad = ["vuln", "decide", str(r1), "CVE-2025-27809", "--component", "mbedtls", "--state", "in_triage"]
    assert main([*bad, "--detail", "x", "--json"]) == 2
    err = envelope(capsys.readouterr().out)["error"]
    assert "candidates:" in err["message"] and MBEDTLS in err["message"]

    batch = tmp_path / "decisions.csv"
    batch.write_text(
        "cve,component,state,justification,responses,detail\n"
        "CVE-2025-27809,component:mbedtls/mbedtls,not_affected,code_not_reachable,,no SNI from untrusted input\n"
        "cve-2024-8176,binary:expat,not_affected,requires_configuration,,XML_DTD off\n"
    )
    assert main(["vuln", "decide", str(r1), "--batch", str(batch), "--json"]) == 0
    assert cli_result(capsys.readouterr().out)["count"] == 2

    assert main(["vuln", "release", "add", str(r2), "--json"]) == 0
    inherited = cli_result(capsys.readouterr().out)["inherited"]
    assert [d["vuln_id"] for d in inherited["carried"]] == ["CVE-2024-8176"]
    assert [d["vuln_id"] for d in inherited["held"]] == ["CVE-2025-47917"]
    assert [d["vuln_id"] for d in inherited["reopened"]] == ["CVE-2025-27809"]

    assert main(["vuln", "release", "add", str(r2)]) == 0
    assert "already registered" in capsys.readouterr().out


def test_decide_needs_fields_or_batch(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r1 = _release(tmp_path, "3.5.1", "35e1a1111111")
    assert main(["vuln", "decide", str(r1), "CVE-2025-27809", "--state", "in_triage"]) == 2
    assert "--component" in capsys.readouterr().err


def test_supplier_vex_import_and_statements(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vuln", "feed", "import", "--nvd", str(ROOT / "vuln/nvd/anchore-overrides"), "--json"]) == 0
    r1 = _release(tmp_path, "3.5.1", "35e1a1111111")
    assert main(["vuln", "release", "add", str(r1), "--json"]) == 0
    capsys.readouterr()
    vex = tmp_path / "vendor.openvex.json"
    vex.write_text(
        json.dumps(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://vendor.invalid/vex/1",
                "author": "Vendor PSIRT",
                "timestamp": "2026-11-20T08:00:00Z",
                "version": 1,
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2025-27809"},
                        "products": [{"@id": "pkg:github/mbed-tls/mbedtls@v3.5.1"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_present",
                    }
                ],
            }
        )
    )
    assert main(["vuln", "vex", "import", str(vex), "--supplier", "Vendor", "--json"]) == 0
    out = cli_result(capsys.readouterr().out)
    assert len(out["applied"]) == 1 and out["accepted"] == [] and out["document"]["supplier"] == "Vendor"
    assert main(["vuln", "vex", "statements", "--json"]) == 0
    (st,) = cli_result(capsys.readouterr().out)["statements"]
    assert st["accepted"] is False and st["document"]["doc_id"] == "https://vendor.invalid/vex/1"
    # the scan shows the supplier's statement apart; the finding stays open until accepted
    assert main(["vuln", "scan", str(r1), "--json"]) == 0
    scanned = cli_result(capsys.readouterr().out)
    assert [s["vuln_id"] for s in scanned["supplier_statements"]] == ["CVE-2025-27809"]
    finding = next(f for f in scanned["findings"] if f["vuln_id"] == "CVE-2025-27809")
    assert finding["decision"] is None
    assert main(["vuln", "vex", "import", str(vex), "--supplier", "Vendor", "--accept", "--json"]) == 0
    again = cli_result(capsys.readouterr().out)
    assert again["already_imported"] is True and [d["source"] for d in again["accepted"]] == ["supplier-vex"]
    assert main(["vuln", "vex", "import", str(vex), "--supplier", "Vendor", "--accept", "--json"]) == 0
    assert cli_result(capsys.readouterr().out)["accepted"] == []  # not accepted twice
    assert main(["vuln", "vex", "statements", "--json"]) == 0
    assert cli_result(capsys.readouterr().out)["statements"][0]["accepted"] is True
    nothing = tmp_path / "nothing.openvex.json"
    doc = json.loads(vex.read_text())
    doc["@id"] = "https://vendor.invalid/vex/2"
    doc["statements"][0]["products"] = [{"@id": "pkg:generic/unknown@1.0"}]
    nothing.write_text(json.dumps(doc))
    assert main(["vuln", "vex", "import", str(nothing)]) == 0
    assert "matches" in capsys.readouterr().err
