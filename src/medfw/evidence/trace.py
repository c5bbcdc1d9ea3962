"""The traceability matrix: security property → mechanism → regulatory clause → evidence file → test.

The clause references are to:

* FDA, *Cybersecurity in Medical Devices: Quality System Considerations and Content of Premarket Submissions*
  (final guidance, September 2023, updated June 2025): section V.A.4 (third-party software components / SBOM),
  V.B and Appendix 1 security-control categories (C cryptography, D code/data/execution integrity, F event
  detection and logging, G resiliency and recovery, H updatability and patchability), VI.B (vulnerability
  management plan), and FD&C Act section 524B(b)(1)–(3) for cyber devices;
* IEC 81001-5-1:2021 clauses 4.1.5, 5.8.4, 6.1.1, 6.2.1, 6.3.3, 9.2–9.5; product security capabilities derived
  from IEC 62443-4-2 (CR 2.8, CR 3.4, CR 3.9, CR 3.14) as IEC 81001-5-1 clause 5.2 expects.

Each row names the evidence files inside the bundle (checked to exist when the bundle is built) and the test
modules of medfw's own suite that prove the mechanism (checked to exist by medfw's tests).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TRACE_MATRIX", "TraceRow"]


@dataclass(frozen=True)
class TraceRow:
    """One row of the traceability matrix."""

    property: str
    mechanism: str
    fda: tuple[str, ...]
    iec: tuple[str, ...]
    evidence: tuple[str, ...]
    tests: tuple[str, ...]


TRACE_MATRIX: tuple[TraceRow, ...] = (
    TraceRow(
        property="Secure boot: only manufacturer-signed code runs",
        mechanism=(
            "ESP32 Secure Boot v2 signature blocks (RSA-3072-PSS / ECDSA) verified against eFuse key digests; "
            "revocable key slots; eFuse lock-down policy (secure boot on, JTAG and ROM download off); "
            "release build configuration gate (medfw build check: sdkconfig security options)"
        ),
        fda=("Appendix 1 D (code, data and execution integrity)", "Appendix 1 C (cryptography)", "V.B"),
        iec=(
            "IEC 81001-5-1 5.8.4 (controls for private keys)",
            "IEC 62443-4-2 CR 3.14 (integrity of the boot process)",
        ),
        evidence=(
            "results/images.json",
            "results/key-digests.json",
            "results/efuse-policy.json",
            "results/build-config.json",
        ),
        tests=(
            "tests/image/test_sbv2.py",
            "tests/image/test_sbv2_tamper.py",
            "tests/device/test_bootloader.py",
            "tests/device/test_policy.py",
            "tests/evidence/test_efuse_check.py",
            "tests/buildcfg/test_check.py",
        ),
    ),
    TraceRow(
        property="Signed, rollback-protected updates",
        mechanism=(
            "TUF-secured update repository (offline root/targets keys), image boot signature checked before "
            "activation, monotonic anti-rollback secure_version in eFuse"
        ),
        fda=("Appendix 1 H (updatability and patchability)", "524B(b)(2)"),
        iec=("IEC 81001-5-1 6.3.3 (integrity of security updates)", "IEC 62443-4-2 CR 3.4 (software integrity)"),
        evidence=("results/update-path.json", "results/images.json"),
        tests=(
            "tests/update/test_attacks.py",
            "tests/device/test_attacks.py",
            "tests/device/test_device.py",
            "tests/evidence/test_scenario.py",
        ),
    ),
    TraceRow(
        property="Software bill of materials",
        mechanism=(
            "CycloneDX 1.6 SBOM generated from the build (manifests, linked components, binary evidence), "
            "with support level and end-of-support per component; schema and completeness check"
        ),
        fda=("V.A.4 (third-party software components, SBOM)", "524B(b)(3)"),
        iec=("IEC 81001-5-1 4.1.5 (third-party software items)",),
        evidence=("sbom/sbom.cdx.json", "results/sbom-check.json"),
        tests=("tests/sbom/test_idf.py", "tests/sbom/test_check.py"),
    ),
    TraceRow(
        property="Vulnerability management (patch or justify)",
        mechanism=(
            "Offline NVD / CVE 5 / OSV / KEV feeds matched to the SBOM; triage by CVSS, KEV, EPSS, SSVC; "
            "a recorded decision per finding exported as CycloneDX VEX and OpenVEX"
        ),
        fda=("V.A.4 (known vulnerabilities)", "VI.B (vulnerability management plan)", "524B(b)(1)"),
        iec=("IEC 81001-5-1 6.2.1 (monitoring public incident reports)", "IEC 81001-5-1 9.2-9.5"),
        evidence=("vuln/scan.json", "vuln/vex.cdx.json", "vuln/vex.openvex.json"),
        tests=("tests/vuln/test_accuracy.py", "tests/vuln/test_vex.py", "tests/evidence/test_binding.py"),
    ),
    TraceRow(
        property="Field patchability without bricking",
        mechanism=(
            "A/B slots with ESP-IDF otadata; confirm-and-revert (unconfirmed image aborted on next boot); "
            "power loss at any sector write leaves a bootable signed image"
        ),
        fda=("Appendix 1 G (resiliency and recovery)", "Appendix 1 H (updatability and patchability)"),
        iec=("IEC 81001-5-1 6.1.1 (timely delivery of security updates)",),
        evidence=("results/update-path.json",),
        tests=("tests/device/test_power_cut.py", "tests/device/test_device.py", "tests/evidence/test_scenario.py"),
    ),
    TraceRow(
        property="Tamper-evident audit trail",
        mechanism=(
            "Hash-chained, HMAC-sealed, forward-secure log; RFC 9162 Merkle inclusion and consistency proofs; "
            "signed checkpoints; offline-verifiable export"
        ),
        fda=("Appendix 1 F (event detection and logging)",),
        iec=("IEC 62443-4-2 CR 2.8 (auditable events)", "IEC 62443-4-2 CR 3.9 (protection of audit information)"),
        evidence=("audit/export.json", "results/audit.json"),
        tests=("tests/audit/test_verify.py", "tests/audit/test_merkle.py", "tests/audit/test_crash.py"),
    ),
)
