"""The example device's two releases, built, gated, signed and described the way a release CI does it.

1.0.0 is ``examples/device`` as checked in: ESP-IDF v5.4 for the ESP32-C3 with the Mbed TLS submodule at v3.6.1.
1.1.0 is the same tree after the team's fix: the mbedtls submodule moved to v3.6.4, the project version bumped
and the anti-rollback secure version raised to 2 (:func:`source_tree` applies exactly these changes).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from medfw.chips import DEFAULT_CHIP
from medfw.demo.runner import EXAMPLE, Demo, DemoError
from medfw.image.esp import build_app_image

__all__ = ["CHIP", "MODEL", "RELEASES", "Release", "build_release", "source_tree"]

MODEL = "infusion-pump"
CHIP = DEFAULT_CHIP


@dataclass(frozen=True)
class Release:
    """One release of the example firmware."""

    version: str
    secure_version: int
    mbedtls: str


RELEASES = {r.version: r for r in (Release("1.0.0", 1, "3.6.1"), Release("1.1.0", 2, "3.6.4"))}
_BASE = RELEASES["1.0.0"]


def _embedded(mbedtls: str) -> bytes:
    """Version strings the firmware really embeds, so binary scanning has evidence to find."""
    return (
        f"\x00mbed TLS {mbedtls}\x00Mbed TLS {mbedtls}\x00".encode()
        + b"\x00FreeRTOS Kernel V10.5.1\x00\x00lwIP/2.2.0\x00"
        + b"\x00deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler\x00\x00cJSON 1.7.18\x00"
    )


def _replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise DemoError(f"expected {old!r} in the example device", path=str(path))
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def source_tree(demo: Demo, version: str) -> Path:
    """The example device's source tree at ``version``: ``examples/device`` for 1.0.0, a changed copy after."""
    if version == _BASE.version:
        return EXAMPLE
    rel = RELEASES[version]
    tree = demo.path("src", f"device-{version}")
    if tree.is_dir():
        return tree
    shutil.copytree(EXAMPLE, tree)
    b = _BASE.version
    _replace_in(tree / "build/project_description.json", f'"project_version": "{b}"', f'"project_version": "{version}"')
    _replace_in(tree / "sdkconfig", f'CONFIG_APP_PROJECT_VER="{b}"', f'CONFIG_APP_PROJECT_VER="{version}"')
    _replace_in(tree / "sbom.yml", f"version: '{b}'", f"version: '{version}'")
    for symbol in ("CONFIG_BOOTLOADER_APP_SECURE_VERSION", "CONFIG_APP_SECURE_VERSION"):
        _replace_in(tree / "sdkconfig", f"{symbol}={_BASE.secure_version}\n", f"{symbol}={rel.secure_version}\n")
    mbedtls_manifest = tree / "esp-idf/components/mbedtls/mbedtls/sbom.yml"
    _replace_in(mbedtls_manifest, f"version: {_BASE.mbedtls}", f"version: {rel.mbedtls}")
    return tree


def _sign(demo: Demo, src: Path, dst: Path, *, audit: bool = True) -> None:
    argv = ["sign", "sbv2", "--key", str(demo.path("keys", "secure-boot.pem")), str(src), "--out", str(dst)]
    demo.run([*argv, "--audit-log", str(demo.path("audit.db"))] if audit else argv)


def build_bootloader(demo: Demo) -> Path:
    """The (second-stage) bootloader image, signed."""
    build = demo.path("build")
    build.mkdir(parents=True, exist_ok=True)
    raw = build_app_image(chip=CHIP, version="bootloader", secure_version=0, project_name="bootloader")
    (build / "bootloader.bin").write_bytes(raw)
    _sign(demo, build / "bootloader.bin", build / "bootloader.signed.bin", audit=False)
    return build / "bootloader.signed.bin"


def build_release(demo: Demo, version: str) -> Path:
    """Gate, build, sign and describe one release; return its SBOM (``sbom-VERSION.cdx.json``)."""
    rel = RELEASES[version]
    tree = source_tree(demo, version)
    check = demo.run_json(["build", "check", str(tree / "sdkconfig")])
    passed = sum(r["status"] == "pass" for r in check["rules"])
    demo.say(
        f"build configuration gate: {passed}/{len(check['rules'])} rules pass (Secure Boot v2, anti-rollback, ...)"
    )
    build = demo.path("build")
    build.mkdir(parents=True, exist_ok=True)
    payload = _embedded(rel.mbedtls) + f"infusion-pump-fw {version}".encode() + bytes(range(256)) * 64
    image = build_app_image(
        chip=CHIP, version=version, secure_version=rel.secure_version, project_name="infusion-pump-fw", payload=payload
    )
    (build / f"app-{version}.bin").write_bytes(image)
    _sign(demo, build / f"app-{version}.bin", build / f"app-{version}.signed.bin")
    sbom = demo.path(f"sbom-{version}.cdx.json")
    gen = demo.run_json(
        [
            "sbom", "generate", "--idf-build", str(tree / "build"), "--binary", str(build / f"app-{version}.bin"),
            "--out", str(sbom), "--audit-log", str(demo.path("audit.db")),
        ]
    )  # fmt: skip
    demo.say(f"SBOM bound to app-{version}.bin: SHA-256 {gen['image']['sha256'][:16]}… of the unsigned image")
    demo.run(["sbom", "check", str(sbom)], quiet=True)
    demo.facts.setdefault("releases", {})[version] = {
        "mbedtls": rel.mbedtls,
        "secure_version": rel.secure_version,
        "build_check_passed": check["ok"],
        "image_sha256": gen["image"]["sha256"],
        "sbom_image_version": gen["image"]["version"],
        "sbom_image_chip": gen["image"]["chip"],
        "sbom_image_idf": gen["image"]["idf_version"],
    }
    return sbom
