"""Verifying a bundle: a good bundle verifies; every kind of tampering fails and names the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit.keys import VerificationKey
from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key, load_private_key, load_public_key
from medfw.crypto.signer import FileSigner
from medfw.errors import EvidenceError
from medfw.evidence.build import MANIFEST_FILES, dump_json
from medfw.evidence.manifest import file_entry, make_manifest, sign_manifest
from medfw.evidence.verify import verify_evidence
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import sign_image

from ._release import _sbom
from .conftest import Built


def _keys(built: Built) -> tuple[object, VerificationKey]:
    return (
        load_public_key(built.release.evidence_pub),
        VerificationKey.from_bytes(built.release.audit_key.read_bytes()),
    )


def _resign(bundle: Path, key: PrivateKey) -> None:
    """Re-hash every file and re-sign the manifest, as someone holding ``key`` would."""
    signer = FileSigner(key, "resigner")
    old = json.loads((bundle / "manifest.json").read_text())
    entries = [file_entry(bundle, p) for p in bundle.rglob("*") if p.is_file() and p.name not in MANIFEST_FILES]
    manifest = make_manifest(entries, release=old["release"], created=old["created"], signer=signer)
    (bundle / "manifest.json").write_bytes(dump_json(manifest))
    (bundle / "manifest.sig").write_bytes(sign_manifest(manifest, signer))
    (bundle / "manifest.pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _files(result: object) -> set[str]:
    return {p.file for p in result.problems}  # type: ignore[attr-defined]


def test_good_bundle_verifies_pinned_and_with_audit_key(built: Built, bundle: Path) -> None:
    key, audit_key = _keys(built)
    result = verify_evidence(bundle, key=key, audit_key=audit_key)  # type: ignore[arg-type]
    assert result.ok, result.problems
    assert result.key_pinned and result.audit_key_used and not result.notes
    assert result.files_checked == 27
    assert all(result.checks.values()) and len(result.checks) == 7


def test_unpinned_verify_says_so(bundle: Path) -> None:
    result = verify_evidence(bundle)
    assert result.ok
    assert not result.key_pinned
    assert any("not pinned" in n for n in result.notes)


def test_changing_any_file_is_named(built: Built, bundle: Path) -> None:
    key, _ = _keys(built)
    listed = [f["path"] for f in json.loads((bundle / "manifest.json").read_text())["files"]]
    for rel in listed:
        path = bundle / rel
        original = path.read_bytes()
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 0x01]))
        result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
        assert not result.ok
        assert rel in _files(result), (rel, result.problems)
        assert any(p.file == rel and "SHA-256" in p.problem for p in result.problems)
        path.write_bytes(original)
    assert verify_evidence(bundle, key=key).ok  # type: ignore[arg-type]


def test_dropped_and_added_files_are_named(built: Built, bundle: Path) -> None:
    key, _ = _keys(built)
    (bundle / "vuln/vex.openvex.json").unlink()
    (bundle / "results/extra.json").write_text("{}")
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    problems = {(p.file, p.problem) for p in result.problems}
    assert ("vuln/vex.openvex.json", "listed in the manifest but missing from the bundle") in problems
    assert ("results/extra.json", "file is not listed in the manifest (extra file)") in problems
    assert result.checks["file hashes"] is False


def test_swapped_sbom_is_named_and_resigning_it_breaks_the_vex_binding(
    built: Built, bundle: Path, tmp_path: Path
) -> None:
    key, _ = _keys(built)
    other = _sbom(tmp_path / "other", "9.9.9", "3.5.2")
    (bundle / "sbom/sbom.cdx.json").write_bytes(other)
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert "sbom/sbom.cdx.json" in _files(result)
    # someone re-signs the swapped bundle with their own key: the pinned key refuses it ...
    _resign(bundle, generate_private_key(KeyType.ED25519))
    pinned = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert pinned.checks["manifest signature"] is False
    assert {"manifest.pub.pem", "manifest.json"} & _files(pinned)
    # ... and even unpinned, the VEX documents no longer match the SBOM
    unpinned = verify_evidence(bundle)
    assert unpinned.checks["file hashes"] and unpinned.checks["manifest signature"]
    assert unpinned.checks["VEX binding"] is False
    assert {"vuln/vex.cdx.json", "vuln/vex.openvex.json", "vuln/scan.json"} <= _files(unpinned)


@pytest.mark.parametrize(
    ("rel", "edit", "expect"),
    [
        ("vuln/vex.cdx.json", "serial", "medfw:sbom-serial"),
        ("vuln/vex.cdx.json", "ref", "does not exist in the SBOM"),
        ("vuln/vex.openvex.json", "ref", "does not exist in the SBOM"),
        ("vuln/vex.openvex.json", "version", "version"),
    ],
)
def test_altered_vex_binding_fails_even_when_signed(
    built: Built, bundle: Path, rel: str, edit: str, expect: str
) -> None:
    doc = json.loads((bundle / rel).read_text())
    if rel.endswith("cdx.json") and edit == "serial":
        doc["metadata"]["properties"][0]["value"] = "urn:uuid:00000000-0000-4000-8000-000000000000"
    elif rel.endswith("cdx.json"):
        ref = doc["vulnerabilities"][0]["affects"][0]["ref"]
        doc["vulnerabilities"][0]["affects"][0]["ref"] = ref.split("#")[0] + "#component:not-there"
    else:
        pid = doc["statements"][0]["products"][0]["@id"]
        head, _, ref = pid.partition("#")
        doc["statements"][0]["products"][0]["@id"] = (
            head + "#component:not-there" if edit == "ref" else head.rsplit("/", 1)[0] + "/7#" + ref
        )
    (bundle / rel).write_text(json.dumps(doc))
    spec_key = load_private_key(built.release.root / "keys/evidence.pem")
    _resign(bundle, spec_key)  # the evidence key itself signs the bad binding
    key, _ = _keys(built)
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert result.checks["manifest signature"] and result.checks["file hashes"]
    assert result.checks["VEX binding"] is False
    assert any(p.file == rel and expect in p.problem for p in result.problems), result.problems


def test_corrupt_manifest_signature(built: Built, bundle: Path) -> None:
    key, _ = _keys(built)
    sig = bytearray((bundle / "manifest.sig").read_bytes())
    sig[10] ^= 0x40
    (bundle / "manifest.sig").write_bytes(bytes(sig))
    for k in (key, None):
        result = verify_evidence(bundle, key=k)  # type: ignore[arg-type]
        assert result.checks["manifest signature"] is False
        assert any(p.file == "manifest.sig" and "does not verify" in p.problem for p in result.problems)


def test_edited_manifest_breaks_the_signature(built: Built, bundle: Path) -> None:
    key, _ = _keys(built)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["release"]["version"] = "1.1.1"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert any(p.file == "manifest.sig" for p in result.problems)


def test_manifest_path_escaping_the_bundle_is_refused(built: Built, bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"].append({"path": "../outside", "sha256": "0" * 64, "size": 0})
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = verify_evidence(bundle)
    assert any(p.file == "manifest.json" and "plain relative path" in p.problem for p in result.problems)


def test_tampered_audit_export_fails_its_proofs(built: Built, bundle: Path) -> None:
    export = json.loads((bundle / "audit/export.json").read_text())
    entry = export["entries"][0]
    entry["record"] = entry["record"].replace('"release.sign"', '"release.publish"')
    (bundle / "audit/export.json").write_text(json.dumps(export))
    _resign(bundle, load_private_key(built.release.root / "keys/evidence.pem"))
    key, audit_key = _keys(built)
    result = verify_evidence(bundle, key=key, audit_key=audit_key)  # type: ignore[arg-type]
    assert result.checks["audit export"] is False
    assert any(p.file == "audit/export.json" and "inclusion proof" in p.problem for p in result.problems)


def test_missing_manifest_and_not_a_directory(tmp_path: Path, bundle: Path) -> None:
    with pytest.raises(EvidenceError):
        verify_evidence(tmp_path / "nope")
    (bundle / "manifest.json").unlink()
    result = verify_evidence(bundle)
    assert not result.ok and "manifest.json" in _files(result)


@pytest.mark.parametrize(
    ("rel", "content"),
    [
        ("results/images.json", '{"images": ["not an object"]}'),
        ("results/key-digests.json", "[1, 2]"),
        ("vuln/vex.cdx.json", '{"vulnerabilities": [{"affects": [7]}], "metadata": []}'),
        ("vuln/scan.json", '{"sbom": 1, "findings": [null]}'),
        ("audit/export.json", '{"format": "medfw-audit-bundle", "version": 1}'),
        ("sbom/sbom.cdx.json", "[]"),
        ("results/build-config.json", '{"config": "build/sdkconfig", "rules": [{"rule": 1}]}'),
        ("build/sdkconfig", "not a configuration\n"),
    ],
)
def test_malformed_signed_documents_fail_without_crashing(built: Built, bundle: Path, rel: str, content: str) -> None:
    (bundle / rel).write_text(content)
    _resign(bundle, load_private_key(built.release.root / "keys/evidence.pem"))
    key, _ = _keys(built)
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert not result.ok
    assert result.checks["manifest signature"] and result.checks["file hashes"]
    assert any(p.file == rel for p in result.problems), result.problems


def test_image_signed_by_another_key_fails_even_when_signed(built: Built, bundle: Path) -> None:
    stranger = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    forged = sign_image(build_app_image(version="1.1.0", secure_version=2), [stranger])
    (bundle / "images/app-1.1.0.bin").write_bytes(forged)
    _resign(bundle, load_private_key(built.release.root / "keys/evidence.pem"))
    key, _ = _keys(built)
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert result.checks["image signatures"] is False
    assert any(p.file == "images/app-1.1.0.bin" and "does not verify" in p.problem for p in result.problems)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["path", "sha256", "size"]), inner),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=_JSON)
def test_random_manifest_file_lists_never_crash(bundle: Path, files: object) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = files
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = verify_evidence(bundle)
    assert not result.ok
    assert result.checks["manifest signature"] is False


def test_a_build_config_result_that_the_bundled_sdkconfig_contradicts_fails(built: Built, bundle: Path) -> None:
    doc = json.loads((bundle / "results/build-config.json").read_text())
    jtag = next(r for r in doc["rules"] if r["rule"] == "jtag-disabled")
    cfg = bundle / "build/sdkconfig"
    cfg.write_text(
        cfg.read_text()
        .replace("# CONFIG_SECURE_BOOT_INSECURE is not set", "CONFIG_SECURE_BOOT_INSECURE=y")
        .replace("# CONFIG_SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE is not set", "CONFIG_SECURE_BOOT_ALLOW_JTAG=y")
    )
    _resign(bundle, load_private_key(built.release.root / "keys/evidence.pem"))  # results still say "pass"
    key, _ = _keys(built)
    result = verify_evidence(bundle, key=key)  # type: ignore[arg-type]
    assert jtag["status"] == "pass" and result.checks["build configuration"] is False
    assert any("rule jtag-disabled" in p.problem for p in result.problems if p.file == "results/build-config.json")
