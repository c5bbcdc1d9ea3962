"""``medfw evidence build``: collect one release's evidence into a signed bundle directory.

Bundle layout (every path below is listed with its SHA-256 and size in ``manifest.json``)::

    release.json                  release identity and the SHA-256 of every input read
    images/<file>                 the signed images
    keys/slot<N>-<name>.pub.pem   trusted public keys (public halves only, never private keys)
    results/images.json           signature verification of each image against the trusted keys
    results/key-digests.json      eFuse (Secure Boot v2) and MCUboot KEYHASH digests of the keys
    build/sdkconfig[.json]        the build configuration (when release.yml names one)
    results/build-config.json     its check against the build-config policy (medfw build check)
    results/efuse-policy.json     eFuse policy verdicts: the release's unit summary (if given), the simulated unit
    efuse/*.json                  the eFuse summaries those verdicts are about
    results/update-path.json      anti-rollback and update-path scenario on the device model
    sbom/sbom.cdx.json            the CycloneDX SBOM as given (original bytes)
    results/sbom-check.json       schema validity and NTIA / CISA / FDA completeness
    vuln/scan.json                every finding with its current decision
    vuln/vex.cdx.json             CycloneDX VEX bound to the SBOM serial
    vuln/vex.openvex.json         OpenVEX 0.2
    vuln/history.json             findings per registered release (postmarket history)
    vuln/fixed.json               findings of the previous registered release this release fixes
    audit/export.json             audit export: this release's events, a signed checkpoint, inclusion proofs
    audit/checkpoint.pub.pem      the audit log's checkpoint public key
    results/audit.json            the export's verification at build time
    trace/matrix.json             property -> mechanism -> clause -> evidence -> test
    results/summary.json          every check with its verdict
    report.html                   the reviewer's report (verdict banner first)
    report.pdf                    the same report printed by headless Chromium

plus ``manifest.json``, ``manifest.sig`` and ``manifest.pub.pem``. The bundle is assembled in a temporary
directory next to the destination and renamed into place, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medfw._io import atomic_write
from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.crypto.signer import Signer
from medfw.errors import InputError
from medfw.evidence.checks_build import collect_build_config
from medfw.evidence.collect import (
    BundleWriter,
    collect_audit,
    collect_device,
    collect_images,
    collect_sbom,
    collect_trace,
    collect_vuln,
    dump_json,
    public_pem,
)
from medfw.evidence.device_trails import collect_device_trails
from medfw.evidence.manifest import file_entry, make_manifest, public_key_fingerprint, sign_manifest, signer_label
from medfw.evidence.pdf import print_pdf
from medfw.evidence.report import CheckLine, ReportData, render_report
from medfw.evidence.spec import ReleaseSpec
from medfw.evidence.trace import TRACE_MATRIX

__all__ = ["BUILD_STEPS", "MANIFEST_FILES", "BuildResult", "build_bundle", "dump_json"]

#: Files of the bundle that the manifest does not list (the manifest, its signature and its key).
MANIFEST_FILES = ("manifest.json", "manifest.sig", "manifest.pub.pem")

#: The steps reported to the ``progress`` callback, in order.
BUILD_STEPS = (
    "images and keys",
    "update path and eFuse policy",
    "SBOM",
    "vulnerability assessment",
    "audit export",
    "traceability matrix and report",
    "signing the manifest",
)

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
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }


def build_bundle(
    spec: ReleaseSpec,
    out: str | Path,
    *,
    signer: Signer,
    force: bool = False,
    sink: AuditSink | None = None,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    pdf: bool = True,
) -> BuildResult:
    """Build the evidence bundle of ``spec`` at ``out`` (see the module docstring).

    The bundle is written even when checks fail (it is the evidence of the failure); ``BuildResult.ok`` says
    whether every check passed. An ``evidence.build`` event naming the SHA-256 of ``manifest.json`` is recorded
    in ``sink``. ``progress`` is called with each of :data:`BUILD_STEPS` as it starts. With ``pdf`` (the
    default) headless Chromium prints ``report.pdf`` next to ``report.html`` (see :mod:`medfw.evidence.pdf`).

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
        checks, manifest_sha256, files = _build_into(
            spec, staging, signer=signer, progress=progress or (lambda _s: None), now=now, pdf=pdf
        )
        _replace_dir(staging, dest, force=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    built = BuildResult(dest, checks, manifest_sha256, files)
    (sink or NullSink()).record(
        AuditEvent(
            type="evidence.build",
            outcome="success" if built.ok else "failure",
            reason=None if built.ok else "checks_failed",
            actor=signer_label(signer),
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
    spec: ReleaseSpec, root: Path, *, signer: Signer, progress: Progress, now: dt.datetime | None, pdf: bool
) -> tuple[tuple[CheckLine, ...], str, int]:
    created = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    w = BundleWriter(root, base=spec.root)
    steps = iter(BUILD_STEPS)

    progress(next(steps))
    images = collect_images(w, spec)
    progress(next(steps))
    update, device_checks = collect_device(w, spec, images)
    build_check = collect_build_config(w, spec)
    progress(next(steps))
    sbom = collect_sbom(w, spec, images)
    progress(next(steps))
    vuln = collect_vuln(w, spec, sbom)
    progress(next(steps))
    identifiers = {r["sha256"] for r in images.results} | {hashlib.sha256(sbom.data).hexdigest()}
    if sbom.doc.serial_number:
        identifiers.add(sbom.doc.serial_number)
    audit = collect_audit(w, spec, identifiers)
    trails_check = collect_device_trails(w, spec)
    progress(next(steps))
    trace_check = collect_trace(w)
    checks = (images.check, build_check, *device_checks, sbom.check, *vuln.checks, audit.check, trace_check)
    if trails_check is not None:
        checks = (*checks, trails_check)

    w.json(
        "release.json",
        {"release": spec.describe(), "created": created, "inputs": w.inputs, "evidence_key": signer_label(signer)},
    )
    w.json("results/summary.json", {"ok": all(c.ok for c in checks), "checks": [dataclasses.asdict(c) for c in checks]})
    listed = sorted((file_entry(root, p) for p in root.rglob("*") if p.is_file()), key=lambda f: f.path)
    html = render_report(
        ReportData(
            release=spec.describe(),
            created=created,
            checks=checks,
            components=sbom.components(),
            findings=vuln.finding_rows(),
            trace=TRACE_MATRIX,
            audit_events=audit.timeline(),
            history=[(str(h["release"]), dict(h["counts"])) for h in vuln.history],
            files=[f.as_dict() for f in listed],
            update_steps=list(update.get("steps", [])),
            signer=public_key_fingerprint(signer.public_key()),
            fixed=vuln.fixed,
        )
    )
    w.put("report.html", html.encode("utf-8"))
    if pdf:
        print_pdf(root / "report.html", root / "report.pdf")

    progress(next(steps))
    entries = [file_entry(root, p) for p in root.rglob("*") if p.is_file()]
    manifest = make_manifest(entries, release=spec.describe(), created=created, signer=signer)
    signature = sign_manifest(manifest, signer)
    manifest_bytes = dump_json(manifest)
    atomic_write(root / "manifest.json", manifest_bytes)
    atomic_write(root / "manifest.sig", signature)
    atomic_write(root / "manifest.pub.pem", public_pem(signer.public_key()))
    return checks, hashlib.sha256(manifest_bytes).hexdigest(), len(entries)
