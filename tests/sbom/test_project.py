"""Generic project manifests (medfw-sbom.yml) for Zephyr / CMake / vendor-SDK builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfw.errors import ManifestError
from medfw.sbom import generate_from_manifest, load_sbom, read_project_manifest, serialize

PROJECT = """\
name: ventilator-fw
version: 3.1.0
supplier: 'Organization: Example Medical'
kconfig: build/zephyr/.config
components:
  - name: zephyr
    version: 3.6.0
    cpe: cpe:2.3:o:zephyrproject:zephyr:{}:*:*:*:*:*:*:*
    purl: pkg:github/zephyrproject-rtos/zephyr@v{}
    supplier: 'Organization: Zephyr Project'
    license: Apache-2.0
    support-level: actively-maintained
    end-of-support: 2026-07-31
  - path: modules/mbedtls
  - path: modules/tinycrypt/sbom.yml
    if: TINYCRYPT
  - name: app
    version: 3.1.0
    supplier: 'Organization: Example Medical'
    depends-on: [zephyr, mbedtls]
    purl: pkg:generic/example/app@{}
support:
  - name: '*'
    support-level: unknown
    end-of-support: unknown
"""

MBEDTLS = """\
name: mbedtls
version: 3.5.2
cpe:
  - cpe:2.3:a:arm:mbed_tls:{}:*:*:*:*:*:*:*
  - cpe:2.3:a:mbed-tls:mbedtls:{}:*:*:*:*:*:*:*
supplier: 'Organization: Trusted Firmware'
license: Apache-2.0 OR GPL-2.0-or-later
cve-exclude-list:
  - cve: CVE-2024-28755
    reason: Only affects builds with MBEDTLS_SSL_CLI_C and the server option set; not used.
    justification: requires_configuration
components:
  - name: everest
    version: '1.0'
    supplier: 'Organization: Project Everest'
    license: Apache-2.0
"""


def _write(tmp: Path, *, kconfig: str = "CONFIG_TINYCRYPT=n\n", project: str = PROJECT) -> Path:
    (tmp / "modules/mbedtls").mkdir(parents=True)
    (tmp / "modules/mbedtls/sbom.yml").write_text(MBEDTLS)
    (tmp / "modules/tinycrypt").mkdir(parents=True)
    (tmp / "modules/tinycrypt/sbom.yml").write_text(
        "name: tinycrypt\nversion: 0.2.8\nsupplier: 'Organization: Intel'\n"
    )
    (tmp / "build/zephyr").mkdir(parents=True)
    (tmp / "build/zephyr/.config").write_text(kconfig)
    path = tmp / "medfw-sbom.yml"
    path.write_text(project)
    return path


def test_components_sub_manifests_and_graph(tmp_path: Path) -> None:
    spec = read_project_manifest(_write(tmp_path))
    comps = {c.ref: c for c in spec.components}
    assert set(comps) == {"component:zephyr", "component:mbedtls", "component:mbedtls/everest", "component:app"}
    assert comps["component:zephyr"].cpes == ("cpe:2.3:o:zephyrproject:zephyr:3.6.0:*:*:*:*:*:*:*",)
    assert comps["component:zephyr"].end_of_support == "2026-07-31"
    assert comps["component:mbedtls"].cpes[1] == "cpe:2.3:a:mbed-tls:mbedtls:3.5.2:*:*:*:*:*:*:*"
    assert comps["component:mbedtls"].depends_on == ("component:mbedtls/everest",)
    assert comps["component:mbedtls"].support_level == "unknown"  # from the '*' rule
    assert comps["component:app"].depends_on == ("component:mbedtls", "component:zephyr")
    assert set(spec.depends_on) == set(comps) - {"component:mbedtls/everest"}
    assert comps["component:mbedtls"].sources == ("modules/mbedtls/sbom.yml",)


def test_condition_includes_sub_manifest(tmp_path: Path) -> None:
    spec = read_project_manifest(_write(tmp_path, kconfig="CONFIG_TINYCRYPT=y\n"))
    assert "component:tinycrypt" in {c.ref for c in spec.components}


def test_sbom_from_manifest_is_valid_and_readable(tmp_path: Path) -> None:
    bom = generate_from_manifest(_write(tmp_path))
    doc = load_sbom(serialize(bom))
    mbedtls = next(c for c in doc.components if c.name == "mbedtls")
    assert mbedtls.cpes == (
        "cpe:2.3:a:arm:mbed_tls:3.5.2:*:*:*:*:*:*:*",
        "cpe:2.3:a:mbed-tls:mbedtls:3.5.2:*:*:*:*:*:*:*",
    )
    assert mbedtls.cve_excludes[0].justification == "requires_configuration"
    assert doc.component is not None
    assert (doc.component.name, doc.component.version, doc.component.type) == ("ventilator-fw", "3.1.0", "firmware")


@pytest.mark.parametrize(
    ("project", "field"),
    [
        (PROJECT.replace("depends-on: [zephyr, mbedtls]", "depends-on: [zephyr, nope]"), "depends-on"),
        (PROJECT.replace("  - path: modules/mbedtls\n", "  - path: modules/missing\n"), None),
        (PROJECT + "colour: blue\n", "colour"),
        (
            PROJECT.replace("  - path: modules/mbedtls\n", "  - path: modules/mbedtls\n    dest: x\n"),
            "components[1].dest",
        ),
        (PROJECT.replace("    license: Apache-2.0\n    support", "    license: Apache 2\n    support"), "license"),
    ],
)
def test_bad_project_manifest(tmp_path: Path, project: str, field: str | None) -> None:
    path = _write(tmp_path, project=project)
    with pytest.raises(ManifestError) as e:
        read_project_manifest(path)
    assert e.value.path is not None
    assert e.value.field == field


def test_duplicate_names_and_cycles_are_rejected(tmp_path: Path) -> None:
    dup = PROJECT.replace("  - name: app\n", "  - name: zephyr\n")
    with pytest.raises(ManifestError, match="duplicate"):
        read_project_manifest(_write(tmp_path, project=dup))
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "a.yml").write_text("name: a\nversion: '1'\ncomponents:\n  - path: b.yml\n")
    (loop / "b.yml").write_text("name: b\nversion: '1'\ncomponents:\n  - path: a.yml\n")
    (loop / "medfw-sbom.yml").write_text("name: p\nversion: '1'\ncomponents:\n  - path: a.yml\n")
    with pytest.raises(ManifestError, match="include each other"):
        read_project_manifest(loop / "medfw-sbom.yml")


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError):
        read_project_manifest(tmp_path / "medfw-sbom.yml")
