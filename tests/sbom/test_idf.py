"""ESP-IDF build reader on a fixture built from the real ESP-IDF manifests and project_description template."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation import make_schemabased_validator

from medfw.errors import ManifestError
from medfw.sbom import generate_from_idf_build, load_sbom, read_idf_build, serialize
from medfw.sbom.idf import linked_archives

from ._idf_fixture import IdfProject, make_idf_project

ESPRESSIF = "Espressif Systems (Shanghai) CO LTD"

# ref -> (name, version, CPEs, supplier, excluded CVEs)
EXPECTED = {
    "framework:esp-idf": ("esp-idf", "5.5.1", ("cpe:2.3:a:espressif:esp-idf:5.5.1:*:*:*:*:*:*:*",), ESPRESSIF, ()),
    "component:main": ("main", "1.2.0", (), "Example Medical", ()),
    "component:freertos": ("freertos", "5.5.1", (), ESPRESSIF, ()),
    "component:freertos/FreeRTOS-Kernel": (
        "freertos",
        "10.5.1",
        ("cpe:2.3:o:amazon:freertos:10.5.1:*:*:*:*:*:*:*",),
        ESPRESSIF,
        ("CVE-2024-28115",),
    ),
    "component:wpa_supplicant": (
        "wpa_supplicant",
        "2.10",
        ("cpe:2.3:a:w1.fi:wpa_supplicant:2.10:*:*:*:*:*:*:*",),
        ESPRESSIF,
        ("CVE-2023-52160",),
    ),
    "component:esp_libc": ("esp_libc", "5.5.1", (), ESPRESSIF, ()),
    "component:esp_libc#sbom_newlibc.yml": (
        "newlib",
        "4.5.0",
        ("cpe:2.3:a:newlib_project:newlib:4.5.0:*:*:*:*:*:*:*",),
        ESPRESSIF,
        ("CVE-2024-30949",),
    ),
    "component:openthread": ("openthread component", "2025-06-12", (), ESPRESSIF, ()),
    "component:openthread/openthread": (
        "openthread",
        "2025-06-12",
        ("cpe:2.3:o:google:openthread:2025-06-12:*:*:*:*:*:*:*",),
        ESPRESSIF,
        ("CVE-2026-8369",),
    ),
    "component:console": ("console", "5.5.1", (), ESPRESSIF, ()),
    "component:console/argtable3": ("argtable3", "3.2.2", (), ESPRESSIF, ()),
    "component:spiffs": ("spiffs", "5.5.1", (), ESPRESSIF, ()),
    "component:spiffs/spiffs": ("spiffs", "0.2-265-gad902ca", (), "Peter Andersson", ()),
    "component:protobuf-c": ("protobuf-c", "5.5.1", (), ESPRESSIF, ()),
    "component:protobuf-c/protobuf-c": (
        "protobuf-c",
        "1.4.1",
        ("cpe:2.3:a:protobuf-c_project:protobuf-c:1.4.1:*:*:*:*:*:*:*",),
        "protobuf-c community",
        (),
    ),
    "component:lwip": ("lwip", "5.5.1", (), ESPRESSIF, ()),
    "component:mbedtls": ("mbedtls", "5.5.1", (), ESPRESSIF, ()),
    "component:espressif__cjson": (
        "espressif__cjson",
        "1.7.18",
        ("cpe:2.3:a:cjson_project:cjson:1.7.18:*:*:*:*:*:*:*",),
        ESPRESSIF,
        (),
    ),
}


def test_lists_exactly_the_linked_components(idf_project: IdfProject) -> None:
    spec = read_idf_build(idf_project.build)
    got = {
        c.ref: (
            c.name,
            c.version,
            c.cpes,
            c.supplier.name if c.supplier else None,
            tuple(e.cve for e in c.cve_excludes),
        )
        for c in spec.components
    }
    assert got == EXPECTED
    assert spec.name == "pump"
    assert spec.version == "1.2.0"
    assert spec.manufacturer is not None
    assert spec.manufacturer.name == "Example Medical"


def test_exclusion_reasons_are_the_manifest_text(idf_project: IdfProject) -> None:
    spec = read_idf_build(idf_project.build)
    kernel = next(c for c in spec.components if c.ref == "component:freertos/FreeRTOS-Kernel")
    assert kernel.cve_excludes[0].reason.startswith("Affects only ARMv7-M MPU ports")
    assert kernel.originator is not None
    assert kernel.originator.name == "Amazon Web Services"


def test_dependency_graph_follows_requirements(idf_project: IdfProject) -> None:
    spec = read_idf_build(idf_project.build)
    deps = {c.ref: c.depends_on for c in spec.components}
    # 'idf::lwip' alias resolved; unlinked requirements dropped
    assert deps["component:wpa_supplicant"] == ("component:lwip", "component:mbedtls")
    assert "component:freertos/FreeRTOS-Kernel" in deps["component:freertos"]
    assert deps["component:openthread"] == ("component:lwip", "component:mbedtls", "component:openthread/openthread")
    assert set(spec.depends_on) == {"component:main", "component:protobuf-c", "component:spiffs", "framework:esp-idf"}


def test_sbom_validates_against_cyclonedx_16_schema(idf_project: IdfProject) -> None:
    bom = generate_from_idf_build(idf_project.build)
    for fmt, out in (("json", OutputFormat.JSON), ("xml", OutputFormat.XML)):
        data = serialize(bom, fmt)
        assert make_schemabased_validator(out, SchemaVersion.V1_6).validate_str(data.decode()) is None
    doc = load_sbom(serialize(bom, "json"))
    assert {c.bom_ref for c in doc.components} == set(EXPECTED)
    assert doc.component is not None
    assert doc.component.type == "firmware"
    newlib = doc.by_ref("component:esp_libc#sbom_newlibc.yml")
    assert newlib is not None
    assert [e.cve for e in newlib.cve_excludes] == ["CVE-2024-30949"]


def test_all_components_adds_unlinked_and_config_only(idf_project: IdfProject) -> None:
    spec = read_idf_build(idf_project.build, all_components=True)
    refs = {c.ref for c in spec.components}
    assert refs - set(EXPECTED) == {
        "component:bootloader",
        "component:bootloader/subproject/components/micro-ecc/micro-ecc",
        "component:fatfs",
        "component:http_parser",
        "component:rt",
    }
    ecc = next(c for c in spec.components if c.ref.endswith("micro-ecc"))
    assert ecc.version == "1.1"
    assert ecc.cpes == ("cpe:2.3:a:micro-ecc_project:micro-ecc:1.1:*:*:*:*:*:*:*",)
    assert ecc.hashes == (("SHA-1", "24c60e243580c7868f4334a1ba3123481fe1aa48"),)
    fatfs = next(c for c in spec.components if c.ref == "component:fatfs")
    assert len(fatfs.cve_excludes) == 7
    assert fatfs.version == "R0.16"


def test_kconfig_condition_selects_the_virtual_package(tmp_path: Path) -> None:
    p = make_idf_project(tmp_path, sdkconfig="# CONFIG_LIBC_NEWLIB is not set\nCONFIG_LIBC_PICOLIBC=y\n")
    refs = {c.ref: c for c in read_idf_build(p.build).components}
    assert "component:esp_libc#sbom_newlibc.yml" not in refs
    assert refs["component:esp_libc#sbom_picolibc.yml"].version == "1.8.10"


def test_sdkconfig_json_wins_over_sdkconfig(idf_project: IdfProject) -> None:
    (idf_project.build / "config").mkdir()
    (idf_project.build / "config" / "sdkconfig.json").write_text(json.dumps({"LIBC_PICOLIBC": True}))
    refs = {c.ref for c in read_idf_build(idf_project.build).components}
    assert "component:esp_libc#sbom_picolibc.yml" in refs
    assert "component:esp_libc#sbom_newlibc.yml" not in refs


def test_condition_without_any_sdkconfig_is_an_error(idf_project: IdfProject) -> None:
    (idf_project.project / "sdkconfig").unlink()
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.field == "if"
    assert e.value.path is not None
    assert e.value.path.endswith("sbom_newlibc.yml")


def test_without_map_file_requirements_decide(tmp_path: Path) -> None:
    p = make_idf_project(tmp_path, with_map=False)
    spec = read_idf_build(p.build)
    refs = {c.ref for c in spec.components}
    # reachable from main + common requirements: spiffs and protobuf-c are not required by anyone
    assert "component:spiffs" not in refs
    assert "component:wpa_supplicant" in refs
    assert ("medfw:linkage", "requirements") in spec.properties


def test_moved_build_directory_is_followed(idf_project: IdfProject, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.move(str(idf_project.project), moved)
    spec = read_idf_build(moved / "build")
    assert {c.ref for c in spec.components} == set(EXPECTED)


def test_lock_file_supplies_hash_and_purl(idf_project: IdfProject) -> None:
    spec = read_idf_build(idf_project.build)
    cjson = next(c for c in spec.components if c.ref == "component:espressif__cjson")
    assert cjson.hashes == (("SHA-256", "ab" * 32),)
    assert cjson.purl == "pkg:generic/espressif/cjson@1.7.18?repository_url=https://components.espressif.com"
    assert cjson.license == "MIT"


def test_missing_project_description(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as e:
        read_idf_build(tmp_path)
    assert e.value.path is not None
    assert e.value.path.endswith("project_description.json")


def test_invalid_project_description_json(idf_project: IdfProject) -> None:
    idf_project.description.write_text('{"project_name": "x",\n "build_component_info": [}')
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.offset is not None
    assert "not valid JSON" in e.value.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: x\nversion: '1'\nlicence: MIT\n", "licence"),
        ("name: x\nversion: '1'\ncpe: 'cpe:2.3:a:broken'\n", "cpe"),
        ("name: x\nversion: '1'\npurl: 'github/x/y'\n", "purl"),
        ("name: x\nversion: '1'\nlicense: 'MIT AND'\n", "license"),
        ("name: x\nversion: '1'\nlicense: 'NotALicense-1.0'\n", "license"),
        ("name: x\nversion: '1'\nsupplier: 'Espressif'\n", "supplier"),
        ("name: x\nversion: '1'\ncve-exclude-list:\n  - cve: CVE-2024-1\n", "cve-exclude-list[0].reason"),
    ],
)
def test_bad_manifest_names_file_and_key(idf_project: IdfProject, text: str, key: str) -> None:
    manifest = idf_project.idf / "components/console/argtable3/sbom.yml"
    manifest.write_text(text)
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.path == str(manifest)
    assert e.value.field == key


def test_invalid_yaml_names_file_and_offset(idf_project: IdfProject) -> None:
    manifest = idf_project.idf / "components/wpa_supplicant/sbom.yml"
    manifest.write_text("name: wpa\nversion: [2.10\n")
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.path == str(manifest)
    assert e.value.offset is not None


def test_linked_archives_parses_gnu_ld_map() -> None:
    text = (
        "Archive member included to satisfy reference by file (symbol)\n\n"
        "esp-idf/a/liba.a(x.o)\n                              y.o (sym)\n"
        "/abs/libb.a(z.o)\n                              q (r)\n\nDiscarded input sections\n\nlibc.a(x)\n"
    )
    assert linked_archives(text) == {"esp-idf/a/liba.a", "/abs/libb.a"}
    assert linked_archives("no header here") == set()


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda pd: pd.pop("build_component_info"), "build_component_info"),
        (lambda pd: pd.pop("project_name"), "project_name"),
        (lambda pd: pd["build_component_info"]["main"].pop("dir"), "build_component_info.main.dir"),
        (lambda pd: pd["build_component_info"]["lwip"].update(reqs="freertos"), "build_component_info.lwip.reqs"),
    ],
)
def test_malformed_project_description_names_the_field(idf_project: IdfProject, mutate: object, field: str) -> None:
    pd = json.loads(idf_project.description.read_text())
    mutate(pd)  # type: ignore[operator]
    idf_project.description.write_text(json.dumps(pd))
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.path == str(idf_project.description)
    assert e.value.field == field


def test_missing_component_directory_is_an_error(idf_project: IdfProject) -> None:
    shutil.rmtree(idf_project.idf / "components" / "console")
    with pytest.raises(ManifestError) as e:
        read_idf_build(idf_project.build)
    assert e.value.field == "build_component_info.console.dir"
