"""``medfw vuln`` end to end, in process: exit codes, --json, files written atomically."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from medfw.cli import main

from ._json import result as cli_result

V = Path(__file__).parent.parent / "vectors" / "vuln"
SERIAL = "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"


def _sbom(tmp_path: Path, components: list[dict[str, object]], serial: str = SERIAL) -> Path:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial,
        "version": 1,
        "metadata": {"component": {"type": "firmware", "name": "infusion-pump", "version": "2.1.0", "bom-ref": "fw"}},
        "components": [{"type": "library", **c} for c in components],
    }
    p = tmp_path / f"sbom-{uuid.uuid4().hex[:6]}.cdx.json"
    p.write_text(json.dumps(doc))
    return p


OPENSSL = {"bom-ref": "openssl", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}
CURL = {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "cpe": "cpe:2.3:a:haxx:curl:8.4.0:*:*:*:*:*:*:*"}


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "v.db")
    monkeypatch.setenv("MEDFW_VULN_DB", path)
    monkeypatch.delenv("MEDFW_AUDIT_LOG", raising=False)
    return path


def _import(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    rc = main(["vuln", "feed", "import", "--json", "--nvd", str(V / "nvd/anchore-overrides"), *extra])
    assert rc == 0
    out: dict[str, object] = cli_result(capsys.readouterr().out)
    return out


def test_import_scan_decide_export(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _import(
        capsys,
        "--nvd",
        str(V / "custom/heartbleed-nvd-api-2.0.json"),
        "--kev",
        str(V / "kev/known_exploited_vulnerabilities.json"),
        "--epss",
        str(V / "custom/epss_scores-2026-11-20.csv"),
    )
    assert report["counts"]["nvd"]["added"] == 352  # type: ignore[index]
    sbom = _sbom(tmp_path, [OPENSSL, CURL])

    assert main(["vuln", "scan", str(sbom), "--json"]) == 0
    result = cli_result(capsys.readouterr().out)
    first = result["findings"][0]
    assert (first["vuln_id"], first["kev"], first["priority"]) == ("CVE-2014-0160", True, 1)
    assert first["why"][0]["bound"] == "1.0.1 <= v < 1.0.1g"

    assert main(["vuln", "scan", str(sbom), "--fail-on", "kev"]) == 1
    capsys.readouterr()
    assert (
        main(
            [
                "vuln",
                "decide",
                str(sbom),
                "CVE-2014-0160",
                "--component",
                "openssl",
                "--state",
                "not_affected",
                "--justification",
                "requires_configuration",
                "--detail",
                "built without heartbeats",
                "--author",
                "user:qa",
                "--json",
            ]
        )
        == 0
    )
    decision = cli_result(capsys.readouterr().out)["decision"]
    assert decision["state"] == "not_affected" and decision["author"] == "user:qa"
    assert main(["vuln", "scan", str(sbom), "--fail-on", "kev"]) == 0
    capsys.readouterr()

    for fmt in ("cyclonedx", "openvex"):
        out = tmp_path / f"vex.{fmt}.json"
        assert main(["vuln", "vex", "export", str(sbom), "--format", fmt, "--out", str(out), "--json"]) == 0
        assert cli_result(capsys.readouterr().out)["statements"] == 1
        assert main(["vuln", "vex", "import", str(out), "--json"]) == 0
        assert cli_result(capsys.readouterr().out) == {
            "statements": 1,
            "added": 0,
            "unchanged": 1,
            "current": {SERIAL: 1},
        }

    html = tmp_path / "report.html"
    assert main(["vuln", "scan", str(sbom), "--format", "html", "--out", str(html)]) == 0
    text = html.read_text()
    assert "CVE-2014-0160" in text and "built without heartbeats" in text and "<script" not in text
    cdx = tmp_path / "findings.cdx.json"
    assert main(["vuln", "scan", str(sbom), "--format", "cyclonedx", "--out", str(cdx)]) == 0
    from medfw.vuln.vex import validate_cyclonedx

    assert validate_cyclonedx(json.loads(cdx.read_text())) is None
    assert main(["vuln", "scan", str(sbom)]) == 0  # rich table
    assert "CVE-2014-0160" in capsys.readouterr().out
    table = tmp_path / "table.txt"
    assert main(["vuln", "scan", str(sbom), "--out", str(table)]) == 0
    assert "CVE-2014-0160" in table.read_text() and "1.0.1 <= v < 1.0.1g" in table.read_text()


def test_bad_inputs_exit_2(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["vuln", "feed", "import", "--nvd", str(V / "custom/truncated-nvd-page.json")]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "offset 4000" in err and "Traceback" not in err
    assert (
        main(["vuln", "feed", "import", "--osv", str(V / "kev/known_exploited_vulnerabilities.json")]) == 0
    )  # reported skip
    assert main(["vuln", "feed", "import", "--kev", str(V / "custom/heartbleed-nvd-api-2.0.json")]) == 2
    capsys.readouterr()
    _import(capsys)
    no_ids = _sbom(tmp_path, [{"bom-ref": "x", "name": "mystery", "version": "1"}])
    assert main(["vuln", "scan", str(no_ids)]) == 2
    assert "no component identities" in capsys.readouterr().err
    sbom = _sbom(tmp_path, [CURL])
    assert (
        main(
            [
                "vuln",
                "decide",
                str(sbom),
                "CVE-2099-0001",
                "--component",
                "curl",
                "--state",
                "in_triage",
                "--detail",
                "x",
            ]
        )
        == 2
    )
    assert "unknown vulnerability" in capsys.readouterr().err
    assert (
        main(
            [
                "vuln",
                "decide",
                str(sbom),
                "CVE-2024-2398",
                "--component",
                "curl",
                "--state",
                "not_affected",
                "--detail",
                "x",
            ]
        )
        == 2
    )
    assert "requires a justification" in capsys.readouterr().err
    out = tmp_path / "never.json"
    with pytest.raises(SystemExit) as e:
        main(["vuln", "vex", "export", str(sbom), "--format", "bogus", "--out", str(out)])
    assert e.value.code == 2
    no_serial = _sbom(tmp_path, [CURL], serial="")
    assert main(["vuln", "vex", "export", str(no_serial), "--format", "openvex", "--out", str(out)]) == 2
    assert "serialNumber" in capsys.readouterr().err
    assert not out.exists()


def test_release_and_rescan(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _import(capsys)
    sbom = _sbom(tmp_path, [OPENSSL], serial=f"urn:uuid:{uuid.uuid4()}")
    assert main(["vuln", "release", "add", str(sbom), "--json"]) == 0
    assert cli_result(capsys.readouterr().out)["created"] is True
    assert main(["vuln", "rescan", "--json"]) == 0
    assert cli_result(capsys.readouterr().out)["open_alerts"] == 0
    assert (
        main(
            [
                "vuln",
                "feed",
                "import",
                "--nvd",
                str(V / "custom/heartbleed-nvd-api-2.0.json"),
                "--kev",
                str(V / "kev/known_exploited_vulnerabilities.json"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["vuln", "rescan", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)["result"]
    assert data["open_alerts"] == 1 and data["releases"][0]["new"][0]["vuln_id"] == "CVE-2014-0160"
    assert data["releases"][0]["alerts_opened"][0]["kind"] == "new"
    assert main(["vuln", "rescan"]) == 1  # the alert stays open until decided or acknowledged


def test_decisions_and_scans_reach_the_audit_log(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medfw.audit import init_log
    from medfw.audit.query import list_entries

    log = tmp_path / "audit.log"
    init_log(log)
    _import(capsys, "--kev", str(V / "kev/known_exploited_vulnerabilities.json"))
    sbom = _sbom(tmp_path, [CURL])
    args = ["vuln", "decide", str(sbom), "CVE-2024-2398", "--component", "curl", "--state", "exploitable"]
    assert main([*args, "--response", "update", "--detail", "upgrade to 8.7.1", "--audit-log", str(log)]) == 0
    assert main(["vuln", "scan", str(sbom), "--json", "--audit-log", str(log)]) == 0
    capsys.readouterr()
    (decision,) = list_entries(log, type_="vuln.decision")
    assert decision.body["objects"]["vulnerability"] == "CVE-2024-2398" and decision.body["reason"] == "exploitable"
    (scan_event,) = list_entries(log, type_="vuln.scan")
    assert scan_event.body["objects"]["sbom_serial"] == SERIAL and scan_event.body["data"]["findings"] > 0
