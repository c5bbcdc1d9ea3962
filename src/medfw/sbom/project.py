"""Read a generic project manifest (``medfw-sbom.yml``) for Zephyr, bare CMake or vendor-SDK builds.

The project manifest uses the manifest keys of :mod:`medfw.sbom.manifest` for the firmware itself, plus:

``components``
    a list; each entry is either an inline component manifest, or ``{path: FILE_OR_DIR}`` naming a
    sub-manifest (a directory means its ``sbom.yml``), optionally with ``if:``. Sub-manifests may list
    ``components`` of their own: those become children of that component in the dependency graph.
``manifests``
    esp-idf-sbom style ``{path, dest}`` references, treated as sub-manifests.
``kconfig``
    a Kconfig output (``.config`` / ``sdkconfig``; relative to the manifest) for ``if:`` conditions.
``support``
    support rules: ``[{name: NAME | "*", support-level: …, end-of-support: …}]``.
``depends-on`` (on any component)
    names of other components it depends on.

Component names must be unique among siblings. The firmware depends on every top-level component unless the
project manifest lists ``depends-on`` itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.errors import InputError, ManifestError
from medfw.sbom._assemble import apply_support, condition_holds, load_manifest_file, relative_sources, to_spec
from medfw.sbom._kconfig import KconfigValue, parse_sdkconfig
from medfw.sbom._yaml import MAX_INPUT, load_yaml_file
from medfw.sbom.manifest import Manifest, parse_manifest
from medfw.sbom.model import ComponentSpec, ProjectSpec

__all__ = ["read_project_manifest"]

_MAX_DEPTH = 32
_MAX_COMPONENTS = 100_000


@dataclass
class _Ctx:
    kconfig: dict[str, KconfigValue] | None
    specs: list[ComponentSpec] = field(default_factory=list)
    names: dict[str, list[str]] = field(default_factory=dict)
    pending_deps: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    visiting: set[Path] = field(default_factory=set)


def _ref_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-._+" else "_" for c in name)


def _load_sub(path: Path) -> Manifest:
    target = path / "sbom.yml" if path.is_dir() else path
    if not target.is_file():
        raise ManifestError("sub-manifest not found", path=str(target))
    return parse_manifest(load_yaml_file(target), source=str(target), project=True)


def _component(ctx: _Ctx, manifest: Manifest, *, parent_ref: str | None, base: Path, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        raise ManifestError("sub-manifests are nested too deeply", path=manifest.source)
    if len(ctx.specs) > _MAX_COMPONENTS:
        raise ManifestError("too many components", path=manifest.source)
    if not condition_holds(manifest, ctx.kconfig):
        return None
    if manifest.document is not None or manifest.support or manifest.kconfig:
        key = "document" if manifest.document is not None else ("support" if manifest.support else "kconfig")
        raise ManifestError(f"'{key}' is only allowed in the project manifest", path=manifest.source, field=key)
    name = manifest.name
    if not name:
        raise ManifestError("component has no 'name'", path=manifest.source, field="name")
    ref = f"{parent_ref}/{_ref_part(name)}" if parent_ref else f"component:{_ref_part(name)}"
    if any(s.ref == ref for s in ctx.specs):
        raise ManifestError(f"duplicate component name {name!r}", path=manifest.source, field="name")
    children = _children(ctx, manifest, parent_ref=ref, base=base, depth=depth + 1)
    for i, rel in enumerate(manifest.virtpackages):
        vpath = (base / rel).resolve()
        if not vpath.is_file():
            raise ManifestError(
                f"virtual package manifest {rel!r} not found", path=manifest.source, field=f"virtpackages[{i}]"
            )
        vm = load_manifest_file(vpath)
        if condition_holds(vm, ctx.kconfig):
            vref = f"{ref}#{vpath.name}"
            ctx.specs.append(
                to_spec(vm, ref=vref, default_name=vpath.stem, properties=[("medfw:package:kind", "virtual")])
            )
            children.append(vref)
    spec = to_spec(manifest, ref=ref, default_name=name, depends_on=children, kind=manifest.type or "library")
    ctx.specs.append(spec)
    ctx.names.setdefault(spec.name, []).append(ref)
    if manifest.depends_on:
        ctx.pending_deps.append((ref, manifest.depends_on, manifest.source))
    return ref


def _children(ctx: _Ctx, manifest: Manifest, *, parent_ref: str | None, base: Path, depth: int) -> list[str]:
    refs: list[str] = []
    entries: list[tuple[str, Any]] = [(f"components[{i}]", e) for i, e in enumerate(manifest.components)]
    entries += [
        (f"manifests[{i}]", {"path": m.path} if m.path is not None else m.embedded)
        for i, m in enumerate(manifest.manifests)
    ]
    for where, entry in entries:
        if not isinstance(entry, dict):
            raise ManifestError("component entry must be a mapping", path=manifest.source, field=where)
        if "path" in entry:
            unknown = sorted(set(map(str, entry)) - {"path", "if"})
            if unknown:
                raise ManifestError(f"unknown key '{unknown[0]}'", path=manifest.source, field=f"{where}.{unknown[0]}")
            if not isinstance(entry["path"], str):
                raise ManifestError("'path' must be a string", path=manifest.source, field=f"{where}.path")
            cond = entry.get("if")
            if cond is not None and not condition_holds(
                Manifest(source=manifest.source, condition=str(cond)), ctx.kconfig
            ):
                continue
            target = (base / entry["path"]).resolve()
            if target in ctx.visiting:
                raise ManifestError("sub-manifests include each other", path=manifest.source, field=f"{where}.path")
            ctx.visiting.add(target)
            sub = _load_sub(target)
            sub_base = target if target.is_dir() else target.parent
            ref = _component(ctx, sub, parent_ref=parent_ref, base=sub_base, depth=depth)
            ctx.visiting.discard(target)
        else:
            sub = parse_manifest(entry, source=f"{manifest.source} {where}", project=True)
            ref = _component(ctx, sub, parent_ref=parent_ref, base=base, depth=depth)
        if ref is not None:
            refs.append(ref)
    return refs


def _resolve_deps(ctx: _Ctx, names: tuple[str, ...], source: str, own: str | None = None) -> list[str]:
    out: list[str] = []
    for name in names:
        refs = ctx.names.get(name)
        if not refs:
            raise ManifestError(f"depends-on names unknown component {name!r}", path=source, field="depends-on")
        if len(refs) > 1:
            raise ManifestError(f"depends-on name {name!r} is ambiguous", path=source, field="depends-on")
        if refs[0] != own:
            out.append(refs[0])
    return out


def read_project_manifest(path: str | os.PathLike[str]) -> ProjectSpec:
    """Read a ``medfw-sbom.yml`` project manifest and its sub-manifests.

    Raises:
        ManifestError: invalid YAML, an unknown key, a malformed CPE/purl/license, a missing sub-manifest;
            the message names the file and the key.
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise ManifestError("project manifest not found", path=str(p))
    project = parse_manifest(load_yaml_file(p), source=str(p), project=True)
    if not project.name:
        raise ManifestError("project manifest has no 'name'", path=str(p), field="name")
    kconfig: dict[str, KconfigValue] | None = None
    if project.kconfig:
        kpath = (p.parent / project.kconfig).resolve()
        try:
            text = read_bytes(kpath, max_length=MAX_INPUT, what="Kconfig file").decode("utf-8", "replace")
        except InputError as e:
            raise ManifestError(e.message, path=str(kpath), field="kconfig") from None
        kconfig = parse_sdkconfig(text)
    ctx = _Ctx(kconfig=kconfig)
    if not condition_holds(project, kconfig):
        raise ManifestError("the project manifest's own 'if' condition is false", path=str(p), field="if")
    top = _children(ctx, project, parent_ref=None, base=p.parent, depth=0)

    specs = {s.ref: s for s in ctx.specs}
    for ref, names, source in ctx.pending_deps:
        extra = _resolve_deps(ctx, names, source, own=ref)
        spec = specs[ref]
        specs[ref] = replace(spec, depends_on=tuple(sorted(set(spec.depends_on) | set(extra))))
    depends = _resolve_deps(ctx, project.depends_on, str(p)) if project.depends_on else top
    components = relative_sources(apply_support(specs.values(), project.support), [(p.parent, "")])
    document = project.document
    version = project.version
    return ProjectSpec(
        ref=f"firmware:{_ref_part(project.name)}",
        name=project.name,
        version=version,
        description=project.description,
        supplier=(document.supplier if document else None) or project.supplier,
        manufacturer=document.manufacturer if document else None,
        supplier_url=document.supplier_url if document else None,
        manufacturer_url=document.manufacturer_url if document else None,
        license=project.license,
        hashes=project.hashes,
        cpes=tuple(c.replace("{}", version or "*") for c in project.cpe),
        purl=project.purl.replace("{}", version or "") if project.purl else None,
        components=tuple(sorted(components, key=lambda c: c.ref)),
        depends_on=tuple(sorted(set(depends))),
        properties=(("medfw:build:system", "manifest"),),
    )
