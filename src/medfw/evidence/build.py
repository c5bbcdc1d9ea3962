"""``medfw evidence build``: collect one release's evidence into a signed bundle directory.

Bundle layout (every path below is listed with its SHA-256 and size in ``manifest.json``)::

    release.json                  release identity and the SHA-256 of every input read
    images/<file>                 the signed images
    keys/slot<N>-<name>.pub.pem   trusted public keys (public halves only, never private keys)
    results/images.json           signature verification of each image against the trusted keys
    results/key-digests.json      eFuse (Secure Boot v2) and MCUboot KEYHASH digests of the keys
    results/efuse-policy.json     eFuse policy verdicts: the release's unit summary (if given), the simulated unit
    efuse/*.json                  the eFuse summaries those verdicts are about
    results/update-path.json      anti-rollback and update-path scenario on the device model
    sbom/sbom.cdx.json            the CycloneDX SBOM as given (original bytes)
    results/sbom-check.json       schema validity and NTIA / CISA / FDA completeness
    vuln/scan.json                every finding with its current decision
    vuln/vex.cdx.json             CycloneDX VEX bound to the SBOM serial
    vuln/vex.openvex.json         OpenVEX 0.2
    vuln/history.json             findings per registered release (postmarket history)
    audit/export.json             audit export: this release's events, a signed checkpoint, inclusion proofs
    audit/checkpoint.pub.pem      the audit log's checkpoint public key
    results/audit.json            the export's verification at build time
    trace/matrix.json             property -> mechanism -> clause -> evidence -> test
    results/summary.json          every check with its verdict
    report.html                   the reviewer's report

plus ``manifest.json``, ``manifest.sig`` and ``manifest.pub.pem``. The bundle is assembled in a temporary
directory next to the destination and renamed into place, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from medfw._io import atomic_write, read_bytes
from medfw.audit.bundle import export_bundle, verify_bundle
from medfw.audit.keys import VerificationKey
from medfw.audit.query import list_entries
from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.audit.store import open_store
from medfw.audit.verify import verify_log
from medfw.crypto.keys import PublicKey
from medfw.crypto.signer import Signer
from medfw.device.policy import Policy
from medfw.errors import EvidenceError, InputError
from medfw.evidence import binding
from medfw.evidence.checks_images import key_digests, load_keys, verify_images
from medfw.evidence.efuse_check import check_unit
from medfw.evidence.manifest import file_entry, make_manifest, sign_manifest
from medfw.evidence.report import CheckLine, ReportData, render_report
from medfw.evidence.scenario import run_update_path
from medfw.evidence.spec import ReleaseSpec
from medfw.evidence.trace import TRACE_MATRIX
from medfw.sbom.check import check_sbom
from medfw.sbom.document import parse_sbom
from medfw.vuln import export_vex, open_index, scan
from medfw.vuln.index import VulnIndex

__all__ = ["MANIFEST_FILES", "BuildResult", "build_bundle", "dump_json"]

#: Files of the bundle that the manifest does not list (the manifest, its signature and its key).
MANIFEST_FILES = ("manifest.json", "manifest.sig", "manifest.pub.pem")
_MAX_INPUT = 512 * 1024 * 1024
_MAX_JSON = 64 * 1024 * 1024

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """The outcome of :func:`build_bundle`: where the bundle is, its checks and the SHA-256 of manifest.json."""

    path: Path
    checks: tuple[CheckLine, ...]
    manifest_sha256: str
    files: int

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "bundle": str(self.path),
            "ok": self.ok,
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "evidence": c.evidence} for c in self.checks],
        }


def dump_json(data: Any) -> bytes:
    """The bundle's JSON file form: sorted keys, two-space indent, trailing newline (deterministic)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(read_bytes(path, max_length=_MAX_JSON, what=what))
    except (UnicodeDecodeError, ValueError) as e:
        raise EvidenceError(f"{what} is not JSON: {e}", path=str(path)) from None


def _pem(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in name) or "file"


class _Writer:
    """Writes files into the staging directory and remembers the inputs read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inputs: list[dict[str, Any]] = []

    def put(self, rel: str, data: bytes) -> str:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise EvidenceError("two inputs map to the same bundle file", path=rel)
        target.write_bytes(data)
        return rel

    def json(self, rel: str, data: Any) -> str:
        return self.put(rel, dump_json(data))

    def read(self, path: Path, what: str) -> bytes:
        data = read_bytes(path, max_length=_MAX_INPUT, what=what)
        self.inputs.append({"input": what, "path": str(path), "sha256": hashlib.sha256(data).hexdigest()})
        return data


def _release_seqs(log: str, identifiers: set[str], spec: ReleaseSpec) -> list[int]:
    """The seqs of the log's entries about this release: any object value naming one of ``identifiers``, or a
    publish/sign record whose data names the release version and model."""
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


def _history(index: VulnIndex, current_serial: str, current_label: str, current: Sequence[str]) -> list[Any]:
    """Findings per severity for each registered release (by id), then this release if it is not registered."""
    out: list[Any] = []
    seen = False
    for rel in index.releases():
        last = index.last_scan(int(rel["id"])) or []
        counts: dict[str, int] = {}
        for f in last:
            sev = str(f.get("severity", "unknown"))
            counts[sev] = counts.get(sev, 0) + 1
        label = str(rel.get("name") or rel["id"])
        with contextlib.suppress(ValueError, UnicodeDecodeError, AttributeError, TypeError):
            doc = json.loads(bytes(rel["sbom"]))
            label = str(doc["metadata"]["component"].get("version") or label)
        if rel["serial"] == current_serial:
            seen = True
        out.append({"release": label, "serial": rel["serial"], "counts": counts, "registered": True})
    if not seen:
        counts = {}
        for sev in current:
            counts[sev] = counts.get(sev, 0) + 1
        out.append({"release": current_label, "serial": current_serial, "counts": counts, "registered": False})
    return out


def _finding_rows(scan_doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for f in scan_doc.get("findings", []):
        d = f.get("decision") or {}
        rows.append(
            {
                "id": f.get("vuln_id"),
                "component": f.get("component"),
                "severity": f.get("severity"),
                "score": f.get("score"),
                "kev": f.get("kev"),
                "state": d.get("state"),
                "justification": d.get("justification"),
                "response": ", ".join(d.get("responses") or []),
                "detail": d.get("detail", ""),
            }
        )
    return rows


def build_bundle(
    spec: ReleaseSpec,
    out: str | Path,
    *,
    signer: Signer,
    force: bool = False,
    sink: AuditSink | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
) -> BuildResult:
    """Build the evidence bundle of ``spec`` at ``out`` (see the module docstring).

    The bundle is written even when checks fail (it is the evidence of the failure); ``BuildResult.ok`` says
    whether every check passed. An ``evidence.build`` event naming the manifest digest is recorded in ``sink``.

    Raises:
        InputError: ``out`` exists and ``force`` is false.
        EvidenceError / other :class:`medfw.errors.MedfwError`: an input is missing or malformed (nothing
            is left at ``out``).
    """
    dest = Path(out)
    if dest.exists() and not force:
        raise InputError("output bundle exists (use --force to replace it)", path=str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        result = _build_into(spec, staging, signer=signer, progress=progress or (lambda _s: None), now=now)
        _replace_dir(staging, dest, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    checks, manifest_sha256, files = result
    built = BuildResult(dest, checks, manifest_sha256, files)
    (sink or NullSink()).record(
        AuditEvent(
            type="evidence.build",
            outcome="success" if built.ok else "failure",
            reason=None if built.ok else "checks_failed",
            actor=signer.key_id if not signer.key_id.startswith("pkcs11:") else signer.key_id.split(";")[0],
            objects={"manifest_sha256": manifest_sha256},
            data={
                "release": spec.describe(),
                "bundle": str(dest),
                "files": files,
                "failed_checks": [c.name for c in checks if not c.ok],
            },
        )
    )
    return built


def _replace_dir(staging: Path, dest: Path, *, force: bool) -> None:
    if dest.exists():
        if not force:
            raise InputError("output bundle exists (use --force to replace it)", path=str(dest))
        if not dest.is_dir():
            raise InputError("output exists and is not a bundle directory", path=str(dest))
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.replace(dest, old / "bundle")
        os.replace(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, dest)
    with contextlib.suppress(OSError):
        fd = os.open(dest.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _build_into(
    spec: ReleaseSpec, root: Path, *, signer: Signer, progress: Progress, now: dt.datetime | None
) -> tuple[tuple[CheckLine, ...], str, int]:
    created = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    w = _Writer(root)
    checks: list[CheckLine] = []

    # -- images and keys ------------------------------------------------------------------------------
    progress("images and keys")
    keys = load_keys(spec.trusted_keys, base=spec.root)
    for path in spec.trusted_keys:
        w.inputs.append(
            {"input": "trusted key", "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
        )
    key_files: list[tuple[str, PublicKey]] = []
    for slot, (name, key) in enumerate(keys):
        rel = w.put(f"keys/slot{slot}-{_safe_name(Path(name).stem.removesuffix('.pub'))}.pub.pem", _pem(key))
        key_files.append((rel, key))
    digests = key_digests(key_files)
    w.json("results/key-digests.json", {"keys": digests, "revoked_slots": list(spec.revoked_slots)})
    images: list[tuple[str, str, str, bytes]] = []
    for img in spec.images:
        data = w.read(img.path, f"{img.role} image")
        rel = w.put(f"images/{_safe_name(img.path.name)}", data)
        images.append((rel, img.role, img.format, data))
    image_results = verify_images(images, key_files, revoked=spec.revoked_slots)
    w.json("results/images.json", {"images": image_results, "revoked_slots": list(spec.revoked_slots)})
    bad = [r["file"] for r in image_results if not r["ok"]]
    checks.append(
        CheckLine(
            "Image signatures",
            not bad,
            f"{len(image_results) - len(bad)} of {len(image_results)} images verify against the trusted keys"
            + (f"; failing: {', '.join(bad)}" if bad else ""),
            "results/images.json",
        )
    )

    # -- update path on the device model ----------------------------------------------------------------
    progress("update path on the device model")
    sbv2_digests = [bytes.fromhex(d["sbv2_digest"]) for d in digests if d.get("sbv2_digest")]
    app = next((r for r in image_results if r["role"] == "app" and r["format"] == "sbv2"), None)
    boot = next((r for r in image_results if r["role"] == "bootloader" and r["format"] == "sbv2"), None)
    blobs = {name: data for name, _role, _fmt, data in images}
    sim_summary: dict[str, Any] = {}
    if app is None or boot is None or not sbv2_digests:
        update: dict[str, Any] = {
            "ok": False,
            "skipped": "the release needs a Secure Boot v2 app image, a bootloader image and an SBv2-capable key",
        }
    else:
        previous = w.read(spec.previous_image, "previous image") if spec.previous_image else None
        if previous is not None:
            w.put(f"images/previous/{_safe_name(spec.previous_image.name if spec.previous_image else '')}", previous)
        run = run_update_path(
            chip=spec.chip,
            key_digests=sbv2_digests,
            bootloader=blobs[boot["file"]],
            app=blobs[app["file"]],
            app_secure_version=int(app.get("secure_version") or 0),
            previous=previous,
            revoked_slots=spec.revoked_slots,
        )
        update = run.result
        sim_summary = run.efuse_summary
    w.json("results/update-path.json", update)
    checks.append(
        CheckLine(
            "Anti-rollback and update path", bool(update.get("ok")), _update_detail(update), "results/update-path.json"
        )
    )

    # -- eFuse policy ------------------------------------------------------------------------------------
    progress("eFuse policy")
    policy = Policy.load(spec.efuse_policy)
    if spec.efuse_policy is not None:
        w.inputs.append({"input": "eFuse policy", "path": str(spec.efuse_policy)})
    units: list[dict[str, Any]] = []
    if spec.efuse_summary is not None:
        raw = w.read(spec.efuse_summary, "eFuse summary")
        try:
            summary_json = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise EvidenceError(f"eFuse summary is not JSON: {e}", path=str(spec.efuse_summary)) from None
        w.put("efuse/unit-summary.json", raw)
        units.append(
            {"unit": "release unit"}
            | check_unit(
                summary_json, policy=policy, chip=spec.chip, key_digests=sbv2_digests, source="efuse/unit-summary.json"
            )
        )
    if sim_summary:
        w.json("efuse/simulated-unit.json", sim_summary)
        units.append(
            {"unit": "simulated unit"}
            | check_unit(
                sim_summary, policy=policy, chip=spec.chip, key_digests=sbv2_digests, source="efuse/simulated-unit.json"
            )
        )
    efuse_ok = bool(units) and all(u["ok"] for u in units)
    w.json(
        "results/efuse-policy.json",
        {
            "policy": str(spec.efuse_policy.name) if spec.efuse_policy else "medfw default",
            "units": units,
            "ok": efuse_ok,
        },
    )
    checks.append(
        CheckLine(
            "eFuse policy",
            efuse_ok,
            "; ".join(
                f"{u['unit']}: {'pass' if u['ok'] else 'FAIL'}"
                + (f" (failed rules: {', '.join(u['policy']['failed'])})" if u["policy"]["failed"] else "")
                + f", {u['release_keys_trusted']} release key(s) trusted, {u['foreign_keys_trusted']} foreign"
                for u in units
            )
            or "no unit to check",
            "results/efuse-policy.json",
        )
    )

    # -- SBOM ------------------------------------------------------------------------------------------
    progress("SBOM")
    sbom_bytes = w.read(spec.sbom, "SBOM")
    sbom_doc = parse_sbom(sbom_bytes, path=str(spec.sbom))
    if sbom_doc.format != "json":
        raise EvidenceError("the release SBOM must be CycloneDX JSON", path=str(spec.sbom))
    w.put("sbom/sbom.cdx.json", sbom_bytes)
    report = check_sbom(sbom_bytes, path="sbom/sbom.cdx.json")
    w.json("results/sbom-check.json", report.to_dict())
    checks.append(
        CheckLine(
            "SBOM schema and completeness",
            report.schema_valid and report.passed,
            f"CycloneDX {report.spec_version}, schema {'valid' if report.schema_valid else 'INVALID'}, "
            f"{len(report.components)} components, completeness score {report.score:.0%}"
            + ("" if report.passed else " (required elements missing)"),
            "results/sbom-check.json",
        )
    )

    # -- vulnerabilities ---------------------------------------------------------------------------------
    progress("vulnerability assessment")
    index = open_index(spec.vuln_db)
    try:
        scanned = scan(index, sbom_bytes)
        scan_doc = scanned.as_dict()
        scan_doc["index_records"] = index.record_count()
        vex_cdx = export_vex(index, sbom_bytes, "cyclonedx")
        vex_open = export_vex(index, sbom_bytes, "openvex")
        label = f"{sbom_doc.component.version if sbom_doc.component else spec.version}"
        history = _history(index, scanned.sbom.serial, label, [f.severity for f in scanned.findings])
    finally:
        index.close()
    w.json("vuln/scan.json", scan_doc)
    w.json("vuln/vex.cdx.json", vex_cdx)
    w.json("vuln/vex.openvex.json", vex_open)
    w.json("vuln/history.json", {"releases": history})
    undecided = [f for f in scanned.findings if f.decision is None]
    sbom_json = json.loads(sbom_bytes)
    binding_problems = (
        binding.check_scan(scan_doc, sbom_json)
        + binding.check_vex_cyclonedx(vex_cdx, sbom_json)
        + binding.check_openvex(vex_open, sbom_json)
    )
    checks.append(
        CheckLine(
            "Vulnerability decisions",
            not undecided,
            f"{len(scanned.findings)} findings, {len(scanned.findings) - len(undecided)} with a recorded decision"
            + (f"; undecided: {', '.join(f.key for f in undecided[:5])}" if undecided else ""),
            "vuln/scan.json",
        )
    )
    checks.append(
        CheckLine(
            "VEX bound to the SBOM",
            not binding_problems,
            "; ".join(binding_problems[:3]) or f"CycloneDX and OpenVEX statements name SBOM {scanned.sbom.serial}",
            "vuln/vex.cdx.json",
        )
    )

    # -- audit log -----------------------------------------------------------------------------------------
    progress("audit export")
    identifiers = {r["sha256"] for r in image_results} | {hashlib.sha256(sbom_bytes).hexdigest()}
    if sbom_doc.serial_number:
        identifiers.add(sbom_doc.serial_number)
    seqs = _release_seqs(spec.audit_log, identifiers, spec)
    vkey: VerificationKey | None = None
    if spec.audit_key is not None:
        vkey = VerificationKey.from_bytes(
            read_bytes(spec.audit_key, max_length=1 << 16, what="audit verification key"), path=str(spec.audit_key)
        )
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
    audit_report = verify_bundle(export, key=vkey, public_key_pem=None if vkey else pub_pem, path="audit/export.json")
    audit_result: dict[str, Any] = {
        "export": audit_report.to_dict(),
        "selection": "entries whose objects name a release image SHA-256, the SBOM serial or SHA-256, "
        "or release.sign / release.publish records of this version",
        "seqs": seqs,
        "checkpoint_key": "pinned by the audit verification key" if vkey else "read from the audit log",
    }
    if vkey is not None:
        audit_result["log"] = verify_log(spec.audit_log, vkey).to_dict()
    audit_ok = audit_report.ok and bool(seqs) and bool(audit_result.get("log", {"ok": True})["ok"])
    w.json("results/audit.json", audit_result)
    checks.append(
        CheckLine(
            "Audit trail",
            audit_ok,
            f"{len(seqs)} release events exported with inclusion proofs against a signed checkpoint of "
            f"{audit_report.checkpoint_size} entries"
            + (", HMACs and the whole log verified" if vkey is not None else "")
            + ("" if audit_report.ok else f"; {'; '.join(audit_report.errors[:2])}")
            + ("" if seqs else "; no event of this release is in the log"),
            "audit/export.json",
        )
    )

    # -- traceability, summary, report -------------------------------------------------------------------
    progress("traceability matrix and report")
    trace_doc = []
    for row in TRACE_MATRIX:
        present = {e: (root / e).is_file() for e in row.evidence}
        trace_doc.append(
            {
                "property": row.property,
                "mechanism": row.mechanism,
                "fda": list(row.fda),
                "iec": list(row.iec),
                "evidence": list(row.evidence),
                "tests": list(row.tests),
                "evidence_present": all(present.values()),
            }
        )
    w.json("trace/matrix.json", {"rows": trace_doc})
    missing = [e for row in TRACE_MATRIX for e in row.evidence if not (root / e).is_file()]
    checks.append(
        CheckLine(
            "Traceability",
            not missing,
            f"{len(TRACE_MATRIX)} security properties traced to evidence and tests"
            + (f"; missing evidence: {', '.join(missing)}" if missing else ""),
            "trace/matrix.json",
        )
    )
    w.json(
        "release.json",
        {
            "release": spec.describe(),
            "created": created,
            "inputs": w.inputs,
            "evidence_key": signer.key_id.split(";")[0],
        },
    )
    w.json(
        "results/summary.json",
        {"ok": all(c.ok for c in checks), "checks": [c.__dict__ for c in checks]},
    )
    events = []
    for item in export["entries"]:
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
    components = [
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
        for c in sbom_doc.components
    ]
    pre_files = sorted((file_entry(root, p) for p in root.rglob("*") if p.is_file()), key=lambda f: f.path)
    html = render_report(
        ReportData(
            release=spec.describe(),
            created=created,
            checks=tuple(checks),
            components=components,
            findings=_finding_rows(scan_doc),
            trace=TRACE_MATRIX,
            audit_events=events,
            history=[(str(h["release"]), dict(h["counts"])) for h in history],
            files=[f.as_dict() for f in pre_files],
        )
    )
    w.put("report.html", html.encode("utf-8"))

    # -- manifest -------------------------------------------------------------------------------------------
    progress("signing the manifest")
    entries = [file_entry(root, p) for p in root.rglob("*") if p.is_file()]
    manifest = make_manifest(entries, release=spec.describe(), created=created, signer=signer)
    signature = sign_manifest(manifest, signer)
    manifest_bytes = dump_json(manifest)
    atomic_write(root / "manifest.json", manifest_bytes)
    atomic_write(root / "manifest.sig", signature)
    atomic_write(root / "manifest.pub.pem", _pem(signer.public_key()))
    return tuple(checks), hashlib.sha256(manifest_bytes).hexdigest(), len(entries)


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
    failed = [s["step"] for s in update.get("steps", []) if not s["ok"]]
    if failed:
        parts.append(f"failed: {', '.join(failed)}")
    return "; ".join(parts)
