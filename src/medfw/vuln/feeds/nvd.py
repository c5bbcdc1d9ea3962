"""NVD feed parsing: API 2.0 responses (pages and feed files), NVD-shaped override records, legacy 1.1 feeds.

Shapes recognised (gzip-compressed or not):

* NVD API 2.0 ``{"format": "NVD_CVE", "version": "2.0", "vulnerabilities": [{"cve": {...}}]}``: source ``nvd``;
* an NVD-shaped override record ``{"_annotation": {"cve_id", ...}, "cve": {"configurations": [...]}}``
  (anchore/nvd-data-overrides): source ``nvd-override``, whose configurations replace NVD's;
* the retired NVD JSON 1.1 feed ``{"CVE_Items": [...]}``: source ``nvd``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medfw.errors import FeedError
from medfw.vuln.feeds import CVE_ID, FeedRecord, ParseResult, RecordError, Skip, load_json, maybe_gunzip, record_error
from medfw.vuln.feeds._cvss import check_configurations, cvss_entry, is_map

__all__ = ["parse_nvd", "parse_nvd_doc"]

_METRIC_KEYS = (("cvssMetricV40", "4.0"), ("cvssMetricV31", "3.1"), ("cvssMetricV30", "3.0"), ("cvssMetricV2", "2.0"))


def _english(descriptions: Any) -> str:
    if isinstance(descriptions, list):
        for d in descriptions:
            if is_map(d) and d.get("lang") in ("en", "en-US"):
                return str(d.get("value", ""))
    return ""


def _api_record(cve: Any) -> FeedRecord:
    if not is_map(cve):
        raise record_error("cve is not an object")
    cve_id = cve.get("id")
    if not isinstance(cve_id, str) or not CVE_ID.match(cve_id):
        raise record_error("cve.id is missing or not a CVE id")
    cvss: list[dict[str, Any]] = []
    metrics = cve.get("metrics", {})
    if not is_map(metrics):
        raise record_error("cve.metrics is not an object")
    for key, version in _METRIC_KEYS:
        for m in metrics.get(key, []) or []:
            data = m.get("cvssData", {}) if is_map(m) else {}
            entry = cvss_entry(version, data.get("vectorString"), str(m.get("source", "")), m.get("type") == "Primary")
            if entry:
                cvss.append(entry)
    cwes = sorted(
        {
            str(d.get("value"))
            for w in cve.get("weaknesses", []) or []
            for d in (w.get("description", []) if is_map(w) else [])
            if is_map(d) and str(d.get("value", "")).startswith("CWE-")
        }
    )
    configs = check_configurations(cve.get("configurations", []), "cve.configurations")
    status = str(cve.get("vulnStatus", ""))
    data = {
        "id": cve_id,
        "description": _english(cve.get("descriptions")),
        "published": str(cve.get("published", "")),
        "modified": str(cve.get("lastModified", "")),
        "rejected": status == "Rejected",
        "cvss": cvss,
        "cwes": cwes,
        "configurations": configs,
        "references": [str(r.get("url")) for r in cve.get("references", []) or [] if is_map(r)],
    }
    return FeedRecord("nvd", cve_id, cve_id, str(data["modified"]), data)


def _override_record(doc: Mapping[str, Any], path: str) -> FeedRecord:
    ann = doc.get("_annotation")
    if not isinstance(ann, Mapping):
        raise record_error("_annotation is not an object")
    cve_id = ann.get("cve_id")
    if not isinstance(cve_id, str) or not CVE_ID.match(cve_id):
        raise record_error("_annotation.cve_id is missing or not a CVE id")
    cve = doc.get("cve")
    if not isinstance(cve, Mapping):
        raise record_error("cve is not an object")
    configs = check_configurations(cve.get("configurations"), "cve.configurations")
    refs = [str(r) for r in ann.get("references", []) or [] if isinstance(r, str)]
    data = {
        "id": cve_id,
        "description": str(ann.get("description", "")),
        "published": str(ann.get("published", "")),
        "modified": str(ann.get("modified", "")),
        "rejected": False,
        "cvss": [],
        "cwes": [],
        "configurations": configs,
        "references": refs,
        "note": str(ann.get("reason", "")),
    }
    return FeedRecord("nvd-override", cve_id, cve_id, str(data["modified"]), data)


def _legacy_record(item: Any) -> FeedRecord:
    if not isinstance(item, Mapping):
        raise record_error("CVE_Items entry is not an object")
    meta = item.get("cve", {}).get("CVE_data_meta", {})
    cve_id = meta.get("ID") if isinstance(meta, Mapping) else None
    if not isinstance(cve_id, str) or not CVE_ID.match(cve_id):
        raise record_error("cve.CVE_data_meta.ID is missing or not a CVE id")
    nodes = item.get("configurations", {}).get("nodes", [])
    configs = check_configurations([{"operator": "OR", "nodes": [n]} for n in nodes], "configurations")
    cvss: list[dict[str, Any]] = []
    impact = item.get("impact", {})
    v3 = impact.get("baseMetricV3", {}).get("cvssV3", {})
    entry = cvss_entry(str(v3.get("version", "3.1")), v3.get("vectorString"), "nvd@nist.gov", True)
    if entry:
        cvss.append(entry)
    v2 = impact.get("baseMetricV2", {}).get("cvssV2", {})
    entry = cvss_entry("2.0", v2.get("vectorString"), "nvd@nist.gov", True)
    if entry:
        cvss.append(entry)
    desc = item.get("cve", {}).get("description", {}).get("description_data", [])
    data = {
        "id": cve_id,
        "description": _english(desc),
        "published": str(item.get("publishedDate", "")),
        "modified": str(item.get("lastModifiedDate", "")),
        "rejected": False,
        "cvss": cvss,
        "cwes": [],
        "configurations": configs,
        "references": [],
    }
    return FeedRecord("nvd", cve_id, cve_id, str(data["modified"]), data)


def parse_nvd(raw: bytes, path: str) -> ParseResult:
    """Parse one NVD file (any of the shapes in the module docstring).

    Raises:
        FeedError: not JSON, truncated, or none of the NVD shapes.
    """
    return parse_nvd_doc(load_json(maybe_gunzip(raw, path), path), path)


def parse_nvd_doc(doc: Any, path: str) -> ParseResult:
    """Parse one already decoded NVD document (see :func:`parse_nvd`).

    Raises:
        FeedError: none of the NVD shapes.
    """
    result = ParseResult()
    if isinstance(doc, Mapping) and isinstance(doc.get("vulnerabilities"), list) and doc.get("format") == "NVD_CVE":
        for i, v in enumerate(doc["vulnerabilities"]):
            cve = v.get("cve") if is_map(v) else None
            rid = str(cve.get("id", f"#{i}")) if is_map(cve) else f"#{i}"
            try:
                result.records.append(_api_record(cve))
            except RecordError as e:
                result.skips.append(Skip(rid, f"vulnerabilities[{i}]: {e}", path))
        return result
    if isinstance(doc, Mapping) and "_annotation" in doc and "cve" in doc:
        try:
            result.records.append(_override_record(doc, path))
        except RecordError as e:
            ann = doc.get("_annotation")
            rid = str(ann.get("cve_id", path)) if isinstance(ann, Mapping) else path
            result.skips.append(Skip(rid, str(e), path))
        return result
    if isinstance(doc, Mapping) and isinstance(doc.get("CVE_Items"), list):
        for i, item in enumerate(doc["CVE_Items"]):
            try:
                result.records.append(_legacy_record(item))
            except (RecordError, AttributeError) as e:
                result.skips.append(Skip(f"#{i}", f"CVE_Items[{i}]: {e}", path))
        return result
    raise FeedError(
        "not an NVD feed: expected an API 2.0 response (format NVD_CVE), an NVD-shaped override record "
        "(_annotation + cve) or a JSON 1.1 feed (CVE_Items)",
        path=path,
    )
