"""Walking an ESP-IDF project for its packages: the build context, component manifests (idf_component.yml, the
dependencies.lock), sub-packages and git submodules (see :mod:`medfw.sbom.idf`)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.errors import InputError, ManifestError
from medfw.sbom._assemble import condition_holds, load_manifest_file, to_spec
from medfw.sbom._gitmodules import parse_gitmodules
from medfw.sbom._kconfig import KconfigValue, parse_sdkconfig, values_from_json
from medfw.sbom._yaml import MAX_INPUT, load_json_file, load_yaml_file
from medfw.sbom.manifest import Manifest, gitmodule_manifest, parse_manifest
from medfw.sbom.model import ComponentSpec, Entity, EntityKind

ESPRESSIF = Entity(kind=EntityKind.ORGANIZATION, name="Espressif Systems (Shanghai) CO LTD")
_MAX_WALK_DIRS = 200_000
_IDF_COMPONENT_PLAIN = ("version", "description", "url", "repository", "license")

__all__ = [
    "ESPRESSIF",
]


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
                Manifest(
                    source=str(idf_component), supplier=Entity(kind=EntityKind.PERSON, name=", ".join(maintainers))
                )
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
