"""Building a bundle: every check passes on a good release, the bundle holds what it should, failures leave
nothing behind."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from medfw.crypto.signer import FileSigner
from medfw.errors import InputError, MedfwError
from medfw.evidence.build import MANIFEST_FILES, build_bundle
from medfw.evidence.spec import load_release_spec
from medfw.evidence.verify import verify_evidence

from ._release import make_release
from .conftest import Built

EXPECTED = {
    "release.json",
    "report.html",
    "report.pdf",
    "images/app-1.1.0.bin",
    "images/bootloader.bin",
    "images/previous/app-1.0.0.bin",
    "keys/slot0-release.pub.pem",
    "results/images.json",
    "results/key-digests.json",
    "results/efuse-policy.json",
    "results/update-path.json",
    "results/sbom-check.json",
    "results/build-config.json",
    "build/sdkconfig",
    "results/audit.json",
    "results/summary.json",
    "efuse/unit-summary.json",
    "efuse/simulated-unit.json",
    "sbom/sbom.cdx.json",
    "vuln/scan.json",
    "vuln/fixed.json",
    "vuln/vex.cdx.json",
    "vuln/vex.openvex.json",
    "vuln/history.json",
    "audit/export.json",
    "audit/checkpoint.pub.pem",
    "trace/matrix.json",
}


def _load(bundle: Path, rel: str) -> dict:
    return json.loads((bundle / rel).read_text())


def test_good_release_passes_every_check(built: Built) -> None:
    assert [c.name for c in built.result.checks if not c.ok] == []
    assert len(built.result.checks) == 9
    files = {p.relative_to(built.path).as_posix() for p in built.path.rglob("*") if p.is_file()}
    assert files == EXPECTED | set(MANIFEST_FILES)
    manifest = _load(built.path, "manifest.json")
    assert {f["path"] for f in manifest["files"]} == EXPECTED
    assert manifest["release"] == {
        "name": "infusion-pump-fw",
        "version": "1.1.0",
        "model": "medfw-example",
        "chip": "esp32c6",
    }


def test_no_private_key_or_audit_secret_in_the_bundle(built: Built) -> None:
    secret = json.loads(built.release.audit_key.read_text())["epoch_key"]
    for p in built.path.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert b"PRIVATE KEY" not in data, p
            assert secret.encode() not in data, p


def test_recorded_numbers(built: Built) -> None:
    b = built.path
    update = _load(b, "results/update-path.json")
    steps = {s["step"]: s for s in update["steps"]}
    assert steps["confirm"]["counter"] == 2 == update["app_secure_version"]
    assert steps["downgrade_refused"]["reason"] == "rollback"
    assert steps["unconfirmed_boot_reverts"]["slot_after_reboot"] == steps["factory_boot"]["slot"]
    assert update["power_cut"]["tried"] == update["power_cut"]["bootable"] >= 2
    images = _load(b, "results/images.json")["images"]
    assert {(i["role"], i["ok"], i.get("secure_version")) for i in images} == {
        ("app", True, 2),
        ("bootloader", True, 0),
    }
    digests = _load(b, "results/key-digests.json")["keys"]
    assert len(digests) == 1
    assert len(digests[0]["sbv2_digest"]) == 64
    efuse = _load(b, "results/efuse-policy.json")
    assert [u["unit"] for u in efuse["units"]] == ["release unit", "simulated unit"]
    assert all(u["release_keys_trusted"] == 1 for u in efuse["units"])
    scan = _load(b, "vuln/scan.json")
    assert len(scan["findings"]) == built.release.findings == 3
    assert all(f["decision"] for f in scan["findings"])
    history = _load(b, "vuln/history.json")["releases"]
    assert [h["release"] for h in history] == ["1.0.0", "1.1.0"]
    assert sum(history[-1]["counts"].values()) == 3


def test_audit_export_holds_this_releases_events_only(built: Built) -> None:
    export = _load(built.path, "audit/export.json")
    types = [json.loads(e["record"])["body"]["type"] for e in export["entries"]]
    assert types.count("release.sign") == 2
    assert types.count("sbom.generate") == 1
    assert types.count("vuln.decision") == 3
    assert "vuln.scan" not in types  # the unrelated event is left out
    assert export["checkpoint"]["checkpoint"]["size"] > max(e["seq"] for e in export["entries"])
    audit = _load(built.path, "results/audit.json")
    assert audit["export"]["ok"] and audit["export"]["hmac_checked"] and audit["log"]["ok"]


def test_build_records_an_evidence_event(built: Built) -> None:
    (event,) = built.events.of_type("evidence.build")
    assert event.outcome == "success"
    assert event.objects["manifest_sha256"] == hashlib.sha256((built.path / "manifest.json").read_bytes()).hexdigest()


def test_existing_output_needs_force_and_is_replaced_whole(built: Built, tmp_path: Path) -> None:
    spec = load_release_spec(built.release.root)
    assert spec.evidence_key is not None
    signer = FileSigner.from_file(spec.evidence_key)
    out = tmp_path / "b"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    with pytest.raises(InputError, match="exists"):
        build_bundle(spec, out, signer=signer)
    result = build_bundle(spec, out, signer=signer, force=True)
    assert result.ok
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or backup directory left


def test_failed_build_leaves_nothing(built: Built, tmp_path: Path) -> None:
    release = tmp_path / "release"
    shutil.copytree(built.release.root, release)
    (release / "sbom.cdx.json").write_text('{"bomFormat": "CycloneDX", "specVersion": ')
    spec = load_release_spec(release)
    assert spec.evidence_key is not None
    out = tmp_path / "out" / "bundle"
    with pytest.raises(MedfwError) as info:
        build_bundle(spec, out, signer=FileSigner.from_file(spec.evidence_key))
    assert "sbom.cdx.json" in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_failing_checks_are_recorded_not_hidden(built: Built, tmp_path: Path) -> None:
    release = tmp_path / "release"
    shutil.copytree(built.release.root, release)
    # a release whose previous image has the same secure_version: the downgrade is not refused
    (release / "images/app-1.0.0.bin").write_bytes((release / "images/app-1.1.0.bin").read_bytes())
    # and a unit eFuse summary from another key (a real espefuse read-out)
    vector = Path(__file__).parent.parent / "vectors" / "efuse" / "esp32c3_locked.json"
    (release / "efuse/unit-0001.json").write_bytes(vector.read_bytes())
    spec = load_release_spec(release)
    assert spec.evidence_key is not None
    result = build_bundle(spec, tmp_path / "b", signer=FileSigner.from_file(spec.evidence_key))
    failed = {c.name for c in result.checks if not c.ok}
    assert failed == {"Anti-rollback and update path", "eFuse policy"}
    summary = _load(result.path, "results/summary.json")
    assert summary["ok"] is False
    assert "downgrade NOT refused" in next(c["detail"] for c in summary["checks"] if c["name"].startswith("Anti"))
    verified = verify_evidence(result.path)
    assert verified.ok  # intact ...
    assert verified.recorded_failures == ["Anti-rollback and update path", "eFuse policy"]  # ... and says so


def test_release_json_records_every_input_relative_to_the_release(built: Built) -> None:
    inputs = {i["path"]: i for i in _load(built.path, "release.json")["inputs"]}
    for rel in ("sbom.cdx.json", "images/app-1.1.0.bin", "images/bootloader.bin", "images/app-1.0.0.bin"):
        assert inputs[rel]["sha256"] == hashlib.sha256((built.release.root / rel).read_bytes()).hexdigest()
    assert "keys/release.pub.pem" in inputs and "efuse/unit-0001.json" in inputs
    assert not any(p.startswith("/") for p in inputs)


def test_ecdsa_release_for_an_rsa_only_chip_fails_the_update_path_check(tmp_path: Path) -> None:
    """ESP32-C3 verifies RSA-3072 Secure Boot v2 blocks only: a P-256-signed esp32c3 release cannot pass."""
    release = make_release(tmp_path / "release", chip="esp32c3")
    spec = load_release_spec(release.root)
    assert spec.evidence_key is not None
    result = build_bundle(spec, tmp_path / "b", signer=FileSigner.from_file(spec.evidence_key))
    failed = {c.name: c for c in result.checks if not c.ok}
    assert "Anti-rollback and update path" in failed
    summary = _load(result.path, "results/summary.json")
    detail = next(c["detail"] for c in summary["checks"] if c["name"].startswith("Anti"))
    assert "unsupported_scheme" in detail


def test_sbom_of_another_image_is_refused_naming_both_hashes(built: Built, tmp_path: Path) -> None:
    from medfw.errors import ManifestError, VerificationError
    from medfw.image.esp import EspImage

    from ._release import _sbom

    root = tmp_path / "release"
    shutil.copytree(built.release.root, root)
    old, new = root / "images/app-1.0.0.bin", root / "images/app-1.1.0.bin"

    def content(p: Path) -> str:
        data = p.read_bytes()
        return hashlib.sha256(data[: EspImage.from_bytes(data).image_length]).hexdigest()

    (root / "sbom.cdx.json").write_bytes(_sbom(tmp_path / "p", "1.0.0", "3.5.2", old))
    spec = load_release_spec(root)
    assert spec.evidence_key is not None
    with pytest.raises(VerificationError) as e:
        build_bundle(spec, tmp_path / "bundle", signer=FileSigner.from_file(spec.evidence_key))
    assert content(old) in e.value.message and content(new) in e.value.message
    assert not (tmp_path / "bundle").exists()
    (root / "sbom.cdx.json").write_bytes(_sbom(tmp_path / "q", "1.1.0", "3.5.2"))  # no --binary: no image hash
    with pytest.raises(ManifestError, match="no firmware image hash"):
        build_bundle(load_release_spec(root), tmp_path / "bundle", signer=FileSigner.from_file(spec.evidence_key))
    assert not (tmp_path / "bundle").exists()


def test_build_config_is_checked_into_the_bundle(built: Built, tmp_path: Path) -> None:
    doc = json.loads((built.path / "results/build-config.json").read_text())
    assert doc["ok"] and doc["config"] == "build/sdkconfig" and doc["target"] == "esp32c3"
    assert len(doc["rules"]) == 8
    check = next(c for c in built.result.checks if c.name == "Build configuration")
    assert check.ok and "8/8 rules pass" in check.detail
    matrix = json.loads((built.path / "trace/matrix.json").read_text())
    assert any("results/build-config.json" in r["evidence"] and r["evidence_present"] for r in matrix["rows"])
    # a release whose sdkconfig leaves JTAG enabled fails the check, naming the rule
    root = tmp_path / "release"
    shutil.copytree(built.release.root, root)
    cfg = root / "build/sdkconfig"
    cfg.write_text(
        cfg.read_text()
        .replace("# CONFIG_SECURE_BOOT_INSECURE is not set", "CONFIG_SECURE_BOOT_INSECURE=y")
        .replace("# CONFIG_SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE is not set", "CONFIG_SECURE_BOOT_ALLOW_JTAG=y")
    )
    spec = load_release_spec(root)
    assert spec.evidence_key is not None
    result = build_bundle(spec, tmp_path / "bundle", signer=FileSigner.from_file(spec.evidence_key))
    check = next(c for c in result.checks if c.name == "Build configuration")
    assert not check.ok and "jtag-disabled" in check.detail and not result.ok


def test_fixed_by_this_release_names_the_previous_release(built: Built) -> None:
    # (the demo test checks a real fix: CVE-2024-49195 in Mbed TLS 3.6.1 -> 3.6.4)
    fixed = json.loads((built.path / "vuln/fixed.json").read_text())
    assert fixed["previous_release"] == "1.0.0" and fixed["previous_serial"].startswith("urn:uuid:")
    scan = json.loads((built.path / "vuln/scan.json").read_text())
    assert not {f["id"] for f in fixed["fixed"]} & {f["vuln_id"] for f in scan["findings"]}
    assert '<section id="fixed">' in (built.path / "report.html").read_text()
