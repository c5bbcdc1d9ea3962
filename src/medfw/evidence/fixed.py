"""Which vulnerabilities of the previous release this release fixes (``vuln/fixed.json`` of the bundle).

The previous release is the latest registered release (``medfw vuln release add``) of the same firmware name with
another SBOM serial number. Both SBOMs are scanned against the same index now; a finding of the previous release
whose vulnerability no longer matches the same component in this release is *fixed by this release*, listed with
the component's versions before and after and the previous release's decision.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from medfw.vuln import scan
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import ScanResult
from medfw.vuln.sbom_input import read_sbom

__all__ = ["fixed_by_release"]


def _version(rel: dict[str, Any]) -> str:
    with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError, KeyError):
        return str(json.loads(bytes(rel["sbom"]))["metadata"]["component"].get("version") or "")
    return ""


def fixed_by_release(index: VulnIndex, current: ScanResult) -> dict[str, Any]:
    """``{"previous_release", "previous_serial", "fixed": [...]}`` (``fixed`` empty without a previous release)."""
    candidates = [r for r in index.releases() if r["name"] == current.sbom.name and r["serial"] != current.sbom.serial]
    if not candidates:
        return {"previous_release": None, "previous_serial": None, "fixed": []}
    prev = candidates[-1]
    before = scan(index, read_sbom(bytes(prev["sbom"]), f"release {prev['id']}"))
    now_versions = {c.ref: c.version for c in current.sbom.components}
    still = {(f.vuln_id, f.component_name) for f in current.findings}
    fixed = [
        {
            "id": f.vuln_id,
            "component": f.component_name,
            "component_ref": f.component_ref,
            "version_before": f.component_version,
            "version_now": now_versions.get(f.component_ref),
            "severity": f.severity,
            "severity_source": f.severity_source,
            "score": f.score,
            "kev": f.kev,
            "previous_decision": f.decision.state if f.decision else None,
        }
        for f in before.findings
        if (f.vuln_id, f.component_name) not in still
    ]
    fixed.sort(key=lambda x: (not x["kev"], x["severity"] != "critical", x["id"]))
    return {"previous_release": _version(prev) or prev["name"], "previous_serial": prev["serial"], "fixed": fixed}
