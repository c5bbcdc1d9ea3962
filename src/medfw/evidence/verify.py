"""``medfw evidence verify``: re-check an evidence bundle offline.

Checks, each reported with the file it is about:

1. ``manifest.json`` parses, its signature (``manifest.sig``) verifies with the pinned key (``--key``) or, if
   none is given, with the bundled ``manifest.pub.pem`` (reported as *not pinned*: that only proves the bundle
   is internally consistent, not who made it);
2. every listed file exists with the listed size and SHA-256, no file is missing, and no unlisted file is
   present; listed paths are plain relative paths inside the bundle;
3. each signed image verifies against the bundled trusted keys as ``results/images.json`` says, and the
   bundled key digests are those of the bundled keys;
4. the audit export's checkpoint signature (against ``audit/checkpoint.pub.pem``, or the checkpoint key of the
   verification key given with ``--audit-key``) and every inclusion proof, plus HMAC tags with ``--audit-key``;
5. the VEX binding: CycloneDX VEX and OpenVEX statements (and the scan) name the bundle's SBOM serial,
   version and existing bom-refs;
6. the SBOM and the CycloneDX VEX validate against the CycloneDX schema.

Verification failures are collected, never raised: the result lists every problem.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.audit.bundle import verify_bundle
from medfw.audit.keys import VerificationKey
from medfw.crypto.keys import PublicKey, load_public_key
from medfw.errors import EvidenceError, MedfwError
from medfw.evidence import binding
from medfw.evidence.build import MANIFEST_FILES
from medfw.evidence.checks_build import BUILD_CONFIG_RESULT, reverify_build_config
from medfw.evidence.checks_images import key_digests, verify_images
from medfw.evidence.manifest import MANIFEST_FORMAT, public_key_fingerprint, verify_manifest_signature
from medfw.sbom.check import validate_schema
from medfw.vuln.vex import validate_cyclonedx

__all__ = ["Problem", "VerifyResult", "verify_evidence"]

_MAX_FILE = 512 * 1024 * 1024
_MAX_MANIFEST = 16 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a bundle: the file it is in and what is wrong."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclass
class VerifyResult:
    """The outcome of :func:`verify_evidence`."""

    bundle: str
    key_pinned: bool = False
    audit_key_used: bool = False
    release: dict[str, Any] = field(default_factory=dict)
    files_checked: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorded_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "bundle": self.bundle,
            "ok": self.ok,
            "key_pinned": self.key_pinned,
            "audit_key_used": self.audit_key_used,
            "release": self.release,
            "files_checked": self.files_checked,
            "checks": self.checks,
            "problems": [{"path": p.file, "problem": p.problem} for p in self.problems],
            "notes": self.notes,
            "recorded_failures": self.recorded_failures,
        }


class _Check:
    """Collects the problems of one named check."""

    def __init__(self, result: VerifyResult, name: str) -> None:
        self.result = result
        self.name = name
        self.before = len(result.problems)

    def fail(self, file: str, problem: str) -> None:
        self.result.problems.append(Problem(file, problem))

    def done(self) -> None:
        self.result.checks[self.name] = len(self.result.problems) == self.before


def _safe_rel(path: object) -> str | None:
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        return None
    if path.startswith("/") or any(part in {"", ".", ".."} for part in path.split("/")):
        return None
    return path


def _hash_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _json(root: Path, rel: str, check: _Check) -> Any:
    try:
        return json.loads(read_bytes(root / rel, max_length=_MAX_FILE, what=rel))
    except MedfwError as e:
        check.fail(rel, e.message)
    except (UnicodeDecodeError, ValueError) as e:
        check.fail(rel, f"not JSON: {e}")
    return None


def verify_evidence(
    bundle: str | Path, *, key: PublicKey | None = None, audit_key: VerificationKey | None = None
) -> VerifyResult:
    """Verify the bundle directory ``bundle`` (see the module docstring).

    Raises:
        EvidenceError: ``bundle`` is not a directory or holds none of a bundle's files (not a bundle at all).
    """
    root = Path(bundle)
    if not root.is_dir():
        raise EvidenceError("not an evidence bundle directory", path=str(root))
    if not any((root / name).exists() for name in ("manifest.json", "manifest.pub.pem", "results")):
        raise EvidenceError("not an evidence bundle: no manifest.json, manifest.pub.pem or results/", path=str(root))
    res = VerifyResult(bundle=str(root), key_pinned=key is not None, audit_key_used=audit_key is not None)
    listed = _check_manifest(root, res, key)
    if listed is None:
        return res
    _guarded(res, "image signatures", "results/images.json", lambda: _check_images(root, res, listed))
    _guarded(res, "audit export", "audit/export.json", lambda: _check_audit(root, res, listed, audit_key))
    _guarded(res, "VEX binding", "vuln/vex.cdx.json", lambda: _check_vuln(root, res, listed))
    _guarded(res, "build configuration", BUILD_CONFIG_RESULT, lambda: _check_build(root, res, listed))
    _note_recorded_failures(root, res, listed)
    return res


def _check_build(root: Path, res: VerifyResult, listed: set[str]) -> None:
    check = _Check(res, "build configuration")
    for file, problem in reverify_build_config(root, listed):
        check.fail(file, problem)
    check.done()


def _note_recorded_failures(root: Path, res: VerifyResult, listed: set[str]) -> None:
    """Say which release checks the bundle itself records as failed (the bundle may be intact and still say
    the release did not pass)."""
    if "results/summary.json" not in listed:
        return
    try:
        summary = json.loads((root / "results/summary.json").read_bytes())
        failed = [str(c["name"]) for c in summary["checks"] if not c["ok"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if failed:
        res.recorded_failures = failed
        res.notes.append(f"the bundle records failed release checks: {', '.join(failed)} (see results/summary.json)")


def _guarded(res: VerifyResult, name: str, file: str, run: Callable[[], None]) -> None:
    """Run one check; a document whose structure is not what medfw writes is a failure of that check."""
    try:
        run()
    except (KeyError, TypeError, AttributeError, ValueError, IndexError, OSError) as e:
        res.problems.append(Problem(file, f"malformed document ({type(e).__name__}: {e})"))
        res.checks[name] = False


def _check_manifest(root: Path, res: VerifyResult, key: PublicKey | None) -> set[str] | None:
    check = _Check(res, "manifest signature")
    try:
        raw = read_bytes(root / "manifest.json", max_length=_MAX_MANIFEST, what="manifest")
        manifest = json.loads(raw)
    except MedfwError as e:
        check.fail("manifest.json", e.message)
        check.done()
        return None
    except (UnicodeDecodeError, ValueError) as e:
        check.fail("manifest.json", f"not JSON: {e}")
        check.done()
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        check.fail("manifest.json", f"not a {MANIFEST_FORMAT} document")
        check.done()
        return None
    release = manifest.get("release")
    res.release = dict(release) if isinstance(release, Mapping) else {}
    bundled: PublicKey | None = None
    try:
        bundled = load_public_key(root / "manifest.pub.pem")
    except MedfwError as e:
        check.fail("manifest.pub.pem", e.message)
    verify_key = key if key is not None else bundled
    if key is None:
        res.notes.append(
            "manifest key not pinned: verified with the bundled manifest.pub.pem, which proves only that the "
            "bundle is internally consistent; pass --key with the release's evidence public key"
        )
    elif bundled is not None and not hmac.compare_digest(public_key_fingerprint(bundled), public_key_fingerprint(key)):
        check.fail("manifest.pub.pem", "is not the pinned evidence key")
    if verify_key is not None:
        try:
            signature = read_bytes(root / "manifest.sig", max_length=1 << 16, what="manifest signature")
            verify_manifest_signature(manifest, signature, verify_key)
        except MedfwError as e:
            check.fail(e.path or "manifest.sig", e.message)
    check.done()

    files = _Check(res, "file hashes")
    listed: dict[str, Mapping[str, Any]] = {}
    entries = manifest.get("files")
    if not isinstance(entries, list):
        files.fail("manifest.json", "field files: missing")
        entries = []
    for i, entry in enumerate(entries):
        rel = _safe_rel(entry.get("path")) if isinstance(entry, Mapping) else None
        if rel is None or rel in MANIFEST_FILES:
            files.fail("manifest.json", f"field files[{i}].path: not a plain relative path inside the bundle")
            continue
        if rel in listed:
            files.fail("manifest.json", f"field files[{i}].path: {rel} is listed twice")
            continue
        listed[rel] = entry
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}
    for rel in sorted(present - set(listed) - set(MANIFEST_FILES)):
        files.fail(rel, "file is not listed in the manifest (extra file)")
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if path.is_symlink() or not path.is_file():
            files.fail(rel, "listed in the manifest but missing from the bundle")
            continue
        digest, size = _hash_file(path)
        res.files_checked += 1
        if size != entry.get("size"):
            files.fail(rel, f"size is {size} bytes, the manifest says {entry.get('size')}")
        if not hmac.compare_digest(digest, str(entry.get("sha256", ""))):
            files.fail(rel, "SHA-256 differs from the manifest")
    files.done()
    return set(listed)


def _slot_of(name: str) -> tuple[int, str]:
    m = re.match(r"keys/slot(\d+)-", name)
    return (int(m.group(1)) if m else 1 << 30, name)


def _check_images(root: Path, res: VerifyResult, listed: set[str]) -> None:
    check = _Check(res, "image signatures")
    recorded = _json(root, "results/images.json", check)
    digests_doc = _json(root, "results/key-digests.json", check)
    key_names = sorted(p for p in listed if p.startswith("keys/") and p.endswith(".pem"))
    keys: list[tuple[str, PublicKey]] = []
    for name in sorted(key_names, key=_slot_of):
        try:
            keys.append((name, load_public_key(root / name)))
        except MedfwError as e:
            check.fail(name, e.message)
    if not keys:
        check.fail("keys/", "no trusted public key in the bundle")
    if not isinstance(digests_doc, Mapping):
        if digests_doc is not None:
            check.fail("results/key-digests.json", "not a key digest record")
        digests_doc = {}
    elif key_digests(keys) != digests_doc.get("keys"):
        check.fail("results/key-digests.json", "key digests are not those of the bundled keys")
    if not isinstance(recorded, Mapping) or not isinstance(recorded.get("images"), list):
        if recorded is not None:
            check.fail("results/images.json", "not an image verification record")
        recorded = {"images": []}
    images: list[tuple[str, str, str, bytes]] = []
    claims: list[Mapping[str, Any]] = []
    for r in recorded["images"]:
        rel = str(r.get("file"))
        if rel not in listed or not (root / rel).is_file():
            check.fail("results/images.json", f"names {rel}, which is not in the bundle")
            continue
        images.append((rel, str(r.get("role")), str(r.get("format")), (root / rel).read_bytes()))
        claims.append(r)
    if not images:
        check.fail("results/images.json", "records no image")
    if keys and images:
        revoked = digests_doc.get("revoked_slots", [])
        for again, was in zip(verify_images(images, keys, revoked=revoked), claims, strict=True):
            if not again["ok"]:
                check.fail(again["file"], f"signature does not verify: {again.get('error')}")
            elif not was.get("ok"):
                check.fail("results/images.json", f"records {again['file']} as failing, but it verifies")
            elif again.get("sha256") != was.get("sha256"):
                check.fail("results/images.json", f"records another SHA-256 for {again['file']}")
    check.done()


def _check_audit(root: Path, res: VerifyResult, listed: set[str], audit_key: VerificationKey | None) -> None:
    check = _Check(res, "audit export")
    if "audit/export.json" not in listed:
        check.fail("audit/export.json", "missing from the manifest")
        check.done()
        return
    pub: bytes | None = None
    if audit_key is None:
        try:
            pub = read_bytes(root / "audit/checkpoint.pub.pem", max_length=1 << 16, what="checkpoint key")
        except MedfwError as e:
            check.fail("audit/checkpoint.pub.pem", e.message)
    try:
        report = verify_bundle(
            read_bytes(root / "audit/export.json", max_length=_MAX_FILE, what="audit export"),
            key=audit_key,
            public_key_pem=pub,
            path="audit/export.json",
        )
    except MedfwError as e:
        check.fail("audit/export.json", e.message)
    else:
        for err in report.errors:
            check.fail("audit/export.json", err)
        if audit_key is not None:
            bundled = (
                (root / "audit/checkpoint.pub.pem").read_bytes()
                if (root / "audit/checkpoint.pub.pem").is_file()
                else b""
            )
            if bundled.strip() != audit_key.checkpoint_public_key_pem.strip():
                check.fail("audit/checkpoint.pub.pem", "is not the checkpoint key of the given audit key")
    check.done()


def _check_vuln(root: Path, res: VerifyResult, listed: set[str]) -> None:
    schema = _Check(res, "SBOM schema")
    sbom_raw: bytes | None = None
    try:
        sbom_raw = read_bytes(root / "sbom/sbom.cdx.json", max_length=_MAX_FILE, what="SBOM")
    except MedfwError as e:
        schema.fail("sbom/sbom.cdx.json", e.message)
    sbom: Any = None
    if sbom_raw is not None:
        try:
            sbom = json.loads(sbom_raw)
        except (UnicodeDecodeError, ValueError) as e:
            schema.fail("sbom/sbom.cdx.json", f"not JSON: {e}")
    if isinstance(sbom, dict):
        assert sbom_raw is not None
        err = validate_schema(sbom_raw, "json", str(sbom.get("specVersion", "")))
        if err is not None:
            schema.fail("sbom/sbom.cdx.json", f"does not validate against the CycloneDX schema: {err}")
    elif sbom is not None:
        schema.fail("sbom/sbom.cdx.json", "not a CycloneDX JSON object")
    vex_cdx = _json(root, "vuln/vex.cdx.json", schema)
    if isinstance(vex_cdx, dict):
        err = validate_cyclonedx(vex_cdx)
        if err is not None:
            schema.fail("vuln/vex.cdx.json", f"does not validate against the CycloneDX 1.6 schema: {err}")
    schema.done()

    bound = _Check(res, "VEX binding")
    if isinstance(sbom, dict):
        docs = (
            ("vuln/vex.cdx.json", vex_cdx, binding.check_vex_cyclonedx),
            ("vuln/vex.openvex.json", _json(root, "vuln/vex.openvex.json", bound), binding.check_openvex),
            ("vuln/scan.json", _json(root, "vuln/scan.json", bound), binding.check_scan),
        )
        for rel, doc, fn in docs:
            if isinstance(doc, dict):
                for problem in fn(doc, sbom):
                    bound.fail(rel, problem)
            elif doc is not None:
                bound.fail(rel, "not a JSON object")
    else:
        bound.fail("sbom/sbom.cdx.json", "no SBOM to bind the VEX to")
    bound.done()
