"""Evidence of the release build: its security configuration (``medfw build check``) and the SBOM ↔ image binding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from medfw.buildcfg import BuildPolicy, SdkConfig, check_config, parse_sdkconfig, parse_sdkconfig_json
from medfw.buildcfg.rules import Status
from medfw.errors import ConfigError
from medfw.evidence.report import CheckLine
from medfw.evidence.spec import ImageRole, ReleaseSpec
from medfw.sbom.binding import recorded_image_sha256, verify_binding
from medfw.sbom.document import SbomDocument

if TYPE_CHECKING:
    from medfw.evidence.collect import BundleWriter

__all__ = ["BUILD_CONFIG_RESULT", "check_image_binding", "collect_build_config", "reverify_build_config"]

BUILD_CONFIG_RESULT = "results/build-config.json"


def collect_build_config(w: BundleWriter, spec: ReleaseSpec) -> CheckLine:
    """Bundle the build configuration and its check against the build-config policy.

    A release without ``build_config`` fails this check: the gate did not run.
    """
    if spec.build_config is None:
        w.json(BUILD_CONFIG_RESULT, {"ok": False, "config": None, "rules": []})
        return CheckLine(
            "Build configuration",
            False,
            "no build configuration given (release.yml build_config): the sdkconfig gate did not run",
            BUILD_CONFIG_RESULT,
        )
    data = w.read(spec.build_config, "build configuration")
    name = "build/sdkconfig.json" if spec.build_config.suffix == ".json" else "build/sdkconfig"
    w.put(name, data)
    config = parse_sdkconfig_json(data, path=name) if name.endswith(".json") else _text_config(data, name)
    result = check_config(config, BuildPolicy.load(spec.build_policy))
    doc = result.to_dict()
    doc["config"] = name
    w.json(BUILD_CONFIG_RESULT, doc)
    bad = [r for r in result.results if r.status in (Status.FAIL, Status.BLOCKED)]
    passed = sum(r.status is Status.PASS for r in result.results)
    detail = f"{passed}/{len(result.results)} rules pass for {result.config.target}" + (
        "; failing: " + "; ".join(f"{r.rule.value}: {r.message}" for r in bad) if bad else ""
    )
    return CheckLine("Build configuration", result.passed, detail, BUILD_CONFIG_RESULT)


def _text_config(data: bytes, name: str) -> SdkConfig:
    try:
        return parse_sdkconfig(data.decode("utf-8"), path=name)
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", path=name) from None


def check_image_binding(doc: SbomDocument, spec: ReleaseSpec, images: list[tuple[str, str, str, bytes]]) -> str:
    """Verify that the SBOM describes the release's app image; return a one-line description.

    Raises:
        ManifestError: the SBOM records no image hash.
        VerificationError: the app image is not the one the SBOM describes (both hashes named).
    """
    apps = [(rel, data) for rel, role, _fmt, data in images if role == ImageRole.APP]
    if not apps:
        return "no app image in the release"
    props = doc.component.properties if doc.component else ()
    rel, data = apps[0]
    ident = verify_binding(props, data, sbom_path=str(spec.sbom), image_path=rel)
    digest = recorded_image_sha256(props, sbom_path=str(spec.sbom))
    what = f"{ident.version} for {ident.chip or ident.format.value}" if ident else "raw image"
    return f"bound to {Path(rel).name} ({what}, unsigned content SHA-256 {digest[:16]}…)"


def reverify_build_config(root: Path, listed: set[str]) -> list[tuple[str, str]]:
    """``(file, problem)`` of ``results/build-config.json`` against the bundled configuration (evidence verify).

    The recorded symbol values must be those of the bundled ``build/sdkconfig[.json]``; when the default policy
    was used, every rule's recorded status must be what checking that configuration again gives.
    """
    if BUILD_CONFIG_RESULT not in listed:
        return []
    doc = json.loads((root / BUILD_CONFIG_RESULT).read_bytes())
    name = doc.get("config")
    if name is None:
        return [] if doc.get("ok") is False else [(BUILD_CONFIG_RESULT, "records a pass without a configuration")]
    if name not in listed:
        return [(BUILD_CONFIG_RESULT, f"names {name}, which the manifest does not list")]
    data = (root / name).read_bytes()
    try:
        config = parse_sdkconfig_json(data, path=name) if name.endswith(".json") else _text_config(data, name)
    except ConfigError as e:
        return [(str(name), f"the bundled build configuration does not parse: {e.message}")]
    problems = [
        f"rule {r['rule']}: {sym} recorded as {value!r}, the bundled configuration has {config.values.get(sym[7:])!r}"
        for r in doc["rules"]
        for sym, value in r["symbols"].items()
        if config.values.get(sym[7:]) != value
    ]
    if doc.get("policy") == "default.yml":
        again = {r.rule.value: r.status.value for r in check_config(config).results}
        problems += [
            f"rule {r['rule']} recorded as {r['status']}, checking the bundled configuration gives {again[r['rule']]}"
            for r in doc["rules"]
            if again.get(r["rule"]) != r["status"]
        ]
    return [(BUILD_CONFIG_RESULT, p) for p in problems]
