"""Decisions bound to (vulnerability, component identity, version) and carried across releases, audited.

Two releases of the realistic example SBOM (tests/vectors/sbom): Mbed TLS 3.5.1 in the first, 3.6.4 in the
second, everything else unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.errors import InputError, UsageError
from medfw.vuln import current_decisions, record_decision, scan
from medfw.vuln.carryover import register_release
from medfw.vuln.decision_batch import read_batch
from medfw.vuln.decisions import record_decisions
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import ScanInput
from medfw.vuln.sbom_input import read_sbom

EXAMPLE = Path(__file__).parent.parent / "vectors" / "sbom" / "example-device.cdx.json"
MBEDTLS = "component:mbedtls/mbedtls"
EXPAT = "binary:expat"
SERIALS = {
    "3.5.1": "urn:uuid:0e6f7c62-7f0b-4b54-9a55-35e1a1111111",
    "3.6.4": "urn:uuid:0e6f7c62-7f0b-4b54-9a55-36e4a2222222",
}


def release_sbom(mbedtls: str, *, serial: str | None = None, fw_version: str = "2.4.0") -> bytes:
    """The example device SBOM with Mbed TLS at ``mbedtls`` (its own serial per version)."""
    doc = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    doc["serialNumber"] = serial or SERIALS[mbedtls]
    doc["metadata"]["component"]["version"] = fw_version
    for c in doc["components"]:
        if c["bom-ref"] == MBEDTLS:
            c["version"] = mbedtls
            c["purl"] = f"pkg:github/mbed-tls/mbedtls@v{mbedtls}"
            c["cpe"] = f"cpe:2.3:a:arm:mbed_tls:{mbedtls}:*:*:*:*:*:*:*"
    return json.dumps(doc, indent=2).encode()


def _decide_r1(index: VulnIndex, r1: ScanInput, sink: MemorySink) -> None:
    record_decision(
        index, r1, "CVE-2024-8176", EXPAT, state="not_affected", justification="requires_configuration",
        detail="XML_DTD disabled: no entity expansion", author="alice", sink=sink,
    )  # fmt: skip
    record_decision(
        index, r1, "cve-2025-27809", MBEDTLS, state="not_affected", justification="code_not_reachable",
        detail="TLS client never sets the hostname from untrusted input", author="alice", sink=sink,
    )  # fmt: skip
    record_decision(
        index, r1, "CVE-2025-47917", MBEDTLS, state="resolved", fixed_in="3.6.4",
        detail="fixed upstream in 3.6.4; release 2 upgrades", author="bob", sink=sink,
    )  # fmt: skip


def test_two_releases_carry_reopen_and_hold(full_index: VulnIndex) -> None:
    sink = MemorySink()
    rid1, r1, created, report1 = register_release(full_index, release_sbom("3.5.1"), "r1.cdx.json", sink=sink)
    assert created and not (report1.carried or report1.held or report1.reopened)
    _decide_r1(full_index, r1, sink)
    before = len(sink.events)

    rid2, r2, created, report = register_release(full_index, release_sbom("3.6.4"), "r2.cdx.json", sink=sink)
    assert created and rid2 == rid1 + 1
    assert [(d.vuln_id, d.component_ref) for d in report.carried] == [("CVE-2024-8176", EXPAT)]
    assert [(d.vuln_id, d.component_ref) for d in report.held] == [("CVE-2025-47917", MBEDTLS)]
    assert [(d.vuln_id, d.component_ref) for d in report.reopened] == [("CVE-2025-27809", MBEDTLS)]

    cur = current_decisions(full_index, r2.serial)
    expat = cur[(EXPAT, "CVE-2024-8176")]
    assert (expat.state, expat.justification, expat.detail, expat.author, expat.source) == (
        "not_affected", "requires_configuration", "XML_DTD disabled: no entity expansion", "alice", "carried",
    )  # fmt: skip
    assert expat.carried_from is not None and expat.carried_from.startswith(f"release {rid1} (decision ")
    reopened = cur[(MBEDTLS, "CVE-2025-27809")]
    assert reopened.state == "in_triage" and reopened.source == "reopened"
    assert "changed from 3.5.1 to 3.6.4" in reopened.detail
    fixed = cur[(MBEDTLS, "CVE-2025-47917")]
    assert (fixed.state, fixed.fixed_in) == ("resolved", "3.6.4")

    # the scan of release 2 shows it: expat and the fixed Mbed TLS CVE closed, the re-opened one not
    findings = {(f.component_ref, f.vuln_id): f for f in scan(full_index, r2).findings}
    assert findings[(EXPAT, "CVE-2024-8176")].handled
    assert findings[(MBEDTLS, "CVE-2025-47917")].handled
    assert not findings[(MBEDTLS, "CVE-2025-27809")].handled

    # every inherited decision is audited, naming the decision it came from
    events = [e for e in sink.events[before:] if e.type == "vuln.decision"]
    assert len(events) == 3
    assert {e.data["source"] for e in events} == {"carried", "reopened"}
    assert all(e.data["carried_from_release"] == rid1 and e.objects["sbom_serial"] == r2.serial for e in events)

    # registering release 2 again inherits nothing twice
    _, _, created, again = register_release(full_index, release_sbom("3.6.4"), "r2.cdx.json", sink=sink)
    assert not created and not again.carried and len(current_decisions(full_index, r2.serial)) == 3


def test_fixed_in_does_not_hold_below_the_fix(full_index: VulnIndex) -> None:
    sink = MemorySink()
    _, r1, _, _ = register_release(full_index, release_sbom("3.5.1"), sink=sink)
    _decide_r1(full_index, r1, sink)
    older = release_sbom("3.6.0", serial="urn:uuid:0e6f7c62-7f0b-4b54-9a55-360000000000")
    _, _, _, report = register_release(full_index, older, sink=sink)
    assert ("CVE-2025-47917", MBEDTLS) in {(d.vuln_id, d.component_ref) for d in report.reopened}
    assert not report.held


def test_applies_to_range_carries_across_versions(full_index: VulnIndex) -> None:
    sink = MemorySink()
    _, r1, _, _ = register_release(full_index, release_sbom("3.5.1"), sink=sink)
    record_decision(
        full_index, r1, "CVE-2025-27809", MBEDTLS, state="not_affected", justification="requires_configuration",
        applies_to=">=3.5.0,<3.7.0", detail="MBEDTLS_SSL_SERVER_NAME_INDICATION off", author="alice", sink=sink,
    )  # fmt: skip
    _, _, _, report = register_release(full_index, release_sbom("3.6.4"), sink=sink)
    assert [(d.vuln_id, d.state) for d in report.carried] == [("CVE-2025-27809", "not_affected")]
    with pytest.raises(UsageError, match="does not contain"):
        record_decision(
            full_index, r1, "CVE-2025-27810", MBEDTLS, state="in_triage", applies_to=">=3.6.0",
            detail="x", author="a", sink=sink,
        )  # fmt: skip


def test_reused_serial_with_different_content_is_refused(full_index: VulnIndex) -> None:
    sink = MemorySink()
    register_release(full_index, release_sbom("3.5.1"), sink=sink)
    changed = release_sbom("3.6.4", serial=SERIALS["3.5.1"])
    with pytest.raises(InputError, match="already registered as release 1 with different content"):
        register_release(full_index, changed, "r2.cdx.json", sink=sink)
    assert len(full_index.releases()) == 1


def test_wrong_component_lists_candidates_and_cve_is_case_insensitive(full_index: VulnIndex) -> None:
    r1 = read_sbom(release_sbom("3.5.1"))
    with pytest.raises(InputError, match=r"candidates: .*component:mbedtls/mbedtls"):
        record_decision(full_index, r1, "CVE-2025-27809", "mbedtls", state="in_triage", detail="x", author="a",
                        sink=MemorySink())  # fmt: skip
    d = record_decision(full_index, r1, "cve-2025-27809", MBEDTLS, state="in_triage", detail="x", author="a",
                        sink=MemorySink())  # fmt: skip
    assert d.vuln_id == "CVE-2025-27809"


def test_fixed_in_only_with_resolved(full_index: VulnIndex) -> None:
    r1 = read_sbom(release_sbom("3.5.1"))
    with pytest.raises(UsageError, match="only valid with state resolved"):
        record_decision(full_index, r1, "CVE-2025-27809", MBEDTLS, state="not_affected",
                        justification="code_not_present", fixed_in="3.6.4", detail="x", author="a",
                        sink=MemorySink())  # fmt: skip


BATCH_YAML = b"""
decisions:
  - cve: cve-2024-8176
    component: binary:expat
    state: not_affected
    justification: requires_configuration
    detail: XML_DTD disabled
  - cve: CVE-2025-47917
    component: component:mbedtls/mbedtls
    state: resolved
    fixed_in: 3.6.4
    detail: upgraded
  - cve: CVE-2025-27810
    component: component:mbedtls/mbedtls
    state: exploitable
    responses: [update, workaround_available]
    detail: upgrade planned
"""


def test_batch_yaml_and_csv_one_transaction(full_index: VulnIndex) -> None:
    r1 = read_sbom(release_sbom("3.5.1"))
    sink = MemorySink()
    stored = record_decisions(
        full_index, r1, read_batch(BATCH_YAML, "d.yml"), author="carol", sink=sink, source="batch"
    )
    assert [d.vuln_id for d in stored] == ["CVE-2024-8176", "CVE-2025-47917", "CVE-2025-27810"]
    assert stored[2].responses == ("update", "workaround_available") and stored[0].author == "carol"
    csv_text = (
        "cve,component,state,justification,responses,detail\n"
        "CVE-2025-27809,component:mbedtls/mbedtls,not_affected,code_not_reachable,,no SNI\n"
        "CVE-2025-49087,component:mbedtls/nope,in_triage,,,typo in the ref\n"
    )
    with pytest.raises(InputError, match="decision 2: component 'component:mbedtls/nope'"):
        record_decisions(full_index, r1, read_batch(csv_text.encode(), "d.csv"), author="carol", sink=sink)
    # nothing of the failed batch was written
    assert (MBEDTLS, "CVE-2025-27809") not in current_decisions(full_index, r1.serial)
    with pytest.raises(InputError, match="unknown field"):
        read_batch(b"- cve: CVE-2025-1\n  componnet: x\n", "d.yml")
