"""Manifest parsing (esp-idf-sbom keys + medfw extensions), on the real ESP-IDF manifests and on bad input."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import ManifestError, MedfwError
from medfw.sbom._yaml import load_yaml_bytes
from medfw.sbom.manifest import COMPONENT_KEYS, expand_cpe, expand_purl, gitmodule_manifest, parse_manifest

IDF_TREE = Path(__file__).parent.parent / "vectors" / "esp-idf-tree"


@pytest.mark.parametrize("path", sorted(IDF_TREE.glob("components/**/sbom*.yml")), ids=lambda p: p.parent.name)
def test_every_real_esp_idf_manifest_parses(path: Path) -> None:
    m = parse_manifest(load_yaml_bytes(path.read_bytes(), path=str(path)), source=str(path))
    assert m.supplier is not None
    assert m.supplier.kind == "Organization"
    for cpe in m.cpe:
        assert expand_cpe(cpe, m.version).startswith("cpe:2.3:")


def test_real_freertos_manifest_values() -> None:
    path = IDF_TREE / "components/freertos/FreeRTOS-Kernel/sbom.yml"
    m = parse_manifest(load_yaml_bytes(path.read_bytes(), path=str(path)), source=str(path))
    assert m.name == "freertos"
    assert m.version == "10.5.1"
    assert expand_cpe(m.cpe[0], m.version) == "cpe:2.3:o:amazon:freertos:10.5.1:*:*:*:*:*:*:*"
    assert m.originator is not None
    assert m.originator.name == "Amazon Web Services"
    assert [e.cve for e in m.cve_excludes] == ["CVE-2024-28115"]


def test_unquoted_version_keeps_its_digits() -> None:
    m = parse_manifest(load_yaml_bytes(b"version: 2.10\n", path="x"), source="x")
    assert m.version == "2.10"


def test_several_cpes_and_purl_placeholder() -> None:
    m = parse_manifest(
        {
            "version": "3.6.2",
            "cpe": ["cpe:2.3:a:arm:mbed_tls:{}:*:*:*:*:*:*:*", "cpe:2.3:a:mbed-tls:mbedtls:{}:*:*:*:*:*:*:*"],
            "purl": "pkg:github/Mbed-TLS/mbedtls@v{}",
        },
        source="m.yml",
    )
    assert [expand_cpe(c, m.version) for c in m.cpe] == [
        "cpe:2.3:a:arm:mbed_tls:3.6.2:*:*:*:*:*:*:*",
        "cpe:2.3:a:mbed-tls:mbedtls:3.6.2:*:*:*:*:*:*:*",
    ]
    assert m.purl is not None
    assert expand_purl(m.purl, m.version) == "pkg:github/mbed-tls/mbedtls@v3.6.2"


def test_version_with_cpe_special_characters_is_escaped() -> None:
    assert expand_cpe("cpe:2.3:a:x:y:{}:*:*:*:*:*:*:*", "1.0~rc1") == "cpe:2.3:a:x:y:1.0\\~rc1:*:*:*:*:*:*:*"


def test_supplier_with_email_and_url() -> None:
    m = parse_manifest(
        {"supplier": "Organization: protobuf-c community <https://groups.google.com/g/protobuf-c> (x@y.org)"},
        source="m",
    )
    assert m.supplier is not None
    assert (m.supplier.name, m.supplier.url, m.supplier.email) == (
        "protobuf-c community",
        "https://groups.google.com/g/protobuf-c",
        "x@y.org",
    )


def test_medfw_extensions() -> None:
    m = parse_manifest(
        {
            "support-level": "actively-maintained",
            "end-of-support": "2027-03-31",
            "hashes": {"SHA-256": "AB" * 32},
            "cve-exclude-list": [{"cve": "CVE-2024-1234", "reason": "r", "justification": "code_not_present"}],
        },
        source="m",
    )
    assert m.support_level == "actively-maintained"
    assert m.end_of_support == "2027-03-31"
    assert m.hashes == (("SHA-256", "ab" * 32),)
    assert m.cve_excludes[0].justification == "code_not_present"


def test_project_keys_only_in_project_manifests() -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest({"components": []}, source="m.yml")
    assert (e.value.path, e.value.field) == ("m.yml", "components")
    assert parse_manifest({"components": []}, source="m.yml", project=True).components == ()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"nmae": "x"}, "nmae"),
        ({"cpe": "cpe:2.3:a:x:y"}, "cpe"),
        ({"cpe": ["cpe:2.3:a:x:y:{}:*:*:*:*:*:*:*", "cpe:/a:x"]}, "cpe"),
        ({"purl": "pkg:"}, "purl"),
        ({"license": "GPL-2.0-only WITH"}, "license"),
        ({"license": "FooBar"}, "license"),
        ({"originator": "Jouni Malinen"}, "originator"),
        ({"version": ["1"]}, "version"),
        ({"url": "ftp://x"}, "url"),
        ({"hash": "xyz"}, "hash"),
        ({"support-level": "sometimes"}, "support-level"),
        ({"end-of-support": "soon"}, "end-of-support"),
        ({"cve-exclude-list": [{"cve": "not-a-cve!", "reason": "r"}]}, "cve-exclude-list[0].cve"),
        (
            {"cve-exclude-list": [{"cve": "CVE-2024-1", "reason": "r", "justification": "meh"}]},
            "cve-exclude-list[0].justification",
        ),
        ({"cve-exclude-list": [{"cve": "CVE-2024-1", "reason": "r", "extra": 1}]}, "cve-exclude-list[0].extra"),
        ({"manifests": [{"path": "x.yml"}]}, "manifests[0].dest"),
        ({"document": {"supplier": {"name": "Organization: X", "phone": "1"}}}, "document.supplier.phone"),
        ({"type": "gadget"}, "type"),
    ],
)
def test_bad_values_name_the_key(data: dict[str, object], field: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(data, source="bad.yml")
    assert e.value.path == "bad.yml"
    assert e.value.field == field


def test_not_a_mapping() -> None:
    with pytest.raises(ManifestError):
        parse_manifest(["a"], source="m")


def test_gitmodule_keys_become_a_manifest() -> None:
    m = gitmodule_manifest(
        {
            "path": ["components/x"],
            "sbom-version": ["1.4.1"],
            "sbom-cpe": ["cpe:2.3:a:protobuf-c_project:protobuf-c:{}:*:*:*:*:*:*:*"],
            "sbom-supplier": ["Person: Ken MacKay"],
            "sbom-cve-exclude-list": ["CVE-2022-33070 Fixed in the fork", "CVE-2022-48468 Not used"],
        },
        source=".gitmodules submodule x",
    )
    assert m.version == "1.4.1"
    assert [(e.cve, e.reason) for e in m.cve_excludes] == [
        ("CVE-2022-33070", "Fixed in the fork"),
        ("CVE-2022-48468", "Not used"),
    ]


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(COMPONENT_KEYS)), _values, max_size=6))
def test_random_manifests_only_raise_manifest_errors(data: dict[str, object]) -> None:
    try:
        parse_manifest(data, source="fuzz.yml")
    except ManifestError as e:
        error: ManifestError | None = e
    else:
        error = None
    assert error is None or error.path == "fuzz.yml"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_random_yaml_bytes_only_raise_medfw_errors(data: bytes) -> None:
    with contextlib.suppress(MedfwError):
        parse_manifest(load_yaml_bytes(data, path="fuzz.yml"), source="fuzz.yml")


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "version", "cpe", "license", "supplier"]), st.text(max_size=40)))
def test_yaml_round_trip_of_string_fields(data: dict[str, str]) -> None:
    text = yaml.safe_dump(data).encode()
    try:
        m = parse_manifest(load_yaml_bytes(text, path="f"), source="f")
    except ManifestError:
        return
    if "name" in data:
        assert m.name == data["name"]
