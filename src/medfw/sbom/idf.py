"""Read an ESP-IDF build directory into a :class:`ProjectSpec`.

Inputs (all from the build, nothing guessed from git):

* ``build/project_description.json`` (format: ESP-IDF ``tools/cmake/project_description.json.in``, version ≥ 1.0):
  project name/version, ``idf_path``, ``git_revision``, ``target``, and ``build_component_info`` (per component:
  ``dir``, ``type``, ``file``, ``reqs``, ``priv_reqs``, ``managed_reqs``, ``managed_priv_reqs``).
* ``build/<project>.map`` (GNU ld map): the archives that really contributed members to the app are the *linked*
  components. Without a map file the components reachable through requirements from the project's own components
  are taken as linked, and the SBOM says so (``medfw:linkage`` = ``requirements``).
* per component directory, in precedence order: a manifest referenced from a parent (``manifests: [{path, dest}]``),
  ``sbom.yml``, the ``sbom:`` section of ``idf_component.yml``, ``sbom-*`` keys in ``.gitmodules``, the plain
  fields of ``idf_component.yml``, the component manager's ``dependencies.lock`` (managed components).
* sub-packages (directories below a component holding ``sbom.yml``, a referenced manifest, or a submodule with
  ``sbom-*`` keys) and ``virtpackages`` (code not built from source, e.g. in ROM), each with optional ``if:``
  conditions evaluated against ``build/config/sdkconfig.json`` or the ``sdkconfig`` file.
* the project's own ``sbom.yml`` (project manifest): firmware identity, ``document`` supplier/manufacturer, and
  ``support`` rules.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.errors import InputError, ManifestError
from medfw.sbom._assemble import apply_support, relative_sources, to_spec
from medfw.sbom._yaml import load_json_file, load_yaml_file
from medfw.sbom.idf_packages import (
    ESPRESSIF,
    _Ctx,
    _load_kconfig,
    _load_lock,
    _lock_manifest,
    _package,
    _str_field,
    _submodules,
)
from medfw.sbom.manifest import Manifest, parse_manifest
from medfw.sbom.model import ComponentSpec, ProjectSpec

__all__ = ["ESPRESSIF", "linked_archives", "read_idf_build"]

_REQ_KEYS = ("reqs", "priv_reqs", "managed_reqs", "managed_priv_reqs")
_MAP_HEADER = "Archive member included to satisfy reference by file (symbol)"
_APP_BIN_LIMIT = 64 * 1024 * 1024


def linked_archives(map_text: str) -> set[str]:
    """Return the archive paths listed in the "Archive member included…" section of a GNU ld map file."""
    lines = map_text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == _MAP_HEADER) + 1
    except StopIteration:
        return set()
    while start < len(lines) and not lines[start].strip():
        start += 1
    out: set[str] = set()
    for line in lines[start:]:
        if not line.strip():
            break
        if line[0].isspace():
            continue
        out.add(line.split("(", 1)[0].strip())
    return out


def _suffixes(path: str) -> list[str]:
    parts = [p for p in path.replace("\\", "/").split("/") if p and p != "."]
    return ["/".join(parts[i:]) for i in range(len(parts))]


def _archive_index(archives: set[str]) -> tuple[set[str], set[str]]:
    """Return (archive paths, every trailing sub-path of every archive), normalised, for O(depth) matching."""
    full = {"/".join(p for p in a.replace("\\", "/").split("/") if p and p != ".") for a in archives}
    tails = {t for a in archives for t in _suffixes(a)}
    return full, tails


def _archive_matches(file: str, index: tuple[set[str], set[str]]) -> bool:
    """True when the component archive ``file`` is one of the map's archives (either may be relative)."""
    full, tails = index
    suffixes = _suffixes(file)
    if not suffixes:
        return False
    return suffixes[0] in tails or any(s in full for s in suffixes)


def _components_info(pd: Mapping[str, Any], pd_path: str) -> dict[str, dict[str, Any]]:
    info = pd.get("build_component_info")
    if not isinstance(info, dict):
        raise ManifestError("'build_component_info' must be an object", path=pd_path, field="build_component_info")
    aliases: dict[str, str] = {}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in info.items():
        where = f"build_component_info.{name}"
        if not isinstance(entry, dict):
            raise ManifestError("component entry must be an object", path=pd_path, field=where)
        if not isinstance(entry.get("dir"), str):
            raise ManifestError("missing 'dir'", path=pd_path, field=f"{where}.dir")
        reqs: list[str] = []
        for key in _REQ_KEYS:
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
                raise ManifestError(f"'{key}' must be a list of names", path=pd_path, field=f"{where}.{key}")
            reqs.extend(value)
        alias = entry.get("alias")
        if isinstance(alias, str) and alias and alias != name:
            aliases[alias] = name
        out[str(name)] = {
            "dir": entry["dir"],
            "type": entry.get("type", "LIBRARY"),
            "file": entry.get("file") if isinstance(entry.get("file"), str) else "",
            "reqs": reqs,
        }
    for entry in out.values():
        entry["reqs"] = sorted({aliases.get(r, r) for r in entry["reqs"]} - {""})
    return out


def _reachable(starts: Iterable[str], comps: Mapping[str, Mapping[str, Any]]) -> set[str]:
    seen: set[str] = set()
    todo = [s for s in starts if s in comps]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(r for r in comps[name]["reqs"] if r in comps and r not in seen)
    return seen


def _is_under(path: Path, root: Path | None) -> bool:
    if root is None:
        return False
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_idf_build(build_dir: str | os.PathLike[str], *, all_components: bool = False) -> ProjectSpec:
    """Read an ESP-IDF build directory (the one holding ``project_description.json``).

    Args:
        build_dir: the build directory.
        all_components: include every component of the build (also configuration-only and unlinked ones).

    Raises:
        ManifestError: a missing or malformed input; the message names the file and the key.
    """
    build = Path(build_dir).resolve()
    pd_file = build / "project_description.json"
    if not pd_file.is_file():
        raise ManifestError("project_description.json not found: not an ESP-IDF build directory", path=str(pd_file))
    pd_path = str(pd_file)
    pd = load_json_file(pd_file, what="project_description.json")
    if not isinstance(pd, dict):
        raise ManifestError("project description must be a JSON object", path=pd_path)
    project_name = _str_field(pd, "project_name", pd_path, required=True)
    assert project_name is not None
    project_version = _str_field(pd, "project_version", pd_path)
    raw_project = _str_field(pd, "project_path", pd_path) or str(build.parent)
    comps = _components_info(pd, pd_path)

    ctx = _Ctx(
        build_dir=build,
        pd_path=pd_path,
        pd=pd,
        project_path=build.parent,
        idf_path=None,
        idf_version=None,
        git_revision=_str_field(pd, "git_revision", pd_path),
        kconfig=None,
    )
    project_path = ctx.resolve(raw_project)
    ctx.project_path = project_path if project_path.is_dir() else build.parent
    raw_idf = _str_field(pd, "idf_path", pd_path)
    ctx.idf_path = ctx.resolve(raw_idf).resolve() if raw_idf else None
    if ctx.git_revision:
        ctx.idf_version = ctx.git_revision[1:] if ctx.git_revision.startswith("v") else ctx.git_revision
    ctx.kconfig = _load_kconfig(build, pd, ctx.resolve)
    ctx.lock, ctx.lock_path = _load_lock(ctx.project_path)
    ctx.submodules = _submodules(p for p in (ctx.idf_path, ctx.project_path) if p is not None)

    # Which components are in the firmware.
    map_file = build / f"{project_name}.map"
    dirs = {name: ctx.resolve(c["dir"]).resolve() for name, c in comps.items()}
    if map_file.is_file():
        try:
            map_text = read_bytes(map_file, what="linker map").decode("utf-8", "replace")
        except InputError as e:
            raise ManifestError(e.message, path=str(map_file)) from None
        archives = _archive_index(linked_archives(map_text))
        linked = {
            n
            for n, c in comps.items()
            if c["type"] == "LIBRARY" and c["file"] and _archive_matches(c["file"], archives)
        }
        linkage = "linker-map"
    else:
        common = pd.get("common_component_reqs") if isinstance(pd.get("common_component_reqs"), list) else []
        assert isinstance(common, list)
        own = [n for n, d in dirs.items() if _is_under(d, ctx.project_path.resolve()) and not _is_under(d, build)]
        linked = {n for n in _reachable([*own, *map(str, common)], comps) if comps[n]["type"] == "LIBRARY"}
        linkage = "requirements"
    included = set(comps) if all_components else linked

    doc_manifest = Manifest(source="")
    project_sbom = ctx.project_path / "sbom.yml"
    if project_sbom.is_file():
        doc_manifest = parse_manifest(load_yaml_file(project_sbom), source=str(project_sbom), project=True)
    document = doc_manifest.document
    first_party = (document.manufacturer or document.supplier) if document else None
    first_party = first_party or doc_manifest.supplier

    component_dirs = frozenset(dirs[n] for n in comps)
    refs: dict[str, str] = {}
    for name in sorted(included):
        d = dirs[name]
        if not d.is_dir():
            raise ManifestError("component directory not found", path=pd_path, field=f"build_component_info.{name}.dir")
        defaults: dict[str, Any] = {}
        props = [("medfw:idf:component", name)]
        kind = "component"
        fallback: Manifest | None = None
        if name in ctx.lock:
            fallback = _lock_manifest(ctx.lock[name], ctx.lock_path or "dependencies.lock")
            kind = "managed-component"
        elif _is_under(d, ctx.idf_path):
            assert ctx.idf_path is not None
            if ctx.idf_version:
                defaults["version"] = ctx.idf_version
                rel = d.relative_to(ctx.idf_path).as_posix()
                defaults["purl"] = f"pkg:github/espressif/esp-idf@{ctx.git_revision}#{rel}"
            fallback = parse_manifest(defaults, source=f"{pd_path} git_revision")
            fallback = replace(fallback, supplier=ESPRESSIF)
        elif _is_under(d, ctx.project_path.resolve()):
            if project_version:
                defaults["version"] = project_version
                defaults["purl"] = f"pkg:generic/{project_name}/{name}@{{}}"
            fallback = replace(parse_manifest(defaults, source=f"{pd_path} project_version"), supplier=first_party)
        if comps[name]["type"] != "LIBRARY":
            props.append(("medfw:idf:config-only", "true"))
        props.append(("medfw:package:kind", kind))
        ref = _package(
            ctx,
            d,
            ref=f"component:{name}",
            default_name=name,
            defaults=fallback,
            properties=props,
            depends_on=[],
            skip_dirs=component_dirs - {d},
        )
        if ref is not None:
            refs[name] = ref

    # The dependency graph between build components.
    specs = {s.ref: s for s in ctx.specs}
    for name, ref in refs.items():
        reqs = [refs[r] for r in comps[name]["reqs"] if r in refs and r != name]
        spec = specs[ref]
        specs[ref] = replace(spec, depends_on=tuple(sorted(set(spec.depends_on) | set(reqs))))
    required = {r for n in refs for r in comps[n]["reqs"]}
    roots = [n for n in refs if n not in required]
    reach = _reachable(roots, {n: comps[n] for n in refs})
    for n in sorted(refs):
        if n not in reach:
            roots.append(n)
            reach |= _reachable([n], {k: comps[k] for k in refs})

    top: list[str] = [refs[n] for n in roots]
    framework: list[ComponentSpec] = []
    if ctx.idf_version:
        fw_manifest = parse_manifest(
            {
                "name": "esp-idf",
                "version": ctx.idf_version,
                "cpe": "cpe:2.3:a:espressif:esp-idf:{}:*:*:*:*:*:*:*",
                "purl": f"pkg:github/espressif/esp-idf@{ctx.git_revision}",
                "repository": "https://github.com/espressif/esp-idf",
                "license": "Apache-2.0",
                "description": "Espressif IoT Development Framework",
            },
            source=f"{pd_path} git_revision",
        )
        framework.append(
            to_spec(
                replace(fw_manifest, supplier=ESPRESSIF),
                ref="framework:esp-idf",
                default_name="esp-idf",
                kind="framework",
                properties=[("medfw:package:kind", "framework")],
            )
        )
        top.append("framework:esp-idf")

    components = apply_support([*framework, *specs.values()], doc_manifest.support)
    source_roots = [(ctx.project_path.resolve(), "")]
    if ctx.idf_path is not None:
        source_roots.append((ctx.idf_path, "${IDF_PATH}"))
    components = relative_sources(components, source_roots)
    hashes: list[tuple[str, str]] = list(doc_manifest.hashes)
    app_bin = pd.get("app_bin")
    if isinstance(app_bin, str) and app_bin:
        bin_path = ctx.resolve(app_bin)
        if bin_path.is_file() and bin_path.stat().st_size <= _APP_BIN_LIMIT:
            digest = _file_sha256(bin_path)
            if digest:
                hashes.append(("SHA-256", digest))
    properties = [("medfw:linkage", linkage), ("medfw:build:system", "esp-idf")]
    target = pd.get("target")
    if isinstance(target, str) and target:
        properties.append(("medfw:idf:target", target))
    if ctx.git_revision:
        properties.append(("medfw:idf:version", ctx.git_revision))
    fw_cpes = tuple(c.replace("{}", doc_manifest.version or project_version or "*") for c in doc_manifest.cpe)
    return ProjectSpec(
        ref=f"firmware:{doc_manifest.name or project_name}",
        name=doc_manifest.name or project_name,
        version=doc_manifest.version or project_version,
        description=doc_manifest.description,
        supplier=(document.supplier if document else None) or doc_manifest.supplier,
        manufacturer=document.manufacturer if document else None,
        supplier_url=document.supplier_url if document else None,
        manufacturer_url=document.manufacturer_url if document else None,
        license=doc_manifest.license,
        hashes=tuple(sorted(set(hashes))),
        cpes=fw_cpes,
        purl=doc_manifest.purl.replace("{}", doc_manifest.version or project_version or "")
        if doc_manifest.purl
        else None,
        components=tuple(sorted(components, key=lambda c: c.ref)),
        depends_on=tuple(sorted(set(top))),
        properties=tuple(sorted(set(properties))),
    )
