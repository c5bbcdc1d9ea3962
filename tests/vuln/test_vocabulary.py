"""The one VEX vocabulary: mappings and lossless round trips CycloneDX → OpenVEX → CSAF → CycloneDX."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import InputError
from medfw.vuln import scan
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Decision, ScanInput
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.vex import export_vex, read_vex
from medfw.vuln.vocabulary import (
    ALL_JUSTIFICATION_LABELS,
    Justification,
    OpenVexStatus,
    Response,
    State,
    VexJustification,
    check_analysis,
    csaf_status,
    normalize_vuln_id,
    openvex_status,
    parse_justification,
    state_from_openvex,
    vex_justification,
)

from .conftest import make_sbom

SERIAL = "urn:uuid:11111111-2222-3333-4444-555555555555"


def _sbom() -> ScanInput:
    return read_sbom(
        make_sbom(
            [
                {
                    "bom-ref": "mbedtls",
                    "name": "mbedtls",
                    "version": "3.5.1",
                    "purl": "pkg:github/mbed-tls/mbedtls@v3.5.1",
                    "cpe": "cpe:2.3:a:arm:mbed_tls:3.5.1:*:*:*:*:*:*:*",
                },
                {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"},
            ],
            serial=SERIAL,
        )
    )


def _combinations() -> list[tuple[State, Justification | None, tuple[Response, ...]]]:
    out: list[tuple[State, Justification | None, tuple[Response, ...]]] = []
    for state in State:
        justifications: Sequence[Justification | None] = list(Justification) if state == State.NOT_AFFECTED else [None]
        for just in justifications:
            for responses in ((), (Response.UPDATE,), tuple(Response)):
                if check_analysis(state, just, responses) is None:
                    out.append((state, just, responses))
    return out


def _decisions(combos: Sequence[tuple[State, Justification | None, tuple[Response, ...]]]) -> list[Decision]:
    base = dt.datetime(2026, 11, 3, 9, 30, 15, tzinfo=dt.UTC)
    return [
        Decision(
            SERIAL,
            "mbedtls" if i % 2 else "curl",
            f"CVE-2026-{1000 + i}",
            str(state),
            None if just is None else str(just),
            tuple(str(r) for r in responses),
            f"reasoning #{i}: «{state}» — line one\nline two",
            f"alice-{i % 3}",
            base + dt.timedelta(minutes=i),
            "cli",
        )
        for i, (state, just, responses) in enumerate(combos)
    ]


def _exact(ds: Sequence[Decision]) -> set[tuple[object, ...]]:
    return {
        (d.serial, d.component_ref, d.vuln_id, d.state, d.justification, d.responses, d.detail, d.author, d.timestamp)
        for d in ds
    }


def _through(fmt: str, sbom: ScanInput, ds: Sequence[Decision]) -> list[Decision]:
    doc = export_vex(sbom, ds, fmt, author="Acme Medical PSIRT")
    return read_vex(json.dumps(doc).encode(), f"<{fmt}>")


def test_every_state_and_justification_survives_cyclonedx_openvex_csaf_and_back() -> None:
    combos = _combinations()
    # every state, and every justification of not_affected, is covered
    assert {c[0] for c in combos} == set(State)
    assert {c[1] for c in combos if c[1] is not None} == set(Justification)
    sbom = _sbom()
    original = _decisions(combos)
    via_cdx = _through("cyclonedx", sbom, original)
    via_openvex = _through("openvex", sbom, via_cdx)
    via_csaf = _through("csaf", sbom, via_openvex)
    back = _through("cyclonedx", sbom, via_csaf)
    assert _exact(via_cdx) == _exact(original)
    assert _exact(via_openvex) == _exact(original)
    assert _exact(via_csaf) == _exact(original)
    assert _exact(back) == _exact(original)


def test_openvex_keeps_each_statements_author_and_names_products_by_purl() -> None:
    sbom = _sbom()
    d = _decisions([(State.NOT_AFFECTED, Justification.CODE_NOT_REACHABLE, ())])[0]
    doc = export_vex(sbom, [d], "openvex", author="Acme Medical PSIRT")
    assert doc["author"] == "Acme Medical PSIRT"
    st0 = doc["statements"][0]
    assert st0["justification"] == "vulnerable_code_not_in_execute_path"
    assert st0["products"][0]["identifiers"]["purl"] == "pkg:generic/curl@8.4.0"
    assert read_vex(json.dumps(doc).encode())[0].author == "alice-0"


def test_csaf_export_names_products_by_purl_cpe_and_bom_link() -> None:
    sbom = _sbom()
    ds = _decisions([(State.NOT_AFFECTED, Justification.REQUIRES_ENVIRONMENT, ())] * 2)
    doc = export_vex(sbom, ds, "csaf", author="Acme")
    helpers = [p["product_identification_helper"] for p in doc["product_tree"]["full_product_names"]]
    assert {"purl", "cpe", "x_generic_uris"} <= set(next(h for h in helpers if "cpe" in h))
    vuln = doc["vulnerabilities"][0]
    assert vuln["flags"][0]["label"] == "vulnerable_code_cannot_be_controlled_by_adversary"
    assert vuln["threats"][0]["category"] == "impact"


def test_foreign_documents_use_the_native_tables() -> None:
    """Without medfw's annotation, the documented mapping is applied (the inverse of each CISA label)."""
    for label in VexJustification:
        j = parse_justification(label)
        assert vex_justification(j) == label
    for status in OpenVexStatus:
        assert openvex_status(state_from_openvex(status)) == status
    assert csaf_status(State.FALSE_POSITIVE) == "known_not_affected"
    assert parse_justification("vulnerable_code_not_in_execute_path") == Justification.CODE_NOT_REACHABLE
    assert {*Justification, *VexJustification} == ALL_JUSTIFICATION_LABELS
    with pytest.raises((ValueError, KeyError)):
        parse_justification("because")


def test_justification_that_does_not_fit_its_status_is_refused() -> None:
    doc = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "urn:uuid:x",
        "author": "supplier",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-1"},
                "products": [{"@id": f"urn:cdx:{SERIAL[9:]}/1#curl"}],
                "status": "affected",
                "justification": "component_not_present",
            }
        ],
    }
    with pytest.raises(InputError, match="does not fit"):
        read_vex(json.dumps(doc).encode())


def test_cve_ids_are_case_insensitive() -> None:
    assert normalize_vuln_id(" cve-2024-28755 ") == "CVE-2024-28755"
    assert normalize_vuln_id("GHSA-abcd-efgh-ijkl") == "GHSA-abcd-efgh-ijkl"


@settings(max_examples=25, deadline=None)
@given(
    detail=st.text(min_size=1, max_size=80, alphabet=st.characters(blacklist_categories=("Cs",))).filter(
        lambda t: t.strip() and "medfw-analysis" not in t
    ),
    author=st.text(min_size=1, max_size=20).filter(str.strip),
)
def test_any_detail_and_author_round_trip(detail: str, author: str) -> None:
    sbom = _sbom()
    d = Decision(
        SERIAL,
        "curl",
        "CVE-2026-1000",
        "exploitable",
        None,
        ("update",),
        detail,
        author,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "cli",
    )
    for fmt in ("cyclonedx", "openvex", "csaf"):
        (back,) = _through(fmt, sbom, [d])
        assert (back.detail, back.author, back.state, back.responses) == (detail, author, d.state, d.responses), fmt


def test_manifest_exclusion_keeps_its_meaning(full_index: VulnIndex) -> None:
    """A cve-exclude justified in the CISA vocabulary is recorded as its CycloneDX equivalent, not rewritten."""
    exclude = {
        "cve": "CVE-2024-28755",
        "reason": "no renegotiation",
        "justification": "vulnerable_code_not_in_execute_path",
    }
    data = make_sbom(
        [
            {
                "bom-ref": "m",
                "name": "mbedtls",
                "version": "3.5.1",
                "cpe": "cpe:2.3:a:arm:mbed_tls:3.5.1:*:*:*:*:*:*:*",
                "properties": [{"name": "medfw:cve-exclude", "value": json.dumps(exclude)}],
            }
        ]
    )
    f = next(x for x in scan(full_index, data).findings if x.vuln_id == "CVE-2024-28755")
    assert f.decision is not None
    assert (f.decision.state, f.decision.justification, f.decision.source) == (
        "not_affected",
        "code_not_reachable",
        "sbom-exclude",
    )
