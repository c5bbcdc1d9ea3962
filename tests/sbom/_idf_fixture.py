"""Builds a fixture ESP-IDF project around the real ESP-IDF manifests in tests/vectors/esp-idf-tree."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

VECTORS = Path(__file__).parent.parent / "vectors"
IDF_TREE = VECTORS / "esp-idf-tree"

# Directories that are git submodules (or referenced-manifest destinations) in a real ESP-IDF checkout.
SUBMODULE_DIRS = (
    "components/spiffs/spiffs",
    "components/protobuf-c/protobuf-c",
    "components/unity/unity",
    "components/cmock/CMock",
    "components/bootloader/subproject/components/micro-ecc/micro-ecc",
    "components/mbedtls/mbedtls",
    "components/lwip/lwip",
    "components/openthread/openthread",
)

# name -> (directory relative to the IDF root or "<project>/…", type, requirements)
COMPONENTS: dict[str, tuple[str, str, list[str]]] = {
    "main": ("<project>/main", "LIBRARY", ["freertos", "wpa_supplicant", "openthread", "console", "espressif__cjson"]),
    "freertos": ("components/freertos", "LIBRARY", ["esp_libc"]),
    "wpa_supplicant": ("components/wpa_supplicant", "LIBRARY", ["mbedtls", "idf::lwip"]),
    "esp_libc": ("components/esp_libc", "LIBRARY", []),
    "openthread": ("components/openthread", "LIBRARY", ["mbedtls", "lwip"]),
    "console": ("components/console", "LIBRARY", []),
    "spiffs": ("components/spiffs", "LIBRARY", []),
    "protobuf-c": ("components/protobuf-c", "LIBRARY", []),
    "lwip": ("components/lwip", "LIBRARY", ["freertos"]),
    "mbedtls": ("components/mbedtls", "LIBRARY", []),
    "fatfs": ("components/fatfs", "LIBRARY", []),
    "http_parser": ("components/http_parser", "LIBRARY", []),
    "rt": ("components/rt", "LIBRARY", ["freertos"]),
    "bootloader": ("components/bootloader", "CONFIG_ONLY", []),
    "espressif__cjson": ("<project>/managed_components/espressif__cjson", "LIBRARY", []),
}
LINKED = (
    "main",
    "freertos",
    "wpa_supplicant",
    "esp_libc",
    "openthread",
    "console",
    "spiffs",
    "protobuf-c",
    "lwip",
    "mbedtls",
    "espressif__cjson",
)


@dataclass
class IdfProject:
    """Paths of a generated fixture project."""

    root: Path
    idf: Path
    project: Path
    build: Path

    @property
    def description(self) -> Path:
        return self.build / "project_description.json"


def render_template(template: str, values: dict[str, str], json_values: dict[str, object]) -> str:
    """Render ESP-IDF's project_description.json.in the way CMake's configure_file does."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in json_values:
            return json.dumps(json_values[name])
        return values.get(name, "")

    return re.sub(r"\$\{(\w+)\}", sub, template)


def make_idf_project(
    tmp: Path,
    *,
    linked: tuple[str, ...] = LINKED,
    git_revision: str = "v5.5.1",
    project_version: str = "1.2.0",
    sdkconfig: str = "CONFIG_LIBC_NEWLIB=y\n# CONFIG_LIBC_PICOLIBC is not set\n",
    with_map: bool = True,
) -> IdfProject:
    """Create an ESP-IDF tree + project + build directory under ``tmp``."""
    idf = tmp / "esp-idf"
    shutil.copytree(IDF_TREE, idf, ignore=shutil.ignore_patterns("README.md"))
    for d in SUBMODULE_DIRS:
        (idf / d).mkdir(parents=True, exist_ok=True)
    project = tmp / "proj"
    build = project / "build"
    build.mkdir(parents=True)
    (project / "main").mkdir()
    # A real idf_component.yml (dependencies with rules) as the main component's manifest.
    shutil.copy(IDF_TREE / "components/esp_tee/subproject/main/idf_component.yml", project / "main")
    cjson = project / "managed_components" / "espressif__cjson"
    cjson.mkdir(parents=True)
    (cjson / "idf_component.yml").write_text(
        "dependencies:\n  idf: '>=4.4'\ndescription: cJSON\nurl: https://github.com/espressif/idf-extra-components\n"
        "version: 1.7.18\nsbom:\n  cpe: cpe:2.3:a:cjson_project:cjson:{}:*:*:*:*:*:*:*\n  license: MIT\n"
    )
    (project / "dependencies.lock").write_text(
        "dependencies:\n  espressif/cjson:\n    component_hash: "
        + "ab" * 32
        + "\n    source:\n      registry_url: https://components.espressif.com/\n      type: service\n"
        "    version: 1.7.18\n  idf:\n    source:\n      type: idf\n    version: 5.5.1\n"
        "direct_dependencies:\n- espressif/cjson\n- idf\nmanifest_hash: "
        + "cd" * 32
        + "\ntarget: esp32\nversion: 2.0.0\n"
    )
    (project / "sdkconfig").write_text(sdkconfig)
    (project / "sbom.yml").write_text(
        f"name: pump\nversion: '{project_version}'\n"
        + "document:\n  manufacturer:\n    name: 'Organization: Example Medical'\n    url: https://example.invalid\n"
    )

    info: dict[str, dict[str, object]] = {}
    for name, (d, typ, reqs) in COMPONENTS.items():
        directory = project / d.removeprefix("<project>/") if d.startswith("<project>") else idf / d
        directory.mkdir(parents=True, exist_ok=True)
        info[name] = {
            "alias": f"idf::{name}",
            "target": f"___idf_{name}",
            "prefix": "idf",
            "dir": str(directory),
            "type": typ,
            "lib": f"__idf_{name}",
            "reqs": reqs,
            "priv_reqs": [],
            "managed_reqs": [],
            "managed_priv_reqs": [],
            "file": str(build / "esp-idf" / name / f"lib{name}.a") if typ == "LIBRARY" else "",
            "sources": [],
            "include_dirs": [],
        }
    template = (IDF_TREE / "tools/cmake/project_description.json.in").read_text()
    values = {
        "PROJECT_NAME": "pump",
        "PROJECT_VER": project_version,
        "PROJECT_PATH": str(project),
        "IDF_PATH": str(idf),
        "BUILD_DIR": str(build),
        "SDKCONFIG": str(project / "sdkconfig"),
        "PROJECT_EXECUTABLE": "pump.elf",
        "PROJECT_BIN": "pump.bin",
        "PROJECT_BUILD_TYPE": "flash_app",
        "IDF_VER": git_revision,
        "CONFIG_IDF_TARGET": "esp32",
    }
    json_values: dict[str, object] = {
        "common_component_reqs_json": ["esp_libc", "freertos"],
        "build_components_json": sorted(info),
        "build_component_paths_json": [info[n]["dir"] for n in sorted(info)],
        "build_component_info_json": info,
        "all_component_info_json": info,
    }
    (build / "project_description.json").write_text(render_template(template, values, json_values))
    if with_map:
        lines = ["Archive member included to satisfy reference by file (symbol)", ""]
        for name in linked:
            lines.append(f"esp-idf/{name}/lib{name}.a(x.c.obj)")
            lines.append("                              esp-idf/main/libmain.a(main.c.obj) (sym)")
        lines += ["", "Discarded input sections", ""]
        (build / "pump.map").write_text("\n".join(lines) + "\n")
    return IdfProject(root=tmp, idf=idf, project=project, build=build)
