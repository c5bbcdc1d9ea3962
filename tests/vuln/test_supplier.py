"""Supplier VEX in: OpenVEX with purl products, CycloneDX VEX with purl refs, CSAF 2.0 VEX with a product tree and
version ranges — written here by hand — applied to the right components only, kept apart with provenance,
accepted only on purpose, conflicts listed, nothing half-imported.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit.sink import MemorySink
from medfw.errors import InputError
from medfw.vuln import current_decisions, record_decision, scan
from medfw.vuln.carryover import register_release
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import ScanInput
from medfw.vuln.supplier import AcceptPolicy, import_supplier_vex
from medfw.vuln.supplier_query import read_policy, supplier_statements
from medfw.vuln.vex import read_vex_document

from .test_carryover import EXPAT, MBEDTLS, release_sbom

OPENVEX: dict[str, Any] = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://psirt.example-supplier.invalid/vex/2026-0042",
    "author": "Example Module Vendor PSIRT",
    "timestamp": "2026-11-20T08:00:00Z",
    "version": 1,
    "statements": [
        {
            "vulnerability": {"name": "cve-2025-27809"},
            "products": [{"@id": "pkg:github/mbed-tls/mbedtls@v3.5.1"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "impact_statement": "our module never calls mbedtls_ssl_set_hostname() with untrusted input",
        },
        {
            "vulnerability": {"name": "CVE-2024-8176"},
            "products": [{"@id": "urn:example:expat", "identifiers": {"purl": "pkg:generic/expat@2.6.2"}}],
            "status": "affected",
            "action_statement": "update expat to 2.7.0",
        },
        {
            "vulnerability": {"name": "CVE-2024-8176"},
            "products": [{"@id": "pkg:generic/libxml2@2.12.0"}],
            "status": "not_affected",
            "justification": "component_not_present",
        },
    ],
}

CYCLONEDX: dict[str, Any] = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "serialNumber": "urn:uuid:6f0e5d2a-1c3b-4a5e-9f7d-2b8c4e6a0d11",
    "version": 3,
    "metadata": {"timestamp": "2026-11-21T10:00:00Z", "supplier": {"name": "Example TLS Vendor"}},
    "components": [
        {
            "type": "library",
            "bom-ref": "tls-364",
            "name": "mbedtls",
            "version": "3.6.4",
            "purl": "pkg:github/mbed-tls/mbedtls@v3.6.4",
        },
    ],
    "vulnerabilities": [
        {
            "id": "CVE-2025-27810",
            "analysis": {
                "state": "not_affected",
                "justification": "code_not_reachable",
                "detail": "the vulnerable path needs DTLS, disabled in this build",
            },
            "affects": [{"ref": "tls-364"}],
        }
    ],
}


def _csaf() -> dict[str, Any]:
    date = "2026-11-22T09:00:00Z"
    return {
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "notes": [{"category": "summary", "text": "Mbed TLS in our module", "title": "Summary"}],
            "publisher": {"category": "vendor", "name": "Example SoC Vendor", "namespace": "https://soc.invalid"},
            "title": "Mbed TLS VEX",
            "tracking": {
                "current_release_date": date, "id": "SOC-VEX-2026-007", "initial_release_date": date,
                "revision_history": [{"date": date, "number": "1", "summary": "Initial"}],
                "status": "final", "version": "1",
            },
        },
        "product_tree": {
            "branches": [{"category": "vendor", "name": "Arm", "branches": [{
                "category": "product_name", "name": "Mbed TLS", "branches": [
                    {"category": "product_version_range", "name": "vers:generic/>=3.5.0|<3.6.0",
                     "product": {"name": "Mbed TLS 3.5.x", "product_id": "MBEDTLS-35",
                                 "product_identification_helper": {"purl": "pkg:github/mbed-tls/mbedtls"}}},
                    {"category": "product_version", "name": "3.6.4",
                     "product": {"name": "Mbed TLS 3.6.4", "product_id": "MBEDTLS-364",
                                 "product_identification_helper": {
                                     "cpe": "cpe:2.3:a:arm:mbed_tls:3.6.4:*:*:*:*:*:*:*"}}},
                ]}]}],
        },
        "vulnerabilities": [
            {
                "cve": "CVE-2024-28755",
                "notes": [{"category": "description", "text": "SSL context reset issue", "title": "Description"}],
                "product_status": {"known_affected": ["MBEDTLS-35"], "fixed": ["MBEDTLS-364"]},
                "remediations": [{"category": "vendor_fix", "details": "upgrade to 3.6.0 or later",
                                  "product_ids": ["MBEDTLS-35"]}],
            },
            {
                "cve": "CVE-2025-49087",
                "notes": [{"category": "description", "text": "timing side channel", "title": "Description"}],
                "product_status": {"known_not_affected": ["MBEDTLS-35", "MBEDTLS-364"]},
                "flags": [{"label": "vulnerable_code_not_present", "product_ids": ["MBEDTLS-35", "MBEDTLS-364"]}],
            },
        ],
    }  # fmt: skip


def _releases(index: VulnIndex) -> tuple[ScanInput, ScanInput]:
    sink = MemorySink()
    _, r1, _, _ = register_release(index, release_sbom("3.5.1", fw_version="1.0.0"), sink=sink)
    _, r2, _, _ = register_release(index, release_sbom("3.6.4", fw_version="1.1.0"), sink=sink)
    return r1, r2


def _import(index: VulnIndex, doc: dict[str, Any], name: str, **kw: Any) -> Any:
    parsed = read_vex_document(json.dumps(doc).encode(), name)
    return import_supplier_vex(index, parsed, path=name, sink=MemorySink(), author="user:qa", **kw)


def _applied(report: Any) -> set[tuple[int, str, str, str]]:
    return {
        (a.release_id, a.component_ref, a.statement.vuln_id, str(a.statement.analysis.state)) for a in report.applied
    }


def test_openvex_purl_products_apply_to_the_right_components_only(full_index: VulnIndex) -> None:
    r1, _ = _releases(full_index)
    report = _import(full_index, OPENVEX, "supplier.openvex.json")
    assert _applied(report) == {
        (1, MBEDTLS, "CVE-2025-27809", "not_affected"),  # 3.5.1 only: release 2 has 3.6.4
        (1, EXPAT, "CVE-2024-8176", "exploitable"),
        (2, EXPAT, "CVE-2024-8176", "exploitable"),
    }  # libxml2 matches nothing
    assert not report.accepted
    # not accepted: the finding stays open, the statement is shown apart with its provenance
    finding = next(
        f for f in scan(full_index, r1).findings if (f.component_ref, f.vuln_id) == (MBEDTLS, "CVE-2025-27809")
    )
    assert not finding.handled
    listed = [s for s in supplier_statements(full_index, 1) if s["vuln_id"] == "CVE-2025-27809"]
    assert listed[0]["document"]["doc_id"] == OPENVEX["@id"] and listed[0]["supplier"] == OPENVEX["author"]
    assert len(listed[0]["document"]["sha256"]) == 64 and listed[0]["accepted"] is False
    assert _import(full_index, OPENVEX, "again.json").already_imported


def test_cyclonedx_vex_with_purl_refs(full_index: VulnIndex) -> None:
    _releases(full_index)
    report = _import(full_index, CYCLONEDX, "tls.cdx.json", accept=True)
    assert _applied(report) == {(2, MBEDTLS, "CVE-2025-27810", "not_affected")}
    (d,) = report.accepted
    assert (d.state, d.justification, d.source) == ("not_affected", "code_not_reachable", "supplier-vex")
    assert "Example TLS Vendor" in d.detail and "urn:uuid:6f0e5d2a" in d.detail


def test_csaf_product_tree_with_version_ranges_and_acceptance(full_index: VulnIndex) -> None:
    r1, r2 = _releases(full_index)
    report = _import(full_index, _csaf(), "soc.csaf.json", accept=True)
    assert _applied(report) == {
        (1, MBEDTLS, "CVE-2024-28755", "exploitable"),  # the range >=3.5.0 <3.6.0 holds 3.5.1
        (2, MBEDTLS, "CVE-2024-28755", "resolved"),  # 3.6.4 named by CPE, fixed
        (1, MBEDTLS, "CVE-2025-49087", "not_affected"),
        (2, MBEDTLS, "CVE-2025-49087", "not_affected"),
    }
    one = current_decisions(full_index, r1.serial)
    assert (one[(MBEDTLS, "CVE-2025-49087")].justification, one[(MBEDTLS, "CVE-2024-28755")].responses) == (
        "code_not_present", ("update",),
    )  # fmt: skip
    two = current_decisions(full_index, r2.serial)
    assert two[(MBEDTLS, "CVE-2024-28755")].state == "resolved"


def test_policy_and_conflicts(full_index: VulnIndex) -> None:
    r1, _ = _releases(full_index)
    record_decision(full_index, r1, "CVE-2025-27809", MBEDTLS, state="exploitable", responses=("update",),
                    detail="our own analysis: reachable", author="alice", sink=MemorySink())  # fmt: skip
    policy = read_policy(b"accept:\n  - supplier: example module vendor psirt\n    states: [not_affected]\n", "p.yml")
    assert policy == AcceptPolicy({"example module vendor psirt": frozenset({"not_affected"})})
    report = _import(full_index, OPENVEX, "supplier.openvex.json", policy=policy)
    assert any("manufacturer decided exploitable, the supplier says not_affected" in c for c in report.conflicts)
    # the manufacturer's own decision is not overridden; the "affected" statement is not in the policy
    assert not report.accepted
    assert current_decisions(full_index, r1.serial)[(MBEDTLS, "CVE-2025-27809")].author == "alice"
    other = copy.deepcopy(OPENVEX)
    other["@id"] = "https://other.invalid/vex/1"
    other["statements"][1]["status"] = "not_affected"
    other["statements"][1]["justification"] = "inline_mitigations_already_exist"
    other["author"] = "Another Vendor"
    report = _import(full_index, other, "other.openvex.json")
    assert (
        f"release 1 {EXPAT} CVE-2024-8176: Another Vendor says not_affected, Example Module Vendor PSIRT "
        f"({OPENVEX['@id']}) said exploitable"
    ) in report.conflicts
    listed = {(s["release_id"], s["vuln_id"], s["state"]) for s in supplier_statements(full_index)}
    assert (1, "CVE-2024-8176", "exploitable") in listed and (1, "CVE-2024-8176", "not_affected") in listed


def test_bad_supplier_documents(full_index: VulnIndex) -> None:
    _releases(full_index)
    bad = copy.deepcopy(OPENVEX)
    bad["statements"][0]["status"] = "probably_fine"
    with pytest.raises(InputError, match="unknown OpenVEX status"):
        read_vex_document(json.dumps(bad).encode())
    bad = copy.deepcopy(OPENVEX)
    bad["statements"][1]["justification"] = "component_not_present"  # on "affected"
    with pytest.raises(InputError, match="does not fit"):
        read_vex_document(json.dumps(bad).encode())
    csaf = _csaf()
    del csaf["document"]["tracking"]
    with pytest.raises(InputError, match="schema"):
        read_vex_document(json.dumps(csaf).encode())
    csaf = _csaf()
    csaf["vulnerabilities"][1]["flags"][0]["product_ids"] = ["NOPE"]
    with pytest.raises(InputError, match=r"6\.1\.1"):
        read_vex_document(json.dumps(csaf).encode())
    nothing = copy.deepcopy(OPENVEX)
    nothing["statements"] = [nothing["statements"][2]]
    report = _import(full_index, nothing, "nothing.json")
    assert report.applied == [] and report.statements == 1


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


def _mutations(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The document with one field (at any depth) replaced by arbitrary JSON."""

    def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        out = [prefix] if prefix else []
        if isinstance(node, dict):
            for k, v in node.items():
                out += paths(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out += paths(v, (*prefix, i))
        return out

    def put(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(base)
        node: Any = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return doc

    return st.builds(put, st.sampled_from(paths(base)), _JSON)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_mutations(OPENVEX), _mutations(CYCLONEDX), _mutations(_csaf())))
def test_hostile_vex_documents_fail_cleanly(doc: dict[str, Any]) -> None:
    """Whatever a field holds, reading raises InputError or gives statements; never another exception."""
    try:
        parsed = read_vex_document(json.dumps(doc).encode(), "fuzz.json")
    except InputError:
        return
    for s in parsed.statements:
        assert s.vuln_id and s.products
