"""VEX round trip: CycloneDX 1.6 (schema-valid) and OpenVEX 0.2, re-import gives the same decisions."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest

from medfw.audit.sink import MemorySink
from medfw.errors import InputError
from medfw.vuln import current_decisions, decision_history, export_vex, record_decision, scan
from medfw.vuln.decisions import import_decisions
from medfw.vuln.index import VulnIndex
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.vex import OPENVEX_CONTEXT, read_vex, validate_cyclonedx

SERIAL = "urn:uuid:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def _setup(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> bytes:
    data = sbom_factory(
        [
            {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"},
            {
                "bom-ref": "ossl",
                "name": "openssl",
                "version": "1.0.1f",
                "cpe": "cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*",
            },
        ],
        serial=SERIAL,
    )
    sbom = read_sbom(data)
    sink = MemorySink()
    t = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
    record_decision(
        index,
        sbom,
        "CVE-2014-0160",
        "ossl",
        state="not_affected",
        justification="requires_configuration",
        detail="no heartbeat",
        author="user:qa",
        sink=sink,
        now=t,
    )
    record_decision(
        index,
        sbom,
        "CVE-2024-2398",
        "curl",
        state="exploitable",
        responses=("update",),
        detail="upgrade to 8.7.1",
        author="user:qa",
        sink=sink,
        now=t,
    )
    record_decision(
        index,
        sbom,
        "CVE-2024-7264",
        "curl",
        state="resolved",
        detail="patched in our fork",
        author="user:qa",
        sink=sink,
        now=t,
    )
    record_decision(
        index, sbom, "CVE-2024-8096", "curl", state="in_triage", detail="analysing", author="user:qa", sink=sink, now=t
    )
    return data


def _key(index: VulnIndex) -> set[tuple[str, str, str, str | None, tuple[str, ...], str]]:
    return {
        (k[0], k[1], d.state, d.justification, d.responses, d.detail)
        for k, d in current_decisions(index, SERIAL).items()
    }


@pytest.mark.parametrize("fmt", ["cyclonedx", "openvex"])
def test_round_trip(fmt: str, full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    data = _setup(full_index, sbom_factory)
    before = _key(full_index)
    doc = export_vex(full_index, data, fmt)
    if fmt == "cyclonedx":
        assert validate_cyclonedx(doc) is None
        assert all(
            a["ref"].startswith("urn:cdx:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/1#")
            for v in doc["vulnerabilities"]
            for a in v["affects"]
        )
    else:
        assert doc["@context"] == OPENVEX_CONTEXT and doc["version"] == 1
        for st in doc["statements"]:
            assert st["status"] in {"not_affected", "affected", "fixed", "under_investigation"}
            if st["status"] == "not_affected":
                assert st.get("justification") or st.get("impact_statement")
            if st["status"] == "affected":
                assert st["action_statement"]
    decisions = read_vex(json.dumps(doc).encode())
    assert {(d.component_ref, d.vuln_id, d.state, d.justification, d.responses, d.detail) for d in decisions} == before
    added, unchanged = import_decisions(full_index, decisions, sink=MemorySink())
    assert (added, unchanged) == (0, 4)


def test_import_into_fresh_index(full_index_path, sbom_factory: Callable[..., bytes], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from medfw.vuln import open_index

    a = tmp_path / "a.db"
    b = tmp_path / "b.db"
    a.write_bytes(full_index_path.read_bytes())
    b.write_bytes(full_index_path.read_bytes())
    ia, ib = open_index(str(a)), open_index(str(b))
    _setup(ia, sbom_factory)
    for fmt in ("cyclonedx", "openvex"):
        doc = export_vex(
            ia,
            sbom_factory(
                [
                    {"bom-ref": "curl", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"},
                    {
                        "bom-ref": "ossl",
                        "name": "openssl",
                        "version": "1.0.1f",
                        "cpe": "cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*",
                    },
                ],
                serial=SERIAL,
            ),
            fmt,
        )
        sink = MemorySink()
        added, _ = import_decisions(ib, read_vex(json.dumps(doc).encode()), sink=sink)
        assert _key(ia) == _key(ib)
        assert len(sink.of_type("vuln.decision")) == added
    assert len(decision_history(ib, SERIAL)) == 4
    ia.close()
    ib.close()


def test_vex_overlay_in_scan(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    data = _setup(full_index, sbom_factory)
    doc = export_vex(full_index, data, "openvex")
    doc["statements"][0]["status_notes"] = "overlay only"
    doc["statements"][0]["status"] = "fixed"
    doc["statements"][0].pop("justification", None)  # a justification does not fit "fixed"
    overlay = read_vex(json.dumps(doc).encode())
    f = next(
        x
        for x in scan(full_index, data, vex=overlay).findings
        if x.vuln_id == doc["statements"][0]["vulnerability"]["name"]
    )
    assert f.decision is not None and f.decision.state == "resolved"


def test_vex_overlay_for_another_sbom_is_ignored(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    data = _setup(full_index, sbom_factory)
    doc = export_vex(full_index, data, "cyclonedx")
    other = sbom_factory([{"bom-ref": "curl", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"}])
    result = scan(full_index, other, vex=read_vex(json.dumps(doc).encode()))
    assert all(f.decision is None for f in result.findings)
    assert any("other SBOMs ignored" in w for w in result.warnings)


def test_bad_vex_documents() -> None:
    with pytest.raises(InputError, match="not a VEX"):
        read_vex(b'{"foo": 1}')
    with pytest.raises(InputError, match="schema"):
        read_vex(
            json.dumps(
                {"bomFormat": "CycloneDX", "specVersion": "1.6", "vulnerabilities": [{"analysis": {"state": "nope"}}]}
            ).encode()
        )
    bad = {
        "@context": OPENVEX_CONTEXT,
        "@id": "x",
        "author": "a",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [{"vulnerability": {"name": "CVE-2014-0160"}, "status": "maybe", "products": []}],
    }
    with pytest.raises(InputError, match="status"):
        read_vex(json.dumps(bad).encode())
