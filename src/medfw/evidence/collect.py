"""The evidence sections of a bundle, one function each: images and keys, device (update path and eFuse
policy), SBOM, vulnerabilities, audit trail, traceability.

Each function reads its inputs through a :class:`BundleWriter` (which records the SHA-256 of every input),
writes its files into the staging directory, and returns what later sections and the report need together with
its :class:`~medfw.evidence.report.CheckLine` verdicts. :mod:`medfw.evidence.build` runs them in order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfw.crypto.keys import PublicKey
from medfw.device.policy import Policy
from medfw.errors import EvidenceError
from medfw.evidence.bundle_writer import BundleWriter, dump_json, public_pem, safe_name
from medfw.evidence.checks_build import check_image_binding
from medfw.evidence.checks_images import key_digests, load_keys, verify_images
from medfw.evidence.collect_records import AuditOut, VulnOut, collect_audit, collect_vuln
from medfw.evidence.efuse_check import check_unit
from medfw.evidence.report import CheckLine
from medfw.evidence.scenario import run_update_path
from medfw.evidence.spec import ImageRole, ReleaseSpec, SignedFormat
from medfw.evidence.trace import TRACE_MATRIX
from medfw.sbom.check import check_sbom
from medfw.sbom.document import SbomDocument, parse_sbom

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
    "public_pem",
]


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
        rel = w.put(f"keys/slot{slot}-{safe_name(Path(name).stem.removesuffix('.pub'))}.pub.pem", public_pem(key))
        key_files.append((rel, key))
    digests = key_digests(key_files)
    w.json("results/key-digests.json", {"keys": digests, "revoked_slots": list(spec.revoked_slots)})
    images: list[tuple[str, str, str, bytes]] = []
    for img in spec.images:
        data = w.read(img.path, f"{img.role} image")
        rel = w.put(f"images/{safe_name(img.path.name)}", data)
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
    app = next((r for r in imgs.results if r["role"] == ImageRole.APP and r["format"] == SignedFormat.SBV2), None)
    boot = next(
        (r for r in imgs.results if r["role"] == ImageRole.BOOTLOADER and r["format"] == SignedFormat.SBV2), None
    )
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
            w.put(f"images/previous/{safe_name(spec.previous_image.name)}", previous)
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
