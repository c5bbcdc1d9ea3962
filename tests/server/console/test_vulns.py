"""Releases and Vulnerabilities pages with a vulnerability index (``--vuln-db``): SBOM components, findings with
KEV and decisions, and exposure (devices running each affected release)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import warnings
from pathlib import Path

from medfw.audit.sink import MemorySink
from medfw.server.app import create_app
from medfw.server.console import attach_console
from medfw.update.repository import ReleaseInfo
from medfw.vuln import add_release, import_feeds, open_index
from medfw.vuln.decisions import record_decision
from medfw.vuln.sbom_input import read_sbom

from .conftest import CSRF_RE, Site

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

VULN = Path(__file__).resolve().parents[2] / "vectors" / "vuln"


def _sbom(openssl: str = "1.0.1f", version: str = "2.0.0") -> bytes:
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {"component": {"type": "firmware", "name": "pump-fw", "version": version, "bom-ref": "fw"}},
        "components": [
            {
                "type": "library",
                "bom-ref": "o",
                "name": "openssl",
                "version": openssl,
                "purl": f"pkg:generic/openssl@{openssl}",
            },
            {"type": "library", "bom-ref": "z", "name": "<zlib>", "version": "1.3", "purl": "pkg:generic/zlib@1.3"},
        ],
    }
    return json.dumps(doc).encode()


def test_findings_components_and_exposure(site: Site, tmp_path: Path) -> None:
    sbom = _sbom()
    db = tmp_path / "vuln.db"
    index = open_index(str(db))
    import_feeds(
        index,
        nvd=[str(VULN / "custom" / "heartbleed-nvd-api-2.0.json")],
        kev=[str(VULN / "kev" / "known_exploited_vulnerabilities.json")],
    )
    add_release(index, sbom)
    fixed_sbom = _sbom("1.0.1g", "2.1.0")
    add_release(index, fixed_sbom)
    index.close()
    info = ReleaseInfo(
        "pump/pump-2.0.0.bin",
        "pump",
        "esp32c3",
        "esp-app",
        "2.0.0",
        3,
        1000,
        "ab" * 32,
        sbom={"ref": "sbom.cdx.json", "sha256": hashlib.sha256(sbom).hexdigest()},
    )
    fixed = ReleaseInfo(
        "pump/pump-2.1.0.bin",
        "pump",
        "esp32c3",
        "esp-app",
        "2.1.0",
        3,
        1000,
        "cd" * 32,
        sbom={"ref": "sbom.cdx.json", "sha256": hashlib.sha256(fixed_sbom).hexdigest()},
    )
    site.service.sync_releases([info, fixed], actor="test")
    release_id = next(r.id for r in site.service.releases() if r.version == "2.0.0")
    site.service.add_devices([(f"pump-{i}", "pump", "esp32c3") for i in range(3)], actor="test")
    for i in range(2):
        site.service.poll(f"pump-{i}", version="2.0.0", secure_version=3, slot="ota_0")
    site.service.flush_seen()
    fix_rollout = site.service.create_rollout(release="pump/pump-2.1.0.bin", phases=["1", "100%"], actor="test")

    app = create_app(site.service, None, maintenance_interval=3600)
    attach_console(app, site.service, vuln_db=str(db)).aggregate_ttl = 0
    with TestClient(app) as client:
        m = CSRF_RE.search(client.get("/login").text)
        assert m is not None
        client.post("/login", data={"token": site.tokens["read-only"], "csrf": m.group(1)})
        page = client.get(f"/releases/{release_id}").text
        assert "Findings (1 open of 1)" in page and "CVE-2014-0160" in page and "KEV" in page
        assert "SBOM components (2)" in page and "&lt;zlib&gt;" in page and "pkg:generic/openssl@1.0.1f" in page
        page = client.get("/vulnerabilities").text
        rows = re.findall(r"<tr><td><code>(CVE-[0-9-]+)</code></td>.*?<td class=\"n\">(\d+)</td>", page, re.S)
        assert rows == [("CVE-2014-0160", "2")]  # two devices run the affected release
        assert f"rollout {fix_rollout.id}</a> running at phase 1/2" in page  # the fix and how far it got
        # VEX from the decisions recorded now, in each format, bound to the release's SBOM
        assert f'href="/releases/{release_id}/vex/cyclonedx"' in client.get(f"/releases/{release_id}").text
        r = client.get(f"/releases/{release_id}/vex/csaf")  # a CSAF VEX states at least one decision
        assert r.status_code == 422 and "vulnerabilities: [] should be non-empty" in r.text
        index = open_index(str(db))
        record_decision(
            index, read_sbom(sbom), "CVE-2014-0160", "o", state="exploitable", responses=("update",),
            detail="reachable; fixed in 2.1.0", author="psirt", sink=MemorySink(),
        )  # fmt: skip
        index.close()
        for fmt, check in (("cyclonedx", "bomFormat"), ("openvex", "@context"), ("csaf", "document")):
            r = client.get(f"/releases/{release_id}/vex/{fmt}")
            assert r.status_code == 200 and check in r.json(), fmt
            assert r.headers["content-disposition"].startswith('attachment; filename="2.0.0-vex-now.')
            assert "CVE-2014-0160" in r.text
        serial = json.loads(sbom)["serialNumber"]
        assert serial in client.get(f"/releases/{release_id}/vex/cyclonedx").text
        assert client.get(f"/releases/{release_id}/vex/spdx").status_code == 404
        # the release of the fixture has no SBOM in the index
        page = client.get(f"/releases/{site.release_id}").text
        assert "holds no SBOM with this release" in page and "/vex/cyclonedx" not in page
        assert client.get(f"/releases/{site.release_id}/vex/openvex").status_code == 404
