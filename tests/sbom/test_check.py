"""Schema validation and NTIA / CISA 2024 / FDA completeness scoring."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import ManifestError
from medfw.sbom import check_sbom

GOLDEN = Path(__file__).resolve().parents[1] / "vectors" / "sbom"


def _golden() -> dict:
    return json.loads((GOLDEN / "example-device.cdx.json").read_bytes())


def _failing(report: object) -> list[tuple[str | None, tuple[str, ...]]]:
    return [(c.bom_ref, c.missing_required) for c in report.components if c.missing_required]  # type: ignore[attr-defined]


def test_golden_fails_only_for_the_undeclared_binary_finding() -> None:
    report = check_sbom((GOLDEN / "example-device.cdx.json").read_bytes())
    assert report.schema_valid
    assert not report.passed
    # expat was found in the firmware image but no manifest declares it: no supplier, no support data
    assert _failing(report) == [("binary:expat", ("supplier", "support-level", "end-of-support"))]
    assert 0.5 < report.score < 1.0
    mbedtls = next(c for c in report.components if c.bom_ref == "component:mbedtls/mbedtls")
    assert mbedtls.warnings[0].startswith("version mismatch: declared 3.6.1, found 3.6.0")
    assert "copyright" in mbedtls.missing_recommended
    expat = next(c for c in report.components if c.bom_ref == "binary:expat")
    assert "found in the binary but not declared by any manifest" in expat.warnings


def test_xml_golden_gives_the_same_verdict() -> None:
    report = check_sbom((GOLDEN / "example-device.cdx.xml").read_bytes())
    assert report.schema_valid
    assert _failing(report) == [("binary:expat", ("supplier", "support-level", "end-of-support"))]


def test_component_without_version_fails_naming_it() -> None:
    doc = _golden()
    comp = next(c for c in doc["components"] if c["bom-ref"] == "component:lwip/lwip")
    del comp["version"]
    report = check_sbom(json.dumps(doc).encode())
    assert report.schema_valid
    assert not report.passed
    assert ("component:lwip/lwip", ("version",)) in _failing(report)


def test_missing_fda_fields_and_supplier_fail() -> None:
    doc = _golden()
    comp = next(c for c in doc["components"] if c["bom-ref"] == "component:log")
    comp["properties"] = [p for p in comp["properties"] if not p["name"].startswith(("medfw:support", "cdx:lifecycle"))]
    del comp["supplier"]
    report = check_sbom(json.dumps(doc).encode())
    log = next(c for c in report.components if c.bom_ref == "component:log")
    assert log.missing_required == ("supplier", "support-level", "end-of-support")
    assert not report.passed


def test_component_outside_the_dependency_graph_fails() -> None:
    doc = _golden()
    doc["dependencies"] = [d for d in doc["dependencies"] if d["ref"] != "firmware:infusion-pump-fw"]
    report = check_sbom(json.dumps(doc).encode())
    assert all("dependency" in c.missing_required for c in report.components)


def test_schema_violation_fails() -> None:
    doc = _golden()
    doc["components"][0]["type"] = "gizmo"
    report = check_sbom(json.dumps(doc).encode())
    assert not report.schema_valid
    assert report.schema_error
    assert not report.passed


def test_document_level_elements() -> None:
    doc = _golden()
    del doc["metadata"]["timestamp"]
    del doc["metadata"]["lifecycles"]
    report = check_sbom(json.dumps(doc).encode())
    assert report.document_missing_required == ("timestamp",)
    assert report.document_missing_recommended == ("sbom-type",)
    assert report.to_dict()["ok"] is False


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["components", "metadata", "dependencies", "version"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
            max_leaves=10,
        ),
        max_size=3,
    )
)
def test_random_documents_give_a_report_or_a_manifest_error(data: dict[str, object]) -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", **data}
    try:
        report = check_sbom(json.dumps(doc).encode())
    except ManifestError:
        return
    assert report.passed in (True, False)
