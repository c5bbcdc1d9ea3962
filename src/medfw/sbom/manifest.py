"""SBOM manifests: the ``sbom.yml`` / ``sbom_*.yml`` convention of esp-idf-sbom, plus medfw's extensions.

A manifest is a YAML mapping describing one component. Keys (esp-idf-sbom): ``name``, ``version``,
``description``, ``repository``, ``url``, ``cpe`` (string or list; ``{}`` is replaced by the version),
``purl`` (``{}`` placeholder too), ``supplier``/``originator`` (``Person: …`` / ``Organization: …``),
``license`` (SPDX expression), ``copyright``, ``custom-licenses``, ``hash`` (git tree SHA-1),
``cve-exclude-list`` (``cve``, ``reason``, optional ``justification``), ``cve-keywords``, ``manifests``
(``path``/``manifest`` + ``dest``), ``virtpackages``, ``if`` (Kconfig condition), ``document`` (project manifest only).

medfw adds: ``support-level`` (one of :data:`medfw.sbom.model.SUPPORT_LEVELS`), ``end-of-support`` (ISO date or
``unknown``), ``hashes`` (mapping algorithm → hex digest), ``type`` (CycloneDX component type), ``depends-on``
(names of other components), and, in a project manifest only, ``components``, ``kconfig`` and ``support``.

Unknown keys are errors (naming the file and the key): a typo must not silently drop data from the SBOM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medfw.errors import ManifestError
from medfw.sbom._validate import check_date, check_license
from medfw.sbom.manifest_fields import (
    _HEX_RE,
    DocumentInfo,
    Manifest,
    ManifestRef,
    SupportRule,
    _cve_excludes,
    _document,
    _hashes,
    _manifest_refs,
    _str,
    _str_list,
    _support_rules,
    _url,
    expand_cpe,
    expand_purl,
)
from medfw.sbom.model import SUPPORT_LEVELS, Entity, SupportLevel

__all__ = [
    "COMPONENT_KEYS",
    "PROJECT_KEYS",
    "DocumentInfo",
    "Manifest",
    "ManifestRef",
    "SupportRule",
    "expand_cpe",
    "expand_purl",
    "gitmodule_manifest",
    "parse_manifest",
]

COMPONENT_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "version",
        "description",
        "repository",
        "url",
        "cpe",
        "purl",
        "supplier",
        "originator",
        "license",
        "copyright",
        "custom-licenses",
        "hash",
        "cve-exclude-list",
        "cve-keywords",
        "manifests",
        "virtpackages",
        "if",
        "document",
        # medfw extensions
        "support-level",
        "end-of-support",
        "hashes",
        "type",
        "depends-on",
    }
)
PROJECT_KEYS: frozenset[str] = COMPONENT_KEYS | {"components", "kconfig", "support"}

_COMPONENT_TYPES = frozenset(
    {"library", "firmware", "operating-system", "framework", "application", "device-driver", "platform", "file"}
)


def parse_manifest(data: Any, *, source: str, project: bool = False, default_version: str | None = None) -> Manifest:
    """Validate one manifest mapping and return it as a :class:`Manifest`.

    Args:
        data: the parsed YAML (``None`` for an empty file gives an empty manifest).
        source: where it came from (file path, ``.gitmodules submodule X``), used in errors.
        project: allow the project-only keys (``components``, ``kconfig``, ``support``).
        default_version: version to use when the manifest has none (the ``sbom`` section of
            ``idf_component.yml`` inherits the component's version).

    Raises:
        ManifestError: not a mapping, an unknown key, or a malformed value (names ``source`` and the key).
    """
    path = source
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ManifestError(f"manifest must be a mapping, not {type(data).__name__}", path=path)
    allowed = PROJECT_KEYS if project else COMPONENT_KEYS
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise ManifestError(f"unknown key '{key}'", path=path, field=str(key))
    kw: dict[str, Any] = {}
    for key in ("name", "description"):
        if key in data:
            kw[key] = _str(data[key], key, path)
    if "version" in data:
        kw["version"] = _str(data["version"], "version", path, allow_int=True).strip() or None
    elif default_version and data:
        kw["version"] = default_version
    for key in ("repository", "url"):
        if key in data:
            kw[key] = _url(data[key], key, path)
    if "cpe" in data:
        cpes = _str_list(data["cpe"], "cpe", path)
        for c in cpes:
            expand_cpe(c, "0", path=path)  # structure check now, final check after version substitution
        kw["cpe"] = cpes
    if "purl" in data:
        purl = _str(data["purl"], "purl", path)
        expand_purl(purl, "0", path=path)
        kw["purl"] = purl
    for key in ("supplier", "originator"):
        if key in data:
            kw[key] = Entity.parse(_str(data[key], key, path), path=path, key=key)
    if "license" in data:
        kw["license"] = check_license(_str(data["license"], "license", path), path=path)
    if "copyright" in data:
        kw["copyright"] = _str_list(data["copyright"], "copyright", path)
    if "custom-licenses" in data and not isinstance(data["custom-licenses"], list):
        raise ManifestError("'custom-licenses' must be a list", path=path, field="custom-licenses")
    hashes: list[tuple[str, str]] = []
    if "hash" in data:
        h = _str(data["hash"], "hash", path).lower()
        if not _HEX_RE.match(h) or len(h) not in (40, 64):
            raise ManifestError("'hash' must be a git SHA-1 (40 hex digits)", path=path, field="hash")
        hashes.append(("SHA-1" if len(h) == 40 else "SHA-256", h))
    if "hashes" in data:
        hashes.extend(_hashes(data["hashes"], path, "hashes"))
    if hashes:
        kw["hashes"] = tuple(sorted(set(hashes)))
    if "cve-exclude-list" in data:
        kw["cve_excludes"] = _cve_excludes(data["cve-exclude-list"], path)
    if "cve-keywords" in data:
        kw["cve_keywords"] = _str_list(data["cve-keywords"], "cve-keywords", path)
    if "manifests" in data:
        kw["manifests"] = _manifest_refs(data["manifests"], path)
    if "virtpackages" in data:
        kw["virtpackages"] = _str_list(data["virtpackages"], "virtpackages", path)
    if "if" in data:
        kw["condition"] = _str(data["if"], "if", path)
    if "document" in data:
        kw["document"] = _document(data["document"], path)
    if "support-level" in data:
        level = _str(data["support-level"], "support-level", path)
        if level not in SUPPORT_LEVELS:
            raise ManifestError(
                f"support-level must be one of {', '.join(SUPPORT_LEVELS)}", path=path, field="support-level"
            )
        kw["support_level"] = SupportLevel(level)
    if "end-of-support" in data:
        kw["end_of_support"] = check_date(data["end-of-support"], path=path)
    if "type" in data:
        ctype = _str(data["type"], "type", path)
        if ctype not in _COMPONENT_TYPES:
            raise ManifestError(f"unknown component type {ctype!r}", path=path, field="type")
        kw["type"] = ctype
    if "depends-on" in data:
        kw["depends_on"] = _str_list(data["depends-on"], "depends-on", path)
    if "components" in data:
        if not isinstance(data["components"], list):
            raise ManifestError("'components' must be a list", path=path, field="components")
        kw["components"] = tuple(data["components"])
    if "kconfig" in data:
        kw["kconfig"] = _str(data["kconfig"], "kconfig", path)
    if "support" in data:
        kw["support"] = _support_rules(data["support"], path)
    return Manifest(source=source, **kw)


def gitmodule_manifest(keys: Mapping[str, list[str]], *, source: str) -> Manifest:
    """Turn the ``sbom-*`` keys of one ``.gitmodules`` section into a :class:`Manifest`.

    ``sbom-cve-exclude-list = CVE-… reason`` may repeat; ``sbom-manifests = path dest`` likewise.
    """
    data: dict[str, Any] = {}
    for key, values in keys.items():
        if not key.startswith("sbom-"):
            continue
        name = key[len("sbom-") :]
        if name == "cve-exclude-list":
            entries = []
            for v in values:
                parts = v.split(maxsplit=1)
                entries.append({"cve": parts[0] if parts else "", "reason": parts[1] if len(parts) > 1 else ""})
            data[name] = entries
        elif name == "manifests":
            refs = []
            for v in values:
                parts = v.split()
                refs.append({"path": parts[0] if parts else "", "dest": parts[1] if len(parts) > 1 else ""})
            data[name] = refs
        elif name in ("cpe", "cve-keywords", "copyright", "virtpackages"):
            data[name] = list(values)
        else:
            data[name] = values[-1]
    return parse_manifest(data, source=source)
