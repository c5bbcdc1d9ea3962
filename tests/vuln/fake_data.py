"""Build an upstream tree of real-shaped feed data from ``tests/vectors/vuln`` (served by the fake, or a mirror)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

V = Path(__file__).parent.parent / "vectors" / "vuln"
CVE5_TAG = "2026-12-07_0600Z"


def _api_shape(override: dict[str, Any]) -> dict[str, Any]:
    """An anchore override record in NVD API 2.0 ``cve`` shape (its configurations, dates and description)."""
    ann = override["_annotation"]
    published = ann.get("published") or "2024-01-01T00:00:00.000"
    return {
        "id": ann["cve_id"],
        "sourceIdentifier": "cve@mitre.org",
        "published": published,
        "lastModified": ann.get("modified") or published,
        "vulnStatus": "Analyzed",
        "descriptions": [{"lang": "en", "value": ann.get("description", "")}],
        "metrics": {},
        "weaknesses": [],
        "configurations": override["cve"]["configurations"],
        "references": [{"url": u, "source": "cve@mitre.org"} for u in ann.get("references", [])],
    }


def nvd_records() -> list[dict[str, Any]]:
    """Real NVD API 2.0 records plus the anchore extract in API shape (about 390 records), by id."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted((V / "nvd/anchore-overrides").rglob("CVE-*.json")):
        rec = _api_shape(json.loads(p.read_text()))
        out[rec["id"]] = rec
    official = [*sorted((V / "nvd/official-shapes").glob("api-2.0-*/*.json")), V / "custom/heartbleed-nvd-api-2.0.json"]
    for p in official:
        for v in json.loads(p.read_text())["vulnerabilities"]:
            out[v["cve"]["id"]] = v["cve"]
    return list(out.values())


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def kev_catalog(version: str = "2025.08.25", released: str | None = None, drop: int = 0) -> bytes:
    """The real KEV catalog, optionally relabelled as another version and without its first ``drop`` entries."""
    doc = json.loads((V / "kev/known_exploited_vulnerabilities.json").read_text())
    if version != doc["catalogVersion"]:
        doc["catalogVersion"] = version
        doc["dateReleased"] = released or f"{version.replace('.', '-')}T12:00:00.000Z"
    doc["vulnerabilities"] = doc["vulnerabilities"][drop:]
    return json.dumps(doc).encode()


def osv_records() -> dict[str, bytes]:
    """OSS-Fuzz records (YAML in the extract) as OSV JSON, by id."""
    out = {}
    for p in sorted((V / "osv/oss-fuzz-vulns").glob("*/OSV-*.yaml")):
        doc = yaml.safe_load(p.read_text())
        out[doc["id"]] = json.dumps(doc, default=str).encode()
    return out


def build_tree(root: Path) -> Path:
    """Write ``root/{kev,epss,osv,cve5}`` with the same relative paths as the real upstreams; return root."""
    (root / "kev").mkdir(parents=True)
    (root / "kev/known_exploited_vulnerabilities.json").write_bytes(kev_catalog())
    (root / "epss").mkdir()
    (root / "epss/epss_scores-current.csv.gz").write_bytes(
        gzip.compress((V / "custom/epss_scores-2026-11-20.csv").read_bytes())
    )
    eco = root / "osv/OSS-Fuzz"
    eco.mkdir(parents=True)
    records = osv_records()
    (eco / "all.zip").write_bytes(_zip({f"{i}.json": d for i, d in records.items()}))
    baseline = _zip(
        {"cves.zip": _zip({f"cves/{p.parent.parent.name}/{p.parent.name}/{p.name}": p.read_bytes()
                           for p in (V / "cve5/vulnrichment").rglob("CVE-*.json")})}
    )  # fmt: skip
    delta = _zip(
        {f"deltaCves/{p.name}": p.read_bytes() for p in sorted((V / "vendor/openssl/secjson").glob("CVE-2024-*"))}
    )
    rel = root / "cve5/releases"
    (rel / "download" / CVE5_TAG).mkdir(parents=True)
    names = {"2026-12-07_all_CVEs_at_midnight.zip.zip": baseline, "2026-12-07_delta_CVEs_at_0600Z.zip": delta}
    for name, data in names.items():
        (rel / "download" / CVE5_TAG / name).write_bytes(data)
    listing = {
        "tag_name": CVE5_TAG,
        "assets": [{"name": n, "browser_download_url": f"https://x.invalid/{n}"} for n in names],
    }
    (rel / "latest").write_text(json.dumps(listing))
    return root
