"""The VEX-to-SBOM binding rules and the manifest path rule, on small documents."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.evidence import binding
from medfw.evidence.verify import _safe_rel

SERIAL = "urn:uuid:3aacc2a9-b7fd-4f06-8cf6-baa46ba7cf25"
SBOM = {
    "serialNumber": SERIAL,
    "version": 1,
    "metadata": {"component": {"bom-ref": "fw", "name": "fw"}},
    "components": [{"bom-ref": "lib", "name": "lib", "components": [{"bom-ref": "lib/sub", "name": "sub"}]}],
}
LINK = "urn:cdx:3aacc2a9-b7fd-4f06-8cf6-baa46ba7cf25/1#"


def _cdx(ref: str, serial: str = SERIAL) -> dict:
    return {
        "metadata": {"properties": [{"name": "medfw:sbom-serial", "value": serial}]},
        "vulnerabilities": [{"id": "CVE-1", "affects": [{"ref": ref}]}],
    }


def test_refs_include_nested_and_primary() -> None:
    assert binding.sbom_refs(SBOM) == {"fw", "lib", "lib/sub"}


def test_cyclonedx_binding() -> None:
    assert binding.check_vex_cyclonedx(_cdx(LINK + "lib/sub"), SBOM) == []
    assert "does not exist" in binding.check_vex_cyclonedx(_cdx(LINK + "nope"), SBOM)[0]
    assert "medfw:sbom-serial" in binding.check_vex_cyclonedx(_cdx(LINK + "lib", "urn:uuid:x"), SBOM)[0]
    other = "urn:cdx:00000000-0000-4000-8000-000000000000/1#lib"
    assert "bound to SBOM urn:uuid:00000000" in binding.check_vex_cyclonedx(_cdx(other), SBOM)[0]
    assert "not a BOM-Link" in binding.check_vex_cyclonedx(_cdx("lib"), SBOM)[0]


def test_openvex_binding() -> None:
    doc = {"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"products": [{"@id": LINK + "lib"}]}]}
    assert binding.check_openvex(doc, SBOM) == []
    doc["statements"][0]["products"][0]["@id"] = LINK.replace("/1#", "/2#") + "lib"
    assert "version 2" in binding.check_openvex(doc, SBOM)[0]
    assert binding.check_openvex({"statements": "x"}, SBOM)[-1] == "statements: missing"


def test_scan_binding() -> None:
    scan = {"sbom": {"serial": SERIAL}, "findings": [{"component_ref": "lib"}]}
    assert binding.check_scan(scan, SBOM) == []
    scan["findings"].append({"component_ref": "ghost"})
    assert binding.check_scan(scan, SBOM) == ["findings[1].component_ref: 'ghost' does not exist in the SBOM"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab./\\\x00", max_size=12))
def test_safe_rel_never_escapes(path: str) -> None:
    rel = _safe_rel(path)
    if rel is not None:
        parts = rel.split("/")
        assert ".." not in parts and "." not in parts and "" not in parts
        assert not rel.startswith("/") and "\\" not in rel and "\x00" not in rel
