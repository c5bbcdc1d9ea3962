"""The vulnerability and audit-trail sections of an evidence bundle (see :mod:`medfw.evidence.collect`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw._io import read_bytes
from medfw.audit.bundle import export_bundle, verify_bundle
from medfw.audit.keys import VerificationKey
from medfw.audit.query import list_entries
from medfw.audit.store import open_store
from medfw.audit.verify import verify_log
from medfw.errors import EvidenceError
from medfw.evidence import binding
from medfw.evidence.bundle_writer import BundleWriter
from medfw.evidence.fixed import fixed_by_release
from medfw.evidence.report import CheckLine
from medfw.evidence.spec import ReleaseSpec
from medfw.evidence.verdict import open_findings, summarize_open
from medfw.vuln import export_vex, open_index, scan
from medfw.vuln.index import VulnIndex

if TYPE_CHECKING:
    from medfw.evidence.collect import SbomOut

__all__ = ["AuditOut", "VulnOut", "collect_audit", "collect_vuln", "release_seqs"]


@dataclass(frozen=True)
class VulnOut:
    """The scan record, the postmarket history and the two checks."""

    scan: dict[str, Any]
    history: list[dict[str, Any]]
    checks: list[CheckLine] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)

    def finding_rows(self) -> list[dict[str, Any]]:
        """The finding rows of the report."""
        rows = []
        for f in self.scan.get("findings", []):
            d = f.get("decision") or {}
            rows.append(
                {
                    "id": f.get("vuln_id"),
                    "component": f.get("component"),
                    "severity": f.get("severity"),
                    "severity_source": f.get("severity_source") or "",
                    "score": f.get("score"),
                    "kev": f.get("kev"),
                    "state": d.get("state"),
                    "justification": d.get("justification"),
                    "response": ", ".join(d.get("responses") or []),
                    "detail": d.get("detail", ""),
                }
            )
        return rows


def collect_vuln(w: BundleWriter, spec: ReleaseSpec, sbom: SbomOut) -> VulnOut:
    """Scan the SBOM against the index, export the decisions as CycloneDX VEX and OpenVEX, and the history."""
    index = open_index(spec.vuln_db)
    try:
        scanned = scan(index, sbom.data)
        scan_doc = scanned.as_dict()
        scan_doc["index_records"] = index.record_count()
        vex_cdx = export_vex(index, sbom.data, "cyclonedx")
        vex_open = export_vex(index, sbom.data, "openvex")
        label = sbom.doc.component.version if sbom.doc.component and sbom.doc.component.version else spec.version
        history = _history(index, scanned.sbom.serial, label, [f.severity for f in scanned.findings])
        fixed = fixed_by_release(index, scanned)
    finally:
        index.close()
    w.json("vuln/scan.json", scan_doc)
    w.json("vuln/vex.cdx.json", vex_cdx)
    w.json("vuln/vex.openvex.json", vex_open)
    w.json("vuln/history.json", {"releases": history})
    w.json("vuln/fixed.json", fixed)
    sbom_json = json.loads(sbom.data)
    problems = (
        binding.check_scan(scan_doc, sbom_json)
        + binding.check_vex_cyclonedx(vex_cdx, sbom_json)
        + binding.check_openvex(vex_open, sbom_json)
    )
    rows = VulnOut(scan_doc, history).finding_rows()
    still_open = open_findings(rows)
    checks = [
        CheckLine(
            "Vulnerability decisions",
            not still_open,
            f"{len(rows)} findings, {len(rows) - len(still_open)} with a closing decision, {len(still_open)} open"
            + (f": {summarize_open(rows)}" if still_open else "")
            + _fixed_note(fixed),
            "vuln/scan.json",
        ),
        CheckLine(
            "VEX bound to the SBOM",
            not problems,
            "; ".join(problems[:3]) or f"CycloneDX and OpenVEX statements name SBOM {scanned.sbom.serial}",
            "vuln/vex.cdx.json",
        ),
    ]
    return VulnOut(scan_doc, history, checks, fixed)


def _fixed_note(fixed: dict[str, Any]) -> str:
    items = fixed.get("fixed") or []
    if not items:
        return ""
    names = ", ".join(f"{f['id']} ({f['severity']})" for f in items[:5])
    more = f" and {len(items) - 5} more (see vuln/fixed.json)" if len(items) > 5 else ""
    return f"; fixed by this release since {fixed.get('previous_release')}: {names}{more}"


def _history(index: VulnIndex, current_serial: str, current_label: str, current: Sequence[str]) -> list[dict[str, Any]]:
    """Findings per severity for each registered release (by id), then this release if it is not registered."""
    out: list[dict[str, Any]] = []
    seen = False
    for rel in index.releases():
        counts: dict[str, int] = {}
        for f in index.last_scan(int(rel["id"])) or []:
            sev = str(f.get("severity", "unknown"))
            counts[sev] = counts.get(sev, 0) + 1
        label = str(rel.get("name") or rel["id"])
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError, KeyError):
            label = str(json.loads(bytes(rel["sbom"]))["metadata"]["component"].get("version") or label)
        seen = seen or rel["serial"] == current_serial
        out.append({"release": label, "serial": rel["serial"], "counts": counts, "registered": True})
    if not seen:
        counts = {}
        for sev in current:
            counts[sev] = counts.get(sev, 0) + 1
        out.append({"release": current_label, "serial": current_serial, "counts": counts, "registered": False})
    return out


# -- audit trail ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditOut:
    """The audit export and its check."""

    export: dict[str, Any]
    check: CheckLine

    def timeline(self) -> list[dict[str, Any]]:
        """The exported events as report rows."""
        events = []
        for item in self.export["entries"]:
            body = json.loads(item["record"])["body"]
            events.append(
                {
                    "seq": item["seq"],
                    "time": body.get("ts"),
                    "type": body.get("type"),
                    "outcome": body.get("outcome"),
                    "reason": body.get("reason"),
                    "actor": body.get("actor"),
                }
            )
        return events


def release_seqs(log: str, identifiers: set[str], spec: ReleaseSpec) -> list[int]:
    """The seqs of the log's entries about this release: any object value naming one of ``identifiers``, or a
    ``release.sign`` / ``release.publish`` record whose data names the release version (and model)."""
    seqs: list[int] = []
    for rec in list_entries(log):
        objects = rec.body.get("objects")
        values = {str(v) for v in objects.values()} if isinstance(objects, Mapping) else set()
        data = rec.body.get("data")
        named = (
            isinstance(data, Mapping)
            and str(data.get("version", "")) == spec.version
            and str(data.get("model", spec.model)) == spec.model
            and rec.type in {"release.publish", "release.sign"}
        )
        if values & identifiers or named:
            seqs.append(rec.seq)
    return seqs


def collect_audit(w: BundleWriter, spec: ReleaseSpec, identifiers: set[str]) -> AuditOut:
    """Export this release's audit events with a fresh signed checkpoint and inclusion proofs, and verify it."""
    seqs = release_seqs(spec.audit_log, identifiers, spec)
    vkey: VerificationKey | None = None
    if spec.audit_key is not None:
        raw = read_bytes(spec.audit_key, max_length=1 << 16, what="audit verification key")
        vkey = VerificationKey.from_bytes(raw, path=str(spec.audit_key))
    export = export_bundle(spec.audit_log, seqs=seqs)
    w.json("audit/export.json", export)
    if vkey is not None:
        pub_pem = vkey.checkpoint_public_key_pem
    else:
        store = open_store(spec.audit_log)
        try:
            stored = store.get_meta("checkpoint_public_key")
        finally:
            store.close()
        if stored is None:
            raise EvidenceError("the audit log has no checkpoint public key", path=spec.audit_log)
        pub_pem = stored
    w.put("audit/checkpoint.pub.pem", pub_pem)
    report = verify_bundle(export, key=vkey, public_key_pem=None if vkey else pub_pem, path="audit/export.json")
    result: dict[str, Any] = {
        "export": report.to_dict(),
        "selection": "entries whose objects name a release image SHA-256, the SBOM serial or SHA-256, "
        "or release.sign / release.publish records of this version",
        "seqs": seqs,
        "checkpoint_key": "pinned by the audit verification key" if vkey else "read from the audit log",
    }
    log_ok = True
    if vkey is not None:
        log_report = verify_log(spec.audit_log, vkey)
        result["log"] = log_report.to_dict()
        if "://" not in spec.audit_log:  # a file: its name only, never a path of the build machine
            result["log"]["location"] = Path(spec.audit_log).name
        log_ok = log_report.ok
    w.json("results/audit.json", result)
    check = CheckLine(
        "Audit trail",
        report.ok and bool(seqs) and log_ok,
        f"{len(seqs)} release events exported with inclusion proofs against a signed checkpoint of "
        f"{report.checkpoint_size} entries"
        + (", HMACs and the whole log verified" if vkey is not None and log_ok else "")
        + ("" if log_ok else "; the audit log does NOT verify")
        + ("" if report.ok else f"; {'; '.join(report.errors[:2])}")
        + ("" if seqs else "; no event of this release is in the log"),
        "audit/export.json",
    )
    return AuditOut(export, check)


# -- traceability ---------------------------------------------------------------------------------------------
