"""Vendor-published vulnerability tables (source ``vendor``): curl's first/last-vulnerable table.

curl publishes, for every CVE, the first and last vulnerable release and its own qualitative severity (low,
medium, high, critical). Each entry becomes a record ``CVE-…#curl`` with an NVD-shaped configuration
(``haxx:curl`` and ``haxx:libcurl``, ``first <= v <= last``) and the vendor rating. Entries of ``scope: tool``
affect only the command-line tool; they are kept, with the scope in the record, so triage can see it.
Retracted entries are not vulnerabilities and are not imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medfw.errors import FeedError
from medfw.vuln.feeds import CVE_ID, FeedRecord, ParseResult, RecordError, Skip, load_json, record_error
from medfw.vuln.feeds._cvss import check_configurations
from medfw.vuln.version import is_version

__all__ = ["parse_vendor"]

_SEVERITIES = {"low", "medium", "high", "critical"}
_CURL_CPES = ("cpe:2.3:a:haxx:curl:*:*:*:*:*:*:*:*", "cpe:2.3:a:haxx:libcurl:*:*:*:*:*:*:*:*")


def _date(text: str) -> str:
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else ""


def _curl_record(e: Any, i: int) -> FeedRecord:
    if not isinstance(e, Mapping):
        raise record_error(f"vulnerabilities[{i}] is not an object")
    cve = e.get("cve")
    if not isinstance(cve, str) or not CVE_ID.match(cve):
        raise record_error(f"vulnerabilities[{i}].cve is missing or not a CVE id")
    first, last = str(e.get("first_vulnerable", "")), str(e.get("last_vulnerable", ""))
    if not is_version(first) or not is_version(last):
        raise record_error(f"vulnerabilities[{i}] first/last_vulnerable is not a version")
    severity = str(e.get("severity", "")).strip().lower()
    ratings = [{"rating": severity, "severity": severity, "source": "curl"}] if severity in _SEVERITIES else []
    matches = [
        {"criteria": c, "vulnerable": True, "versionStartIncluding": first, "versionEndIncluding": last}
        for c in _CURL_CPES
    ]
    announced = _date(str(e.get("announce_date", "")))
    data = {
        "id": cve,
        "provider": "curl",
        "description": str(e.get("name", "")),
        "published": announced,
        "modified": announced,
        "rejected": False,
        "cvss": [],
        "ratings": ratings,
        "cwes": [str(e["cwe"]).split(":", 1)[0]] if str(e.get("cwe", "")).startswith("CWE-") else [],
        "configurations": check_configurations([{"nodes": [{"cpeMatch": matches}]}]),
        "references": [f"https://curl.se/docs/{e['page']}"] if isinstance(e.get("page"), str) else [],
        "scope": str(e.get("scope", "")),
    }
    return FeedRecord("vendor", f"{cve}#curl", cve, announced, data)


def parse_vendor(raw: bytes, path: str) -> ParseResult:
    """Parse a vendor table (today: curl's, recognised by ``first_vulnerable``/``last_vulnerable`` entries).

    Raises:
        FeedError: not JSON, truncated, or not a known vendor table.
    """
    doc = load_json(raw, path)
    vulns = doc.get("vulnerabilities") if isinstance(doc, Mapping) else None
    if not isinstance(vulns, list) or not all(isinstance(v, Mapping) and "first_vulnerable" in v for v in vulns[:5]):
        raise FeedError(
            "not a known vendor table (expected curl's vulnerabilities[] with first_vulnerable/last_vulnerable)",
            path=path,
        )
    result = ParseResult()
    for i, e in enumerate(vulns):
        try:
            result.records.append(_curl_record(e, i))
        except RecordError as err:
            rid = str(e.get("cve", f"#{i}")) if isinstance(e, Mapping) else f"#{i}"
            result.skips.append(Skip(rid, str(err), path))
    return result
