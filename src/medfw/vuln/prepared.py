"""What matching and triage need from a record, prepared once at import (pure).

* :func:`match_data` — the configurations (NVD, overrides, CVE 5, vendor) or OSV entries, and whether the record
  is rejected: all a scan evaluates;
* :func:`triage_data` — CVSS entries already scored with the ``cvss`` package (``score``, ``severity``,
  ``network``), qualitative ratings, SSVC, aliases, the description and the rejected flag: all severity
  precedence and the finding need.

Both are stored (orjson) beside the full record, so a scan decodes small documents and never re-scores vectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from medfw.vuln.cpe import parse_cpe
from medfw.vuln.triage import score_vector

__all__ = ["dumps", "loads", "match_data", "prescore", "triage_data"]


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(doc)


def loads(blob: bytes) -> dict[str, Any]:
    """Parse what :func:`dumps` wrote."""
    out: dict[str, Any] = orjson.loads(blob)
    return out


def _criteria(nodes: Any, out: dict[str, list[str]]) -> None:
    for node in nodes or ():
        for m in node.get("cpeMatch", ()):
            text = str(m.get("criteria", ""))
            if text not in out:
                try:
                    out[text] = list(parse_cpe(text).values())
                except ValueError:
                    continue
        _criteria(node.get("children"), out)


def match_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a normalized record that matching evaluates, with every criterion already parsed (``cpes``)."""
    out: dict[str, Any] = {"rejected": bool(data.get("rejected"))}
    if data.get("configurations"):
        out["configurations"] = data["configurations"]
        cpes: dict[str, list[str]] = {}
        for conf in data["configurations"]:
            _criteria(conf.get("nodes"), cpes)
        out["cpes"] = cpes
    if data.get("osv"):
        out["osv"] = data["osv"]
    return out


def prescore(entries: Any) -> list[dict[str, Any]]:
    """CVSS entries with their score, severity and network flag computed (score None when the vector is bad)."""
    out: list[dict[str, Any]] = []
    for e in entries or []:
        c = score_vector(str(e.get("version", "")), str(e.get("vector", "")))
        out.append({**e, "score": c.score, "severity": c.severity, "network": c.network})
    return out


def triage_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a normalized record that triage and the finding use."""
    return {
        "cvss": prescore(data.get("cvss")),
        "ratings": list(data.get("ratings") or []),
        "ssvc": data.get("ssvc"),
        "aliases": list(data.get("aliases") or []),
        "description": str(data.get("description", "")),
        "rejected": bool(data.get("rejected")),
    }
