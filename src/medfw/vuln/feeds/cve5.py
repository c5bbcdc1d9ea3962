"""CVE JSON 5.x records (CVE program, CISA vulnrichment, vendor CNAs such as OpenSSL).

From the CNA container and every ADP container (CISA-ADP) the parser takes descriptions, CVSS (3.0, 3.1, 4.0),
CWE ids, CISA SSVC decision points and the ``affected`` entries. The ``affected`` entries become NVD-shaped
configurations, used only when no NVD record for the CVE has configurations. The CNA container is stored as
source ``cve5-cna`` and each ADP container as ``cve5-adp`` (record id ``CVE-…#CISA-ADP``): importing one never
replaces another. A CNA's qualitative rating in ``metrics[].other`` (OpenSSL: Low, Moderate, High, Critical) is
kept as a vendor rating. Identity and ranges:

* identity: the entry's ``cpes`` (ADP) or, without them, ``vendor:product`` lower-cased (``n/a`` is ignored);
* ``{version: V, lessThan: L}`` → ``V <= v < L`` (``V`` of ``0``/``*`` means no lower bound), ``lessThanOrEqual``
  likewise; a bare ``version`` is that exact version; ``*`` is all versions; git and unparsable versions such
  as ``3.x`` are left out; ``unaffected`` entries are not modelled (they only narrow).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from medfw.errors import FeedError
from medfw.vuln.cpe import ANY, Cpe, parse_cpe
from medfw.vuln.feeds import CVE_ID, FeedRecord, ParseResult, RecordError, Skip, load_json, record_error
from medfw.vuln.feeds._cvss import check_configurations, cvss_entry
from medfw.vuln.version import is_version

__all__ = ["parse_cve5"]

_NONE = {"", "n/a", "na", "unspecified", "unknown"}
_CVSS_KEYS = (("cvssV4_0", "4.0"), ("cvssV3_1", "3.1"), ("cvssV3_0", "3.0"))


def _ident_cpes(entry: Mapping[str, Any]) -> list[Cpe]:
    out: list[Cpe] = []
    for c in entry.get("cpes", []) or []:
        try:
            cpe = parse_cpe(str(c))
        except ValueError:
            continue
        out.append(Cpe(cpe.part, cpe.vendor, cpe.product))
    if out:
        return out
    vendor = str(entry.get("vendor", "")).strip().lower()
    product = str(entry.get("product", "")).strip().lower()
    if vendor in _NONE or product in _NONE:
        return []
    norm = [re.sub(r"\s+", "_", v) for v in (vendor, product)]
    return [Cpe("a", ANY, ANY).with_key(norm[0], norm[1])]


def _matches_for(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    ranges: list[dict[str, str]] = []
    versions = entry.get("versions", []) or []
    for v in versions:
        if not isinstance(v, Mapping) or v.get("status") != "affected" or v.get("versionType") == "git":
            continue
        start = str(v.get("version", "")).strip()
        bound: dict[str, str] = {}
        if start not in ("0", "*", "") and not is_version(start):
            continue
        if start not in ("0", "*", ""):
            bound["versionStartIncluding"] = start
        if "lessThan" in v and str(v["lessThan"]) != "*":
            if not is_version(str(v["lessThan"])):
                continue
            bound["versionEndExcluding"] = str(v["lessThan"])
        elif "lessThanOrEqual" in v and str(v["lessThanOrEqual"]) != "*":
            if not is_version(str(v["lessThanOrEqual"])):
                continue
            bound["versionEndIncluding"] = str(v["lessThanOrEqual"])
        elif "lessThan" not in v and "lessThanOrEqual" not in v and start not in ("0", "*", ""):
            bound = {"exact": start}
        ranges.append(bound)
    if not versions and entry.get("defaultStatus") == "affected":
        ranges.append({})
    out: list[dict[str, Any]] = []
    for cpe in _ident_cpes(entry):
        for b in ranges:
            if "exact" in b:
                crit = str(cpe.with_version(b["exact"]))
                out.append({"criteria": crit, "vulnerable": True})
            else:
                out.append({"criteria": str(cpe), "vulnerable": True, **b})
    return out


def _containers(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    cont = doc.get("containers")
    if not isinstance(cont, Mapping) or not isinstance(cont.get("cna"), Mapping):
        raise record_error("containers.cna is missing")
    out: list[tuple[str, Mapping[str, Any]]] = [("cna", cont["cna"])]
    for adp in cont.get("adp", []) or []:
        if isinstance(adp, Mapping):
            out.append(("adp", adp))
    return out


def _ssvc(metric: Mapping[str, Any]) -> dict[str, str] | None:
    other = metric.get("other")
    if not isinstance(other, Mapping) or str(other.get("type", "")).lower() != "ssvc":
        return None
    content = other.get("content", {})
    result: dict[str, str] = {}
    for opt in content.get("options", []) if isinstance(content, Mapping) else []:
        if isinstance(opt, Mapping):
            for k, v in opt.items():
                result[str(k).lower().replace(" ", "_")] = str(v).lower()
    return result or None


_QUALITATIVE = {"low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical"}


def _rating(metric: Mapping[str, Any], provider: str) -> dict[str, Any] | None:
    """A vendor's qualitative rating (``metrics[].other`` with text Low/Moderate/High/Critical, e.g. OpenSSL)."""
    other = metric.get("other")
    if not isinstance(other, Mapping) or str(other.get("type", "")).lower() == "ssvc":
        return None
    content = other.get("content")
    text = content.get("text") if isinstance(content, Mapping) else content
    if not isinstance(text, str) or text.strip().lower() not in _QUALITATIVE:
        return None
    return {"rating": text.strip(), "severity": _QUALITATIVE[text.strip().lower()], "source": provider}


def _container(cve_id: str, meta: Mapping[str, Any], name: str, c: Mapping[str, Any]) -> FeedRecord:
    description = ""
    cvss: list[dict[str, Any]] = []
    ratings: list[dict[str, Any]] = []
    cwes: set[str] = set()
    ssvc: dict[str, str] | None = None
    matches: list[dict[str, Any]] = []
    pm = c.get("providerMetadata")
    provider = str(pm.get("shortName", name)) if isinstance(pm, Mapping) else name
    for d in c.get("descriptions", []) or []:
        if not description and isinstance(d, Mapping) and str(d.get("lang", "")).startswith("en"):
            description = str(d.get("value", ""))
    for m in c.get("metrics", []) or []:
        if not isinstance(m, Mapping):
            continue
        for key, version in _CVSS_KEYS:
            if isinstance(m.get(key), Mapping):
                entry = cvss_entry(version, m[key].get("vectorString"), provider, name == "cna")
                if entry:
                    cvss.append(entry)
        ssvc = ssvc or _ssvc(m)
        rating = _rating(m, provider)
        if rating:
            ratings.append(rating)
    for pt in c.get("problemTypes", []) or []:
        for d in pt.get("descriptions", []) if isinstance(pt, Mapping) else []:
            if isinstance(d, Mapping) and str(d.get("cweId", "")).startswith("CWE-"):
                cwes.add(str(d["cweId"]))
    affected = c.get("affected", []) or []
    if not isinstance(affected, list):
        raise record_error(f"containers.{name}.affected is not a list")
    for entry in affected:
        if isinstance(entry, Mapping):
            matches.extend(_matches_for(entry))
    configs = check_configurations([{"nodes": [{"operator": "OR", "cpeMatch": matches}]}] if matches else [])
    date = pm.get("dateUpdated") if isinstance(pm, Mapping) else None
    modified = str(date or meta.get("dateUpdated", ""))
    data = {
        "id": cve_id,
        "provider": provider,
        "description": description,
        "published": str(meta.get("datePublished", "")),
        "modified": modified,
        "rejected": meta.get("state") == "REJECTED",
        "cvss": cvss,
        "ratings": ratings,
        "cwes": sorted(cwes),
        "ssvc": ssvc,
        "configurations": configs,
        "references": [],
    }
    if name == "cna":
        return FeedRecord("cve5-cna", cve_id, cve_id, modified, data)
    return FeedRecord("cve5-adp", f"{cve_id}#{provider}", cve_id, modified, data)


def _records(doc: Any) -> list[FeedRecord]:
    """One record per container: the CNA's (source ``cve5-cna``) and each ADP's (``cve5-adp``, id ``CVE#ADP``).

    Kept apart so that importing a vendor's own CNA record never replaces CISA's ADP enrichment of the same CVE.
    """
    if not isinstance(doc, Mapping) or doc.get("dataType") != "CVE_RECORD":
        raise record_error("not a CVE JSON 5 record (dataType is not CVE_RECORD)")
    meta = doc.get("cveMetadata")
    cve_id = meta.get("cveId") if isinstance(meta, Mapping) else None
    if not isinstance(cve_id, str) or not CVE_ID.match(cve_id):
        raise record_error("cveMetadata.cveId is missing or not a CVE id")
    assert isinstance(meta, Mapping)
    return [_container(cve_id, meta, name, c) for name, c in _containers(doc)]


def parse_cve5(raw: bytes, path: str) -> ParseResult:
    """Parse one CVE JSON 5 file; a JSON document that is not a CVE record is a reported skip.

    Raises:
        FeedError: the file is not JSON or is truncated.
    """
    doc = load_json(raw, path)
    result = ParseResult()
    try:
        result.records.extend(_records(doc))
    except RecordError as e:
        rid = path
        if isinstance(doc, Mapping) and isinstance(doc.get("cveMetadata"), Mapping):
            rid = str(doc["cveMetadata"].get("cveId", path))
        result.skips.append(Skip(rid, str(e), path))
    except (AttributeError, TypeError) as e:
        raise FeedError(f"CVE record has an unexpected structure: {e}", path=path) from e
    return result
