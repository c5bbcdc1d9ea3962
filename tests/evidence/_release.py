"""A small but complete release directory for the evidence tests (built in a temp dir, nothing read from outside
the repository).

It holds: a P-256 release signing key (public half trusted), an Ed25519 evidence key, a signed bootloader, the
signed app 1.1.0 (secure_version 2) and the app it replaces (1.0.0, secure_version 1), an SBOM generated from a
small ``medfw-sbom.yml`` project manifest, a vulnerability index with the CVE 5 and KEV vectors of
``tests/vectors/vuln`` imported and a decision recorded for every finding, two registered releases (for the
findings-over-releases history), an audit log with this release's signing and SBOM events, and the eFuse
summary of a production unit provisioned with the release key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from medfw.audit import AuditEvent, init_log, open_log
from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image
from medfw.sbom import generate_from_manifest, serialize
from medfw.vuln import add_release, import_feeds, open_index, record_decision, scan
from medfw.vuln.sbom_input import read_sbom

CHIP = "esp32c6"  # verifies the ECDSA P-256 release key (ESP32-C3 verifies RSA-3072 only)
VECTORS = Path(__file__).parent.parent / "vectors"
VULN = VECTORS / "vuln"

PROJECT = """\
name: infusion-pump-fw
version: {version}
supplier: 'Organization: Example Medical Devices Inc.'
license: LicenseRef-Proprietary
components:
  - name: mbedtls
    version: {mbedtls}
    cpe: cpe:2.3:a:arm:mbed_tls:{{}}:*:*:*:*:*:*:*
    purl: pkg:github/mbed-tls/mbedtls@v{{}}
    supplier: 'Organization: Trusted Firmware'
    license: Apache-2.0
    support-level: actively-maintained
    end-of-support: 2027-03-31
  - name: zlib
    version: 1.3.1
    cpe: cpe:2.3:a:zlib:zlib:{{}}:*:*:*:*:*:*:*
    purl: pkg:generic/zlib@{{}}
    supplier: 'Organization: zlib'
    license: Zlib
    support-level: actively-maintained
    end-of-support: unknown
  - name: cjson
    version: 1.7.18
    cpe: cpe:2.3:a:cjson_project:cjson:{{}}:*:*:*:*:*:*:*
    supplier: 'Organization: cJSON project'
    license: MIT
    support-level: no-longer-maintained
    end-of-support: unknown
"""

#: The decision recorded for each finding of the release (state, justification, responses).
DECISIONS = {
    "CVE-2024-49195": ("not_affected", "code_not_reachable", ()),
    "CVE-2024-30166": ("not_affected", "requires_configuration", ()),
    "CVE-2024-28755": ("exploitable", None, ("update",)),
}


@dataclass(frozen=True)
class Release:
    """Paths of a generated release directory."""

    root: Path
    evidence_pub: Path
    audit_key: Path
    sbom_serial: str
    findings: int
    severity_counts: dict[str, int]


def _pem_private(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_public(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _sbom(directory: Path, version: str, mbedtls: str, image: Path | None = None) -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "medfw-sbom.yml"
    manifest.write_text(PROJECT.format(version=version, mbedtls=mbedtls))
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"medfw-test/infusion-pump-fw/{version}")
    return serialize(generate_from_manifest(manifest, binaries=[image] if image else [], serial=serial), fmt="json")


def make_release(root: Path, chip: str = CHIP) -> Release:
    """Create the release directory ``root`` (see the module docstring) for ``chip``."""
    root.mkdir(parents=True)
    (root / "keys").mkdir()
    (root / "images").mkdir()
    release_key = generate_private_key(KeyType.ECDSA_P256)
    evidence_key = generate_private_key(KeyType.ED25519)
    (root / "keys/release.pub.pem").write_bytes(_pem_public(release_key))
    (root / "keys/evidence.pem").write_bytes(_pem_private(evidence_key))
    (root / "keys/evidence.pem").chmod(0o600)
    (root / "keys/evidence.pub.pem").write_bytes(_pem_public(evidence_key))

    signer = [FileSigner(release_key, "keys/release.pem")]
    boot = sign_image(
        build_app_image(chip=chip, version="bootloader", secure_version=0, project_name="bootloader"), signer
    )
    size = 64 * 1024  # 16 flash sectors: a meaningful power-cut sweep
    app = sign_image(
        build_app_image(chip=chip, version="1.1.0", secure_version=2, project_name="pump", size=size), signer
    )
    old = sign_image(
        build_app_image(chip=chip, version="1.0.0", secure_version=1, project_name="pump", size=size), signer
    )
    (root / "images/bootloader.bin").write_bytes(boot)
    (root / "images/app-1.1.0.bin").write_bytes(app)
    (root / "images/app-1.0.0.bin").write_bytes(old)

    sbom = _sbom(root / "project", "1.1.0", "3.5.2", root / "images/app-1.1.0.bin")
    (root / "sbom.cdx.json").write_bytes(sbom)
    previous_sbom = _sbom(root / "project-1.0.0", "1.0.0", "3.1.0", root / "images/app-1.0.0.bin")

    audit_key = root / "audit.key"
    init_log(root / "audit.db", key_out=audit_key, host_id="release-ci")
    index = open_index(str(root / "vuln.db"))
    with open_log(root / "audit.db", host_id="release-ci") as log:
        for name, data in (("bootloader", boot), ("app", app)):
            log.record(
                AuditEvent(
                    type="release.sign",
                    outcome="success",
                    actor="keys/release.pem",
                    objects={"image_sha256": hashlib.sha256(data).hexdigest()},
                    data={"format": "sbv2", "role": name},
                )
            )
        scan_input = read_sbom(sbom, "sbom.cdx.json")
        log.record(
            AuditEvent(
                type="sbom.generate",
                outcome="success",
                actor="ci",
                objects={"sbom_sha256": hashlib.sha256(sbom).hexdigest(), "serial": scan_input.serial},
            )
        )
        log.record(AuditEvent(type="vuln.scan", outcome="info", actor="ci", objects={"unrelated": "x" * 8}))
        import_feeds(index, cve5=[str(VULN / "cve5")], kev=[str(VULN / "kev" / "known_exploited_vulnerabilities.json")])
        add_release(index, previous_sbom, "sbom-1.0.0.cdx.json")
        result = scan(index, scan_input)
        for f in result.findings:
            state, justification, responses = DECISIONS[f.vuln_id]
            record_decision(
                index,
                scan_input,
                f.vuln_id,
                f.component_ref,
                state=state,
                justification=justification,
                responses=responses,
                detail=f"assessed for {f.vuln_id} by the product security team"
                + ("; fixed by the next release, due 2027-03-31" if state == "exploitable" else ""),
                author="psirt@example-medical.invalid",
                sink=log,
            )
        add_release(index, sbom, "sbom.cdx.json")
    index.close()

    unit = Device.in_memory(chip=chip, key_digests=[public_key_digest(release_key.public_key())], flash_encryption=True)
    unit.efuse.burn_secure_version(2, 16)
    (root / "efuse").mkdir()
    (root / "efuse/unit-0001.json").write_text(json.dumps(unit.efuse.to_espefuse_summary(), indent=2))

    (root / "build").mkdir()
    (root / "build/sdkconfig").write_bytes((VECTORS / "buildcfg" / "hardened.sdkconfig").read_bytes())
    (root / "release.yml").write_text(
        "name: infusion-pump-fw\n"
        "version: 1.1.0\n"
        "model: medfw-example\n"
        f"chip: {chip}\n"
        "images:\n"
        "  - {path: images/app-1.1.0.bin, role: app, format: sbv2}\n"
        "  - {path: images/bootloader.bin, role: bootloader, format: sbv2}\n"
        "previous_image: images/app-1.0.0.bin\n"
        "trusted_keys: [keys/release.pub.pem]\n"
        "efuse_summary: efuse/unit-0001.json\n"
        "build_config: build/sdkconfig\n"
        "sbom: sbom.cdx.json\n"
        "vuln_db: vuln.db\n"
        "audit_log: audit.db\n"
        "audit_key: audit.key\n"
        "evidence_key: keys/evidence.pem\n"
    )
    counts: dict[str, int] = {}
    for f in result.findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return Release(
        root=root,
        evidence_pub=root / "keys/evidence.pub.pem",
        audit_key=audit_key,
        sbom_serial=scan_input.serial,
        findings=len(result.findings),
        severity_counts=counts,
    )
