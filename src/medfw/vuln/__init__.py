"""SBOM-driven vulnerability management: offline feeds, exact matching, triage, decisions and VEX.

Public API::

    index = open_index("medfw-vuln.db")                 # or "postgresql://host/db"
    import_feeds(index, nvd=["nvd/"], kev=["kev.json"])  # incremental, one transaction
    result = scan(index, "sbom.cdx.json")                # ScanResult, findings in priority order
    record_decision(index, sbom, "CVE-…", "bom-ref", state="not_affected", justification=…, detail=…,
                    author=…, sink=audit_sink)
    doc = export_vex(index, sbom, "cyclonedx")           # or "openvex", "csaf"

Names are loaded on first use, so light modules (:mod:`medfw.vuln.vocabulary`, :mod:`medfw.vuln.version`)
can be imported by other packages without pulling in the database layer.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfw.vuln.decisions import current_decisions, decision_history, record_decision
    from medfw.vuln.importer import ImportReport, import_feeds
    from medfw.vuln.index import VulnIndex, open_index
    from medfw.vuln.model import Decision, Finding, MatchReason, ScanComponent, ScanInput, ScanResult
    from medfw.vuln.postmarket import (
        ReleaseDelta,
        RescanReport,
        add_release,
        release_history,
        rescan,
        retire_release,
    )
    from medfw.vuln.sbom_input import read_sbom
    from medfw.vuln.vex import read_vex

__all__ = [
    "Decision",
    "Finding",
    "ImportReport",
    "MatchReason",
    "ReleaseDelta",
    "RescanReport",
    "ScanComponent",
    "ScanInput",
    "ScanResult",
    "VulnIndex",
    "add_release",
    "current_decisions",
    "decision_history",
    "export_vex",
    "import_feeds",
    "load_scan_input",
    "open_index",
    "read_sbom",
    "read_vex",
    "record_decision",
    "release_history",
    "rescan",
    "retire_release",
    "scan",
]

_LAZY = {
    "current_decisions": "decisions",
    "decision_history": "decisions",
    "record_decision": "decisions",
    "ImportReport": "importer",
    "import_feeds": "importer",
    "VulnIndex": "index",
    "open_index": "index",
    "Decision": "model",
    "Finding": "model",
    "MatchReason": "model",
    "ScanComponent": "model",
    "ScanInput": "model",
    "ScanResult": "model",
    "ReleaseDelta": "postmarket",
    "add_release": "postmarket",
    "rescan": "postmarket",
    "RescanReport": "postmarket",
    "release_history": "postmarket",
    "retire_release": "postmarket",
    "read_sbom": "sbom_input",
    "read_vex": "vex",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'medfw.vuln' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"medfw.vuln.{module}"), name)
    globals()[name] = value
    return value


def load_scan_input(sbom: ScanInput | bytes | str | os.PathLike[str]) -> ScanInput:
    """Return ``sbom`` as a :class:`ScanInput` (reading a CycloneDX JSON file or bytes if needed)."""
    from medfw._io import read_bytes  # noqa: PLC0415
    from medfw.vuln.model import ScanInput  # noqa: PLC0415
    from medfw.vuln.sbom_input import read_sbom  # noqa: PLC0415

    if isinstance(sbom, ScanInput):
        return sbom
    if isinstance(sbom, bytes):
        return read_sbom(sbom)
    return read_sbom(read_bytes(sbom, what="SBOM"), str(sbom))


def scan(
    index: VulnIndex, sbom: ScanInput | bytes | str | os.PathLike[str], *, vex: Sequence[Decision] = ()
) -> ScanResult:
    """Scan an SBOM (object, bytes or path) against ``index``; see :func:`medfw.vuln.scanner.scan`."""
    from medfw.vuln import scanner  # noqa: PLC0415

    return scanner.scan(index, load_scan_input(sbom), vex=vex)


def export_vex(
    index: VulnIndex, sbom: ScanInput | bytes | str | os.PathLike[str], fmt: str, *, author: str = "medfw"
) -> dict[str, object]:
    """Export the decisions recorded for an SBOM as CycloneDX 1.6, OpenVEX 0.2 or CSAF 2.0 VEX."""
    from medfw.vuln.decisions import decision_history  # noqa: PLC0415
    from medfw.vuln.vex import export_vex as _export  # noqa: PLC0415

    s = load_scan_input(sbom)
    return _export(s, decision_history(index, s.serial), fmt, author=author)
