"""load_sbom: the typed view other parts of medfw read SBOMs through."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import InputError, ManifestError
from medfw.sbom import load_sbom

GOLDEN = Path(__file__).resolve().parents[1] / "vectors" / "sbom"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_golden_reads_the_same_in_json_and_xml(fmt: str) -> None:
    doc = load_sbom(GOLDEN / f"example-device.cdx.{fmt}")
    assert doc.format == fmt
    assert doc.spec_version == "1.6"
    assert doc.serial_number == "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79"
    assert doc.component is not None
    assert (doc.component.name, doc.component.version) == ("infusion-pump-fw", "1.0.0")
    mbedtls = doc.by_ref("component:mbedtls/mbedtls")
    assert mbedtls is not None
    assert mbedtls.cpes == (
        "cpe:2.3:a:arm:mbed_tls:3.6.1:*:*:*:*:*:*:*",
        "cpe:2.3:a:mbed-tls:mbedtls:3.6.1:*:*:*:*:*:*:*",
    )
    assert mbedtls.purl == "pkg:github/mbed-tls/mbedtls@v3.6.1"
    assert (mbedtls.support_level, mbedtls.end_of_support) == ("actively-maintained", "2027-03-31")
    assert (mbedtls.version, mbedtls.evidence_versions) == ("3.6.1", ("3.6.0",))
    lwip = doc.by_ref("component:lwip/lwip")
    assert lwip is not None
    assert [(e.cve, e.justification) for e in lwip.cve_excludes] == [("CVE-2020-22283", "vulnerable_code_not_present")]
    assert lwip.supplier == "Espressif Systems (Shanghai) CO LTD"
    assert "component:mbedtls/mbedtls" in doc.dependencies["component:mbedtls"]
    assert doc.lifecycles == ("build",)
    assert doc.tools == ("medfw",)


def test_json_and_xml_views_agree() -> None:
    a = load_sbom(GOLDEN / "example-device.cdx.json")
    b = load_sbom(GOLDEN / "example-device.cdx.xml")
    strip = lambda d: [(c.bom_ref, c.name, c.version, c.purl, c.cpes, c.supplier, c.cve_excludes) for c in d.components]  # noqa: E731
    assert sorted(strip(a), key=repr) == sorted(strip(b), key=repr)
    assert dict(a.dependencies) == dict(b.dependencies)


def test_nested_components_are_flattened() -> None:
    data = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "components": [{"type": "library", "name": "a", "components": [{"type": "library", "name": "b"}]}],
    }
    doc = load_sbom(json.dumps(data).encode())
    assert [c.name for c in doc.components] == ["a", "b"]


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{", b'{"bomFormat": "SPDX"}', b'{"bomFormat": "CycloneDX"}', b"<x/>", b"<bom"],
)
def test_garbage_is_a_manifest_error(data: bytes) -> None:
    with pytest.raises(ManifestError):
        load_sbom(data)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        load_sbom(tmp_path / "nope.cdx.json")
    assert e.value.path is not None


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_cdx_keys = st.sampled_from(["components", "metadata", "dependencies", "version", "serialNumber", "name", "cpe"])
_meta_keys = st.sampled_from(["authors", "tools", "lifecycles", "component", "supplier", "timestamp"])
_comp_keys = st.sampled_from(["name", "properties", "licenses", "hashes", "evidence", "supplier", "components"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_meta_keys, _json_values, max_size=4), st.dictionaries(_comp_keys, _json_values, max_size=5))
def test_random_metadata_and_components_only_raise_manifest_errors(
    meta: dict[str, object], comp: dict[str, object]
) -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": meta, "components": [{"name": "x", **comp}]}
    with contextlib.suppress(ManifestError):
        load_sbom(json.dumps(doc).encode())


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_cdx_keys, _json_values, max_size=4))
def test_random_cyclonedx_like_json_only_raises_manifest_errors(data: dict[str, object]) -> None:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", **data}
    with contextlib.suppress(ManifestError):
        load_sbom(json.dumps(doc).encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_manifest_errors(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        load_sbom(b"<" + data)
    with contextlib.suppress(ManifestError):
        load_sbom(b"{" + data)
