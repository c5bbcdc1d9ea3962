"""The evidence sections of a bundle, one function each: images and keys, device (update path and eFuse
policy), SBOM, vulnerabilities, audit trail, traceability.

Each function reads its inputs through a :class:`BundleWriter` (which records the SHA-256 of every input),
writes its files into the staging directory, and returns what later sections and the report need together with
its :class:`~medfw.evidence.report.CheckLine` verdicts. :mod:`medfw.evidence.build` runs them in order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from medfw._io import read_bytes
from medfw.audit.bundle import export_bundle, verify_bundle
from medfw.audit.keys import VerificationKey
from medfw.audit.query import list_entries
from medfw.audit.store import open_store
from medfw.audit.verify import verify_log
from medfw.crypto.keys import PublicKey
from medfw.device.policy import Policy
from medfw.errors import EvidenceError
from medfw.evidence import binding
from medfw.evidence.checks_build import check_image_binding
from medfw.evidence.checks_images import key_digests, load_keys, verify_images
from medfw.evidence.efuse_check import check_unit
from medfw.evidence.fixed import fixed_by_release
from medfw.evidence.report import CheckLine
from medfw.evidence.scenario import run_update_path
from medfw.evidence.spec import ReleaseSpec
from medfw.evidence.trace import TRACE_MATRIX
from medfw.evidence.verdict import open_findings, summarize_open
from medfw.sbom.check import check_sbom
from medfw.sbom.document import SbomDocument, parse_sbom
from medfw.vuln import export_vex, open_index, scan
from medfw.vuln.index import VulnIndex

__all__ = [
    "AuditOut",
    "BundleWriter",
    "ImagesOut",
    "SbomOut",
    "VulnOut",
    "collect_audit",
    "collect_device",
    "collect_images",
    "collect_sbom",
    "collect_trace",
    "collect_vuln",
    "dump_json",
]

_MAX_INPUT = 512 * 1024 * 1024


def dump_json(data: Any) -> bytes:
    """The bundle's JSON file form: sorted keys, two-space indent, trailing newline (deterministic)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def public_pem(key: PublicKey) -> bytes:
    """PEM SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in name) or "file"


class BundleWriter:
    """Writes files into the staging directory and remembers every input read (path and SHA-256).

    Input paths inside ``base`` (the release directory) are recorded relative to it.
    """

    def __init__(self, root: Path, *, base: Path | None = None) -> None:
        self.root = root
        self.base = base
        self.inputs: list[dict[str, Any]] = []

    def put(self, rel: str, data: bytes) -> str:
        """Write ``data`` at ``rel``; two inputs may not map to the same file."""
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise EvidenceError("two inputs map to the same bundle file", path=rel)
        target.write_bytes(data)
        return rel

    def json(self, rel: str, data: Any) -> str:
        """Write ``data`` as the bundle's JSON form."""
        return self.put(rel, dump_json(data))

    def read(self, path: Path, what: str) -> bytes:
        """Read an input (bounded) and record its SHA-256."""
        data = read_bytes(path, max_length=_MAX_INPUT, what=what)
        inside = self.base is not None and path.is_relative_to(self.base)
        # never an absolute path of the build machine: inputs outside the release directory by file name only
        name = path.relative_to(self.base).as_posix() if self.base and inside else path.name
        entry: dict[str, Any] = {"input": what, "path": name, "sha256": hashlib.sha256(data).hexdigest()}
        if not inside:
            entry["outside_release"] = True
        self.inputs.append(entry)
        return data


# -- images and keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagesOut:
    """The release's keys and images as bundled, with their verification results."""

    digests: list[dict[str, Any]]
    images: list[tuple[str, str, str, bytes]]
    results: list[dict[str, Any]]
    check: CheckLine

    @property
    def sbv2_digests(self) -> list[bytes]:
        """The Secure Boot v2 eFuse digests of the trusted keys that have one, in slot order."""
        return [bytes.fromhex(d["sbv2_digest"]) for d in self.digests if d.get("sbv2_digest")]


def collect_images(w: BundleWriter, spec: ReleaseSpec) -> ImagesOut:
    """Bundle the public halves of the trusted keys and the signed images; verify each image."""
    keys = load_keys(spec.trusted_keys, base=spec.root)
    key_files: list[tuple[str, PublicKey]] = []
    for slot, (path, (name, key)) in enumerate(zip(spec.trusted_keys, keys, strict=True)):
        w.read(path, "trusted key")
        rel = w.put(f"keys/slot{slot}-{_safe_name(Path(name).stem.removesuffix('.pub'))}.pub.pem", public_pem(key))
        key_files.append((rel, key))
    digests = key_digests(key_files)
    w.json("results/key-digests.json", {"keys": digests, "revoked_slots": list(spec.revoked_slots)})
    images: list[tuple[str, str, str, bytes]] = []
    for img in spec.images:
        data = w.read(img.path, f"{img.role} image")
        rel = w.put(f"images/{_safe_name(img.path.name)}", data)
        images.append((rel, img.role, img.format, data))
    results = verify_images(images, key_files, revoked=spec.revoked_slots)
    w.json("results/images.json", {"images": results, "revoked_slots": list(spec.revoked_slots)})
    bad = [r["file"] for r in results if not r["ok"]]
    check = CheckLine(
        "Image signatures",
        not bad,
        f"{len(results) - len(bad)} of {len(results)} images verify against the trusted keys"
        + (f"; failing: {', '.join(bad)}" if bad else ""),
        "results/images.json",
    )
    return ImagesOut(digests, images, results, check)


# -- device: update path and eFuse policy -----------------------------------------------------------------


def collect_device(w: BundleWriter, spec: ReleaseSpec, imgs: ImagesOut) -> tuple[dict[str, Any], list[CheckLine]]:
    """Run the update-path scenario and check the eFuse policy; return the scenario record and two checks."""
    app = next((r for r in imgs.results if r["role"] == "app" and r["format"] == "sbv2"), None)
    boot = next((r for r in imgs.results if r["role"] == "bootloader" and r["format"] == "sbv2"), None)
    blobs = {name: data for name, _role, _fmt, data in imgs.images}
    sim_summary: dict[str, Any] = {}
    if app is None or boot is None or not imgs.sbv2_digests:
        update: dict[str, Any] = {
            "ok": False,
            "skipped": "the release needs a Secure Boot v2 app image, a bootloader image and an SBv2-capable key",
        }
    else:
        previous = None
        if spec.previous_image is not None:
            previous = w.read(spec.previous_image, "previous image")
            w.put(f"images/previous/{_safe_name(spec.previous_image.name)}", previous)
        run = run_update_path(
            chip=spec.chip,
            key_digests=imgs.sbv2_digests,
            bootloader=blobs[boot["file"]],
            app=blobs[app["file"]],
            app_secure_version=int(app.get("secure_version") or 0),
            previous=previous,
            revoked_slots=spec.revoked_slots,
        )
        update = run.result
        sim_summary = run.efuse_summary
    w.json("results/update-path.json", update)
    update_check = CheckLine(
        "Anti-rollback and update path", bool(update.get("ok")), _update_detail(update), "results/update-path.json"
    )

    if spec.efuse_policy is not None:
        raw_policy = w.read(spec.efuse_policy, "eFuse policy")
        try:
            policy = Policy.from_yaml(raw_policy.decode("utf-8"), path=str(spec.efuse_policy))
        except UnicodeDecodeError:
            raise EvidenceError("policy file is not UTF-8 text", path=str(spec.efuse_policy)) from None
    else:
        policy = Policy.default()
    units: list[dict[str, Any]] = []
    if spec.efuse_summary is not None:
        raw = w.read(spec.efuse_summary, "eFuse summary")
        try:
            summary_json = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise EvidenceError(f"eFuse summary is not JSON: {e}", path=str(spec.efuse_summary)) from None
        w.put("efuse/unit-summary.json", raw)
        units.append({"unit": "release unit"} | _unit(summary_json, policy, spec, imgs, "efuse/unit-summary.json"))
    if sim_summary:
        w.json("efuse/simulated-unit.json", sim_summary)
        units.append({"unit": "simulated unit"} | _unit(sim_summary, policy, spec, imgs, "efuse/simulated-unit.json"))
    efuse_ok = bool(units) and all(u["ok"] for u in units)
    policy_name = spec.efuse_policy.name if spec.efuse_policy else "medfw default"
    w.json("results/efuse-policy.json", {"policy": policy_name, "units": units, "ok": efuse_ok})
    detail = "; ".join(
        f"{u['unit']}: {'pass' if u['ok'] else 'FAIL'}"
        + (f" (failed rules: {', '.join(u['policy']['failed'])})" if u["policy"]["failed"] else "")
        + f", {u['release_keys_trusted']} release key(s) trusted, {u['foreign_keys_trusted']} foreign"
        for u in units
    )
    efuse_check = CheckLine("eFuse policy", efuse_ok, detail or "no unit to check", "results/efuse-policy.json")
    return update, [update_check, efuse_check]


def _unit(summary: object, policy: Policy, spec: ReleaseSpec, imgs: ImagesOut, source: str) -> dict[str, Any]:
    return check_unit(summary, policy=policy, chip=spec.chip, key_digests=imgs.sbv2_digests, source=source)


def _update_detail(update: Mapping[str, Any]) -> str:
    if "skipped" in update:
        return f"not run: {update['skipped']}"
    steps = {s["step"]: s for s in update.get("steps", [])}
    parts = []
    if "confirm" in steps:
        c = steps["confirm"]
        parts.append(f"counter {c.get('counter')} after confirm (secure_version {c.get('expected')})")
    if "downgrade_refused" in steps:
        d = steps["downgrade_refused"]
        parts.append("downgrade refused" if d["ok"] else f"downgrade NOT refused ({d.get('reason')})")
    if "unconfirmed_boot_reverts" in steps:
        parts.append("unconfirmed boot reverts" if steps["unconfirmed_boot_reverts"]["ok"] else "revert FAILED")
    pc = update.get("power_cut")
    if isinstance(pc, Mapping):
        parts.append(f"{pc.get('bootable')}/{pc.get('tried')} power cuts boot a verified image")
    failed = [
        f"{s['step']} ({s['reason']})" if s["step"] == "model_error" and s.get("reason") else s["step"]
        for s in update.get("steps", [])
        if not s["ok"]
    ]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    return "; ".join(parts)


# -- SBOM -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SbomOut:
    """The release SBOM: original bytes and parsed document."""

    data: bytes
    doc: SbomDocument
    check: CheckLine

    def components(self) -> list[dict[str, Any]]:
        """The component rows of the report."""
        return [
            {
                "name": c.name,
                "version": c.version,
                "supplier": c.supplier,
                "license": ", ".join(c.licenses),
                "purl": c.purl,
                "cpe": c.cpes[0] if c.cpes else None,
                "support_level": c.support_level,
                "end_of_support": c.end_of_support,
            }
            for c in self.doc.components
        ]


def collect_sbom(w: BundleWriter, spec: ReleaseSpec, imgs: ImagesOut) -> SbomOut:
    """Bundle the SBOM's original bytes and its schema and completeness check; verify its image binding."""
    data = w.read(spec.sbom, "SBOM")
    doc = parse_sbom(data, path=str(spec.sbom))
    if doc.format != "json":
        raise EvidenceError("the release SBOM must be CycloneDX JSON", path=str(spec.sbom))
    bound = check_image_binding(doc, spec, imgs.images)
    w.put("sbom/sbom.cdx.json", data)
    report = check_sbom(data, path="sbom/sbom.cdx.json")
    w.json("results/sbom-check.json", report.to_dict())
    check = CheckLine(
        "SBOM schema and completeness",
        report.schema_valid and report.passed,
        f"CycloneDX {report.spec_version}, schema {'valid' if report.schema_valid else 'INVALID'}, "
        f"{len(report.components)} components, completeness score {report.score:.0%}, {bound}"
        + ("" if report.passed else " (required elements missing)"),
        "results/sbom-check.json",
    )
    return SbomOut(data, doc, check)


# -- vulnerabilities ----------------------------------------------------------------------------------------


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


def collect_trace(w: BundleWriter) -> CheckLine:
    """Write the traceability matrix, noting whether each row's evidence files are in the bundle."""
    rows = []
    missing: list[str] = []
    for row in TRACE_MATRIX:
        absent = [e for e in row.evidence if not (w.root / e).is_file()]
        missing += absent
        rows.append(
            {
                "property": row.property,
                "mechanism": row.mechanism,
                "fda": list(row.fda),
                "iec": list(row.iec),
                "evidence": list(row.evidence),
                "tests": list(row.tests),
                "evidence_present": not absent,
            }
        )
    w.json("trace/matrix.json", {"rows": rows})
    return CheckLine(
        "Traceability",
        not missing,
        f"{len(TRACE_MATRIX)} security properties traced to evidence and tests"
        + (f"; missing evidence: {', '.join(missing)}" if missing else ""),
        "trace/matrix.json",
    )
