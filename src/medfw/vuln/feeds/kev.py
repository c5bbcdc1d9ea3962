"""The CISA Known Exploited Vulnerabilities catalog (JSON, schema of cisagov/kev-data)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medfw.errors import FeedError
from medfw.vuln.feeds import CVE_ID, Skip, load_json

__all__ = ["KevCatalog", "parse_kev"]

_REQUIRED = ("cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded", "shortDescription", "dueDate")


@dataclass
class KevCatalog:
    """Parsed catalog: entries by CVE id, plus skipped entries."""

    version: str
    date_released: str = ""
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)


def _date(value: Any) -> bool:
    try:
        dt.date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def parse_kev(raw: bytes, path: str) -> KevCatalog:
    """Parse the KEV catalog; entries violating the schema are skipped and reported.

    Raises:
        FeedError: not JSON, truncated, or not a KEV catalog.
    """
    doc = load_json(raw, path, "KEV catalog")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("vulnerabilities"), list):
        raise FeedError("not a CISA KEV catalog (vulnerabilities expected)", path=path, field="vulnerabilities")
    if not isinstance(doc.get("catalogVersion"), str | int | float) or isinstance(doc["catalogVersion"], bool):
        raise FeedError("not a CISA KEV catalog (catalogVersion expected)", path=path, field="catalogVersion")
    cat = KevCatalog(str(doc["catalogVersion"]), str(doc.get("dateReleased", "")))
    for i, e in enumerate(doc["vulnerabilities"]):
        rid = str(e.get("cveID", f"#{i}")) if isinstance(e, Mapping) else f"#{i}"
        if not isinstance(e, Mapping):
            cat.skips.append(Skip(rid, f"vulnerabilities[{i}] is not an object", path))
            continue
        missing = [k for k in _REQUIRED if not isinstance(e.get(k), str)]
        if missing:
            cat.skips.append(Skip(rid, f"vulnerabilities[{i}] lacks {', '.join(missing)}", path))
            continue
        if not CVE_ID.match(e["cveID"]) or not _date(e["dateAdded"]) or not _date(e["dueDate"]):
            cat.skips.append(Skip(rid, f"vulnerabilities[{i}] has a malformed cveID or date", path))
            continue
        cat.entries[e["cveID"]] = {
            "date_added": e["dateAdded"],
            "due_date": e["dueDate"],
            "ransomware": str(e.get("knownRansomwareCampaignUse", "Unknown")),
            "name": e["vulnerabilityName"],
            "required_action": str(e.get("requiredAction", "")),
        }
    return cat
