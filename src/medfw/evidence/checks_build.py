"""Evidence of the release build: its security configuration (``medfw build check``) and the SBOM ↔ image binding."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from medfw.buildcfg import BuildPolicy, check_config, load_config
from medfw.evidence.report import CheckLine
from medfw.evidence.spec import ReleaseSpec
from medfw.sbom.binding import recorded_image_sha256, verify_binding
from medfw.sbom.document import SbomDocument

if TYPE_CHECKING:
    from medfw.evidence.collect import BundleWriter

__all__ = ["check_image_binding", "collect_build_config"]

BUILD_CONFIG_RESULT = "results/build-config.json"


def collect_build_config(w: BundleWriter, spec: ReleaseSpec) -> CheckLine:
    """Bundle the build configuration and its check against the build-config policy.

    A release without ``build_config`` fails this check: the gate did not run.
    """
    if spec.build_config is None:
        w.json(BUILD_CONFIG_RESULT, {"passed": False, "config": None, "rules": []})
        return CheckLine(
            "Build configuration",
            False,
            "no build configuration given (release.yml build_config): the sdkconfig gate did not run",
            BUILD_CONFIG_RESULT,
        )
    data = w.read(spec.build_config, "build configuration")
    name = "build/sdkconfig.json" if spec.build_config.suffix == ".json" else "build/sdkconfig"
    w.put(name, data)
    result = check_config(load_config(w.root / name), BuildPolicy.load(spec.build_policy))
    doc = result.to_dict()
    doc["config"] = name
    w.json(BUILD_CONFIG_RESULT, doc)
    bad = [r for r in result.results if r.status.value in ("fail", "blocked")]
    passed = sum(r.status.value == "pass" for r in result.results)
    detail = f"{passed}/{len(result.results)} rules pass for {result.config.target}" + (
        "; failing: " + "; ".join(f"{r.rule.value}: {r.message}" for r in bad) if bad else ""
    )
    return CheckLine("Build configuration", result.passed, detail, BUILD_CONFIG_RESULT)


def check_image_binding(doc: SbomDocument, spec: ReleaseSpec, images: list[tuple[str, str, str, bytes]]) -> str:
    """Verify that the SBOM describes the release's app image; return a one-line description.

    Raises:
        ManifestError: the SBOM records no image hash.
        VerificationError: the app image is not the one the SBOM describes (both hashes named).
    """
    apps = [(rel, data) for rel, role, _fmt, data in images if role == "app"]
    if not apps:
        return "no app image in the release"
    props = doc.component.properties if doc.component else ()
    rel, data = apps[0]
    ident = verify_binding(props, data, sbom_path=str(spec.sbom), image_path=rel)
    digest = recorded_image_sha256(props, sbom_path=str(spec.sbom))
    what = f"{ident.version} for {ident.chip or ident.format.value}" if ident else "raw image"
    return f"bound to {Path(rel).name} ({what}, unsigned content SHA-256 {digest[:16]}…)"
