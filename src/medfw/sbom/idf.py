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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.errors import InputError, ManifestError
from medfw.sbom._assemble import apply_support, condition_holds, load_manifest_file, relative_sources, to_spec
from medfw.sbom._gitmodules import parse_gitmodules
from medfw.sbom._kconfig import KconfigValue, parse_sdkconfig, values_from_json
from medfw.sbom._yaml import MAX_INPUT, load_json_file, load_yaml_file
from medfw.sbom.manifest import Manifest, gitmodule_manifest, parse_manifest
from medfw.sbom.model import ComponentSpec, Entity, ProjectSpec

__all__ = ["ESPRESSIF", "linked_archives", "read_idf_build"]

ESPRESSIF = Entity(kind="Organization", name="Espressif Systems (Shanghai) CO LTD")
_REQ_KEYS = ("reqs", "priv_reqs", "managed_reqs", "managed_priv_reqs")
_MAP_HEADER = "Archive member included to satisfy reference by file (symbol)"
_MAX_WALK_DIRS = 200_000
_APP_BIN_LIMIT = 64 * 1024 * 1024
_IDF_COMPONENT_PLAIN = ("version", "description", "url", "repository", "license")


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


@dataclass
class _Ctx:
    build_dir: Path
    pd_path: str
    pd: Mapping[str, Any]
    project_path: Path
    idf_path: Path | None
    idf_version: str | None
    git_revision: str | None
    kconfig: dict[str, KconfigValue] | None
    submodules: dict[Path, Manifest] = field(default_factory=dict)
    referenced: dict[Path, Manifest] = field(default_factory=dict)
    lock: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    lock_path: str | None = None
    specs: list[ComponentSpec] = field(default_factory=list)
    walked: int = 0

    def resolve(self, p: str) -> Path:
        """Resolve a path from project_description.json, following a build directory that was moved."""
        path = Path(p)
        if not path.is_absolute():
            return (self.build_dir / path).resolve()
        orig_build = self.pd.get("build_dir")
        if isinstance(orig_build, str) and orig_build and not path.exists():
            try:
                return self.build_dir / path.relative_to(orig_build)
            except ValueError:
                pass
            orig_project = self.pd.get("project_path")
            if isinstance(orig_project, str) and orig_project:
                try:
                    return self.project_path / path.relative_to(orig_project)
                except ValueError:
                    pass
        return path


def _str_field(pd: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = pd.get(key)
    if value is None or value == "":
        if required:
            raise ManifestError(f"missing '{key}'", path=path, field=key)
        return None
    if not isinstance(value, str):
        raise ManifestError(f"'{key}' must be a string", path=path, field=key)
    return value


def _load_kconfig(ctx_build: Path, pd: Mapping[str, Any], resolve: Any) -> dict[str, KconfigValue] | None:
    json_path = ctx_build / "config" / "sdkconfig.json"
    if json_path.is_file():
        return values_from_json(load_json_file(json_path, what="sdkconfig.json"), path=str(json_path))
    candidates: list[Path] = []
    cfg = pd.get("config_file")
    if isinstance(cfg, str) and cfg:
        candidates.append(resolve(cfg))
    candidates.append(ctx_build.parent / "sdkconfig")
    for cand in candidates:
        if cand.is_file():
            try:
                text = read_bytes(cand, max_length=MAX_INPUT, what="sdkconfig").decode("utf-8", "replace")
            except InputError as e:
                raise ManifestError(e.message, path=str(cand)) from None
            return parse_sdkconfig(text)
    return None


def _load_lock(project_path: Path) -> tuple[dict[str, Mapping[str, Any]], str | None]:
    lock_path = project_path / "dependencies.lock"
    if not lock_path.is_file():
        return {}, None
    data = load_yaml_file(lock_path)
    if not isinstance(data, dict) or not isinstance(data.get("dependencies", {}), dict):
        raise ManifestError("'dependencies' must be a mapping", path=str(lock_path), field="dependencies")
    out: dict[str, Mapping[str, Any]] = {}
    for name, entry in (data.get("dependencies") or {}).items():
        if not isinstance(entry, dict):
            raise ManifestError("entry must be a mapping", path=str(lock_path), field=f"dependencies.{name}")
        out[str(name).replace("/", "__")] = {"_name": str(name), **entry}
    return out, str(lock_path)


def _lock_manifest(entry: Mapping[str, Any], lock_path: str) -> Manifest:
    name = str(entry["_name"])
    version = entry.get("version")
    source = entry.get("source") if isinstance(entry.get("source"), dict) else {}
    assert isinstance(source, dict)
    data: dict[str, Any] = {}
    if isinstance(version, str | int) and not isinstance(version, bool):
        data["version"] = str(version)
    digest = entry.get("component_hash")
    if isinstance(digest, str) and re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        data["hashes"] = {"SHA-256": digest.lower()}
    registry = source.get("registry_url") or source.get("service_url")
    if source.get("type") == "service" and isinstance(registry, str) and registry.startswith("https://"):
        ns, _, short = name.rpartition("/")
        data["url"] = f"{registry.rstrip('/')}/components/{name}"
        if ns:
            data["purl"] = f"pkg:generic/{ns}/{short}@{{}}?repository_url={registry.rstrip('/')}"
            # The registry namespace is the publishing account: the supplier of the packaged component.
            data["supplier"] = f"Organization: {ESPRESSIF.name}" if ns == "espressif" else f"Organization: {ns}"
    elif source.get("type") == "git" and isinstance(source.get("git"), str):
        data["repository"] = source["git"]
    return parse_manifest(data, source=f"{lock_path} dependencies.{name}")


def _dir_manifest(ctx: _Ctx, directory: Path) -> Manifest:
    """Merge every manifest source that describes ``directory``, first source winning key by key."""
    sources: list[Manifest] = []
    if directory in ctx.referenced:
        sources.append(ctx.referenced[directory])
    sbom_yml = directory / "sbom.yml"
    if sbom_yml.is_file():
        sources.append(load_manifest_file(sbom_yml))
    idf_component = directory / "idf_component.yml"
    plain: Manifest | None = None
    if idf_component.is_file():
        data = load_yaml_file(idf_component)
        if data is not None and not isinstance(data, dict):
            raise ManifestError("idf_component.yml must be a mapping", path=str(idf_component))
        data = data or {}
        comp_version = data.get("version")
        comp_version_s = str(comp_version) if isinstance(comp_version, str | int) else None
        if "sbom" in data:
            sources.append(parse_manifest(data["sbom"], source=f"{idf_component} sbom", default_version=comp_version_s))
        plain_data = {k: data[k] for k in _IDF_COMPONENT_PLAIN if k in data}
        plain = parse_manifest(plain_data, source=str(idf_component))
        maintainers = data.get("maintainers")
        if isinstance(maintainers, list) and maintainers and all(isinstance(m, str) for m in maintainers):
            plain = plain.merged(
                Manifest(source=str(idf_component), supplier=Entity(kind="Person", name=", ".join(maintainers)))
            )
    if directory in ctx.submodules:
        sources.append(ctx.submodules[directory])
    if plain is not None:
        sources.append(plain)
    if not sources:
        return Manifest(source="")
    merged = sources[0]
    for m in sources[1:]:
        merged = merged.merged(m)
    return merged


def _register_refs(ctx: _Ctx, manifest: Manifest, base: Path) -> None:
    for i, ref in enumerate(manifest.manifests):
        dest = (base / ref.dest).resolve()
        if not dest.is_dir():
            raise ManifestError(
                f"destination directory {ref.dest!r} not found", path=manifest.source, field=f"manifests[{i}].dest"
            )
        if ref.path is not None:
            target = (base / ref.path).resolve()
            if not target.is_file():
                raise ManifestError(
                    f"referenced manifest {ref.path!r} not found", path=manifest.source, field=f"manifests[{i}].path"
                )
            ctx.referenced.setdefault(dest, load_manifest_file(target))
        else:
            ctx.referenced.setdefault(
                dest, parse_manifest(ref.embedded, source=f"{manifest.source} manifests[{i}].manifest")
            )


def _manifest_base(manifest: Manifest, directory: Path) -> Path:
    """Directory that relative paths in ``manifest`` refer to: its file's directory (sources may carry a suffix
    such as ``idf_component.yml sbom``), else ``directory``."""
    parts = manifest.source.split(" ")
    for n in range(len(parts), 0, -1):
        candidate = Path(" ".join(parts[:n]))
        if candidate.is_file():
            return candidate.parent
    return directory


def _virtpackages(ctx: _Ctx, manifest: Manifest, directory: Path, parent_ref: str) -> list[str]:
    refs: list[str] = []
    base = _manifest_base(manifest, directory)
    for i, rel in enumerate(manifest.virtpackages):
        path = (base / rel).resolve()
        if not path.is_file():
            raise ManifestError(
                f"virtual package manifest {rel!r} not found", path=manifest.source, field=f"virtpackages[{i}]"
            )
        vm = load_manifest_file(path)
        if not condition_holds(vm, ctx.kconfig):
            continue
        ref = f"{parent_ref}#{path.name}"
        ctx.specs.append(to_spec(vm, ref=ref, default_name=path.stem, properties=[("medfw:package:kind", "virtual")]))
        refs.append(ref)
    return refs


def _is_package_dir(ctx: _Ctx, d: Path) -> bool:
    return (d / "sbom.yml").is_file() or d in ctx.referenced or d in ctx.submodules


def _package(
    ctx: _Ctx,
    directory: Path,
    *,
    ref: str,
    default_name: str,
    defaults: Manifest | None,
    properties: list[tuple[str, str]],
    depends_on: Iterable[str] = (),
    skip_dirs: frozenset[Path] = frozenset(),
) -> str | None:
    """Describe ``directory`` (and, recursively, its sub-packages); return its ref or ``None`` if excluded."""
    manifest = _dir_manifest(ctx, directory)
    if defaults is not None:
        manifest = manifest.merged(defaults) if not manifest.is_empty() else replace(defaults)
    if not condition_holds(manifest, ctx.kconfig):
        return None
    _register_refs(ctx, manifest, _manifest_base(manifest, directory))
    children = list(depends_on)
    children += _virtpackages(ctx, manifest, directory, ref)
    children += _subpackages(ctx, directory, ref, skip_dirs)
    ctx.specs.append(to_spec(manifest, ref=ref, default_name=default_name, depends_on=children, properties=properties))
    return ref


def _subpackages(ctx: _Ctx, directory: Path, parent_ref: str, skip_dirs: frozenset[Path]) -> list[str]:
    """Find the nearest package directories below ``directory`` and describe each (they recurse themselves)."""
    found: list[Path] = []
    for root, dirs, _files in os.walk(directory):
        ctx.walked += 1
        if ctx.walked > _MAX_WALK_DIRS:
            raise ManifestError("too many directories below the components", path=str(directory))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        root_p = Path(root)
        keep: list[str] = []
        for d in dirs:
            sub = (root_p / d).resolve()
            if sub in skip_dirs:
                continue
            if _is_package_dir(ctx, sub):
                found.append(sub)
            else:
                keep.append(d)
        dirs[:] = keep
    refs: list[str] = []
    for sub in sorted(found):
        rel = sub.relative_to(directory.resolve()).as_posix()
        ref = _package(
            ctx,
            sub,
            ref=f"{parent_ref}/{rel}",
            default_name=sub.name,
            defaults=None,
            properties=[("medfw:package:kind", "subpackage")],
            skip_dirs=skip_dirs,
        )
        if ref is not None:
            refs.append(ref)
    return refs


def _submodules(roots: Iterable[Path]) -> dict[Path, Manifest]:
    out: dict[Path, Manifest] = {}
    for root in roots:
        gm = root / ".gitmodules"
        if not gm.is_file():
            continue
        try:
            text = read_bytes(gm, max_length=MAX_INPUT, what=".gitmodules").decode("utf-8", "replace")
        except InputError as e:
            raise ManifestError(e.message, path=str(gm)) from None
        for name, keys in sorted(parse_gitmodules(text, path=str(gm)).items()):
            if not any(k.startswith("sbom-") for k in keys) or "path" not in keys:
                continue
            out[(root / keys["path"][-1]).resolve()] = gitmodule_manifest(keys, source=f"{gm} submodule {name}")
    return out


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
