"""Helpers shared by the build readers: turn merged manifests into :class:`ComponentSpec` values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from medfw.errors import ManifestError
from medfw.sbom._kconfig import KconfigValue, evaluate
from medfw.sbom._yaml import load_yaml_file
from medfw.sbom.manifest import Manifest, SupportRule, expand_cpe, expand_purl, parse_manifest
from medfw.sbom.model import ComponentSpec

__all__ = ["apply_support", "condition_holds", "load_manifest_file", "relative_sources", "to_spec"]


def load_manifest_file(path: Path, *, project: bool = False) -> Manifest:
    """Load and validate one manifest file."""
    return parse_manifest(load_yaml_file(path), source=str(path), project=project)


def condition_holds(manifest: Manifest, values: Mapping[str, KconfigValue] | None) -> bool:
    """Evaluate the manifest's ``if:`` condition (true when there is none).

    Raises:
        ManifestError: the manifest has a condition but no Kconfig values (sdkconfig) are available.
    """
    if manifest.condition is None:
        return True
    if values is None:
        raise ManifestError(
            "manifest has an 'if' condition but no sdkconfig / sdkconfig.json was found to evaluate it",
            path=manifest.source,
            field="if",
        )
    return evaluate(manifest.condition, values, path=manifest.source)


def to_spec(
    manifest: Manifest,
    *,
    ref: str,
    default_name: str,
    kind: str = "library",
    depends_on: Iterable[str] = (),
    properties: Iterable[tuple[str, str]] = (),
) -> ComponentSpec:
    """Build a :class:`ComponentSpec`, substituting the version into the ``{}`` of CPEs and the purl."""
    version = manifest.version
    cpes = tuple(dict.fromkeys(expand_cpe(c, version, path=manifest.source) for c in manifest.cpe))
    purl = expand_purl(manifest.purl, version, path=manifest.source) if manifest.purl else None
    return ComponentSpec(
        ref=ref,
        name=manifest.name or default_name,
        version=version,
        kind=manifest.type or kind,
        description=manifest.description,
        supplier=manifest.supplier,
        originator=manifest.originator,
        cpes=cpes,
        purl=purl,
        license=manifest.license,
        copyright=manifest.copyright,
        hashes=manifest.hashes,
        repository=manifest.repository,
        url=manifest.url,
        cve_excludes=manifest.cve_excludes,
        cve_keywords=manifest.cve_keywords,
        support_level=manifest.support_level,
        end_of_support=manifest.end_of_support,
        sources=tuple(dict.fromkeys(s for s in (manifest.source, *manifest.extra_sources) if s)),
        depends_on=tuple(sorted(set(depends_on))),
        properties=tuple(sorted(set(properties))),
    )


def apply_support(components: Iterable[ComponentSpec], rules: Iterable[SupportRule]) -> list[ComponentSpec]:
    """Fill support level / end of support from project ``support:`` rules where a component states none.

    A rule's ``name`` matches a component's bom-ref or its name (bom-ref first); such a rule wins over the ``*``
    rule; values a manifest states itself always win.
    """
    by_name: dict[str, SupportRule] = {}
    default: SupportRule | None = None
    for rule in rules:
        if rule.name == "*":
            default = rule
        else:
            by_name[rule.name] = rule
    out: list[ComponentSpec] = []
    for component in components:
        current = component
        candidates: list[SupportRule | None] = [by_name.get(current.ref) or by_name.get(current.name), default]
        for candidate in candidates:
            if candidate is None:
                continue
            if current.support_level is None and candidate.level is not None:
                current = replace(current, support_level=candidate.level)
            if current.end_of_support is None and candidate.end_of_support is not None:
                current = replace(current, end_of_support=candidate.end_of_support)
        out.append(current)
    return out


def relative_sources(components: Iterable[ComponentSpec], roots: Iterable[tuple[Path, str]]) -> list[ComponentSpec]:
    """Rewrite absolute manifest paths in ``sources`` relative to the given roots, so output is machine-independent.

    ``roots`` pairs a directory with the label that replaces it (``""`` for plain relative paths); the longest
    matching root wins.
    """
    ordered = sorted(((str(p), label) for p, label in roots), key=lambda x: len(x[0]), reverse=True)

    def rel(source: str) -> str:
        for prefix, label in ordered:
            if source.startswith(prefix + "/"):
                rest = source[len(prefix) + 1 :]
                return f"{label}/{rest}" if label else rest
        return source

    return [replace(c, sources=tuple(rel(s) for s in c.sources)) for c in components]
