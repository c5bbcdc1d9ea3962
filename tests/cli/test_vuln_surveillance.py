"""``medfw vuln`` surveillance end to end: feed status, --max-feed-age, --fail-on rules, coverage in every format."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from medfw.cli import main

from ._json import result as cli_result

V = Path(__file__).parent.parent / "vectors" / "vuln"
SBOM = V / "custom" / "esp-idf-5.2.1-realistic.cdx.json"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index with the feeds imported once through the CLI (copied per test)."""
    path = tmp_path_factory.mktemp("surv") / "template.db"
    rc = main(
        [
            "vuln", "feed", "import", "--json", "--db", str(path),
            "--nvd", str(V / "nvd/anchore-overrides"),
            "--cve5", str(V / "vendor/openssl/secjson"),
            "--vendor", str(V / "vendor/curl/curl_vulnerabilities.json"),
            "--kev", str(V / "kev/known_exploited_vulnerabilities.json"),
            "--epss", str(V / "custom/epss_scores-2026-11-20.csv"),
        ]
    )  # fmt: skip
    assert rc == 0
    return path


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imported: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    path = tmp_path / "v.db"
    path.write_bytes(imported.read_bytes())
    monkeypatch.setenv("MEDFW_VULN_DB", str(path))
    monkeypatch.delenv("MEDFW_AUDIT_LOG", raising=False)
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_feed_status_and_snapshot_in_every_format(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "vuln", "feed", "status", "--json")
    assert rc == 0
    sources = {s["source"]: s for s in cli_result(out)["sources"]}
    assert sources["kev"]["version"] == "2025.08.25" and sources["kev"]["records"] == 1404
    assert sources["epss"]["version"] == "v2025.03.14" and sources["epss"]["data_date"].startswith("2026-11-20")
    assert sources["vendor"]["records"] == 206 and sources["nvd"]["method"] == "import"
    rc, out, _ = _run(capsys, "vuln", "feed", "status")
    assert rc == 0 and "2025.08.25" in out

    rc, out, _ = _run(capsys, "vuln", "scan", str(SBOM), "--format", "json")
    doc = json.loads(out)
    assert doc["feed"]["kev"]["version"] == "2025.08.25"
    assert {n["ref"] for n in doc["no_data"]} >= {"freertos", "lwip", "cjson"}
    assert all(f["severity_source"] or f["unscored_reason"] for f in doc["findings"])
    rc, out, _ = _run(capsys, "vuln", "scan", str(SBOM), "--format", "cyclonedx")
    props = {
        p["name"]: p["value"] for p in json.loads(out)["metadata"]["properties"] if p["name"] != "medfw:no-feed-data"
    }
    assert "2025.08.25" in props["medfw:feed:kev"]
    assert sum(p["name"] == "medfw:no-feed-data" for p in json.loads(out)["metadata"]["properties"]) >= 6
    rc, out, _ = _run(capsys, "vuln", "scan", str(SBOM), "--format", "html")
    assert "No feed data" in out and "Feed snapshot" in out and "vendor rating" in out
    rc, out, _ = _run(capsys, "vuln", "scan", str(SBOM))
    assert "no feed data: lwip 2.1.3" in out and "feed snapshot: " in out


def test_fail_on_rules(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--fail-on", "no-data", "--format", "json")
    assert rc == 1 and "no feed data fail --fail-on no-data" in err and "lwip 2.1.3" in err
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--fail-on", "unscored", "--format", "json")
    assert rc == 1 and "(unscored)" in err
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--fail-on", "critical", "--format", "json")
    assert rc == 1 and "(unscored)" in err  # unscored findings are never silently dropped by a severity rule
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--fail-on", "bogus")
    assert rc == 2 and "unknown --fail-on rule" in err


def test_max_feed_age(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--max-feed-age", "2d", "--db", db + ".empty")
    assert rc == 1 and "feed stale: no feed was ever imported" in err
    rc, _, _ = _run(capsys, "vuln", "scan", str(SBOM), "--max-feed-age", "2d", "--format", "json")
    assert rc == 0
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=4)).isoformat(timespec="seconds")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE feed_state SET updated_at = ? WHERE source = 'kev'", (old,))
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--max-feed-age", "2d")
    assert rc == 1 and "feed stale: kev last synced 3d 4h ago (max 2d)" in err
    rc, _, err = _run(capsys, "vuln", "scan", str(SBOM), "--max-feed-age", "2 days")
    assert rc == 2 and "is not a positive number" in err


def test_older_kev_catalog_is_refused(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((V / "kev/known_exploited_vulnerabilities.json").read_text())
    doc["catalogVersion"], doc["dateReleased"] = "2025.08.21", "2025-08-21T15:00:00.000Z"
    doc["vulnerabilities"] = doc["vulnerabilities"][5:]
    older = tmp_path / "kev-older.json"
    older.write_text(json.dumps(doc))
    rc, _, err = _run(capsys, "vuln", "feed", "import", "--kev", str(older))
    assert rc == 2 and "older than the stored catalog 2025.08.25" in err and "not applied" in err
    rc, out, _ = _run(capsys, "vuln", "feed", "status", "--json")
    kev = next(s for s in cli_result(out)["sources"] if s["source"] == "kev")
    assert kev["records"] == 1404 and kev["version"] == "2025.08.25"  # nothing removed


def test_osv_all_zip_import_and_truncated_zip(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(V / "custom/osv-semver-mbedtls.json", "MEDFW-TEST-2026-1.json")
        zf.write(V / "vendor/curl/osv-example/CVE-2025-11563.json.in", "CVE-2025-11563.json")
    rc, out, _ = _run(capsys, "vuln", "feed", "import", "--json", "--osv", str(archive))
    assert rc == 0 and cli_result(out)["counts"]["osv"]["added"] == 2
    broken = tmp_path / "broken.zip"
    broken.write_bytes(archive.read_bytes()[:-40])
    rc, _, err = _run(capsys, "vuln", "feed", "import", "--osv", str(broken))
    assert rc == 2 and "OSV archive is corrupt or truncated" in err and "broken.zip" in err


def test_rescan_history_releases_and_ack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "pm.db")
    monkeypatch.setenv("MEDFW_VULN_DB", db)
    monkeypatch.delenv("MEDFW_AUDIT_LOG", raising=False)
    sbom = tmp_path / "fw.cdx.json"
    doc = json.loads(SBOM.read_text())
    doc["components"] = [
        {
            "type": "library",
            "bom-ref": "o",
            "name": "openssl",
            "version": "1.0.1f",
            "purl": "pkg:generic/openssl@1.0.1f",
        }
    ]
    sbom.write_text(json.dumps(doc))
    assert _run(capsys, "vuln", "feed", "import", "--nvd", str(V / "custom/heartbleed-nvd-api-2.0.json"))[0] == 0
    assert _run(capsys, "vuln", "release", "add", str(sbom))[0] == 0
    assert _run(capsys, "vuln", "rescan")[0] == 0
    assert _run(capsys, "vuln", "feed", "import", "--kev", str(V / "kev/known_exploited_vulnerabilities.json"))[0] == 0

    rc, out, err = _run(capsys, "vuln", "rescan")
    assert rc == 1 and "[kev] CVE-2014-0160 on o" in out and "due 2022-05-25" in out and "1 open alert(s)" in err
    rc, out, _ = _run(capsys, "vuln", "rescan", "--fail-on", "new", "--json")
    assert rc == 0 and cli_result(out)["open_alerts"] == 1  # open, but not what --fail-on new selects
    rc, out, _ = _run(capsys, "vuln", "rescan", "--fail-on", "kev,critical,new", "--json")
    res = json.loads(out)["result"]
    assert rc == 1 and res["failing_alerts"] and res["releases"][0]["alerts_open"][0]["kind"] == "kev"
    alert_id = res["failing_alerts"][0]

    rc, out, _ = _run(capsys, "vuln", "alerts", "--json")
    assert rc == 0 and [a["id"] for a in cli_result(out)["alerts"]] == [alert_id]
    rc, _, err = _run(capsys, "vuln", "alerts", "--ack", str(alert_id))
    assert rc == 2 and "needs a reason" in err
    rc, out, _ = _run(capsys, "vuln", "alerts", "--ack", str(alert_id), "--reason", "patched in 2.1.1", "--by", "u:qa")
    assert rc == 0 and "no open alerts" in out
    assert _run(capsys, "vuln", "rescan")[0] == 0

    rc, out, _ = _run(capsys, "vuln", "history", "infusion-pump-fw", "--json")
    hist = cli_result(out)
    assert rc == 0 and len(hist["scans"]) == 6 and hist["alerts_closed"][0]["close_reason"].startswith("acknowledged")
    assert hist["scans"][-1]["feed"]["kev"]["version"] == "2025.08.25"
    rc, out, _ = _run(capsys, "vuln", "history", "1")
    assert rc == 0 and "closed alert 1 [kev] CVE-2014-0160: acknowledged: patched in 2.1.1 by u:qa" in out

    rc, out, _ = _run(capsys, "vuln", "releases", "--retire", "1", "--reason", "end of support", "--json")
    rels = cli_result(out)["releases"]
    assert rc == 0 and rels[0]["retired_at"] and rels[0]["scans"] == 6
    rc, out, _ = _run(capsys, "vuln", "rescan")
    assert rc == 0 and "no releases monitored" in out


def test_failed_import_leaves_no_database_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fresh.db"
    monkeypatch.setenv("MEDFW_VULN_DB", str(db))
    bad = tmp_path / "kev.json"
    bad.write_text(json.dumps({"vulnerabilities": []}))  # no catalogVersion
    rc, _, err = _run(capsys, "vuln", "feed", "import", "--kev", str(bad))
    assert rc == 2 and "catalogVersion" in err and not db.exists()
    rc, _, err = _run(capsys, "vuln", "feed", "import", "--nvd", str(V / "custom/truncated-nvd-page.json"))
    assert rc == 2 and "truncated" in err and not db.exists()
    assert _run(capsys, "vuln", "feed", "import", "--kev", str(V / "kev/known_exploited_vulnerabilities.json"))[0] == 0
    rc, _, _ = _run(capsys, "vuln", "feed", "import", "--kev", str(bad))
    assert rc == 2 and db.exists()  # an existing index is never removed; the failed import changed nothing
