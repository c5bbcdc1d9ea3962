"""The parsed forms of a component manifest (medfw-sbom.yml / sbom.yml) and the checked readers of its fields;
:func:`medfw.sbom.manifest.parse_manifest` puts them together."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from medfw.errors import ManifestError
from medfw.sbom._validate import check_cpe, check_cve_id, check_date, check_purl
from medfw.sbom.model import SUPPORT_LEVELS, CveExclusion, Entity, SupportLevel
from medfw.vuln.vocabulary import ALL_JUSTIFICATION_LABELS

_JUSTIFICATIONS = ALL_JUSTIFICATION_LABELS  # CycloneDX and CISA/OpenVEX/CSAF labels: one vocabulary
_HASH_ALGS = {"sha-1": 40, "sha-256": 64, "sha-384": 96, "sha-512": 128, "sha3-256": 64, "sha3-512": 128}
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")
_CPE_SAFE = re.compile(r"[A-Za-z0-9\-._]")
_URL_RE = re.compile(r"^(?:https?|git|ssh)://[^\s]+$|^git@[^\s]+$")

__all__ = ["DocumentInfo", "Manifest", "ManifestRef", "SupportRule", "expand_cpe", "expand_purl"]


@dataclass(frozen=True)
class ManifestRef:
    """A ``manifests:`` entry: another manifest (a file or embedded) describing directory ``dest``."""

    dest: str
    path: str | None = None
    embedded: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DocumentInfo:
    """The ``document:`` key of a project manifest: who supplies and who manufactures the firmware."""

    supplier: Entity | None = None
    supplier_url: str | None = None
    manufacturer: Entity | None = None
    manufacturer_url: str | None = None


@dataclass(frozen=True)
class SupportRule:
    """A project-level ``support:`` entry: support data for components named ``name`` (``*`` = all others)."""

    name: str
    level: SupportLevel | None
    end_of_support: str | None


@dataclass(frozen=True)
class Manifest:
    """One validated manifest. ``cpe`` and ``purl`` keep their ``{}`` placeholders until the version is final."""

    source: str
    name: str | None = None
    version: str | None = None
    description: str | None = None
    repository: str | None = None
    url: str | None = None
    cpe: tuple[str, ...] = ()
    purl: str | None = None
    supplier: Entity | None = None
    originator: Entity | None = None
    license: str | None = None
    copyright: tuple[str, ...] = ()
    hashes: tuple[tuple[str, str], ...] = ()
    cve_excludes: tuple[CveExclusion, ...] = ()
    cve_keywords: tuple[str, ...] = ()
    manifests: tuple[ManifestRef, ...] = ()
    virtpackages: tuple[str, ...] = ()
    condition: str | None = None
    document: DocumentInfo | None = None
    support_level: SupportLevel | None = None
    end_of_support: str | None = None
    type: str | None = None
    depends_on: tuple[str, ...] = ()
    components: tuple[Any, ...] = ()
    kconfig: str | None = None
    support: tuple[SupportRule, ...] = ()
    extra_sources: tuple[str, ...] = field(default=())

    def is_empty(self) -> bool:
        """True when the manifest declares nothing."""
        return all(getattr(self, f.name) in (None, ()) for f in fields(self) if f.name not in ("source",))

    def merged(self, fallback: Manifest) -> Manifest:
        """Return this manifest with every key it lacks taken from ``fallback`` (first source wins)."""
        updates: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("source", "extra_sources"):
                continue
            if getattr(self, f.name) in (None, ()) and getattr(fallback, f.name) not in (None, ()):
                updates[f.name] = getattr(fallback, f.name)
        if not updates:
            return self
        sources = (*self.extra_sources, fallback.source, *fallback.extra_sources)
        return replace(self, **updates, extra_sources=sources)


def _str(value: Any, key: str, path: str, *, allow_int: bool = False) -> str:
    if isinstance(value, bool):
        raise ManifestError(f"'{key}' must be a string", path=path, field=key)
    if allow_int and isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ManifestError(f"'{key}' must be a string, not {type(value).__name__}", path=path, field=key)
    return value


def _str_list(value: Any, key: str, path: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(_str(v, key, path) for v in items)


def _url(value: Any, key: str, path: str) -> str:
    s = _str(value, key, path)
    if not _URL_RE.match(s):
        raise ManifestError(f"'{key}' must be a git, http or https URL, not {s!r}", path=path, field=key)
    return s


def _reject_unknown(entry: Mapping[Any, Any], allowed: set[str], where: str, path: str) -> None:
    unknown = sorted(set(map(str, entry)) - allowed)
    if unknown:
        raise ManifestError(f"unknown key '{unknown[0]}'", path=path, field=f"{where}.{unknown[0]}")


def _list_entries(value: Any, key: str, path: str) -> Iterator[tuple[str, Any]]:
    """The entries of the list at ``key``, each with its ``key[i]`` name."""
    if not isinstance(value, list):
        raise ManifestError(f"'{key}' must be a list", path=path, field=key)
    for i, entry in enumerate(value):
        yield f"{key}[{i}]", entry


def _escape_cpe_value(version: str) -> str:
    return "".join(c if _CPE_SAFE.match(c) else "\\" + c for c in version)


def expand_cpe(template: str, version: str | None, *, path: str | None = None) -> str:
    """Substitute the ``{}`` placeholder of a CPE with ``version`` (CPE-escaped) and validate the result."""
    if "{}" in template:
        value = _escape_cpe_value(version) if version else "*"
        template = template.replace("{}", value)
    return check_cpe(template, path=path)


def expand_purl(template: str, version: str | None, *, path: str | None = None) -> str:
    """Substitute the ``{}`` placeholder of a package URL with ``version`` and validate the result."""
    if "{}" in template:
        template = template.replace("{}", version) if version else template.replace("@{}", "").replace("{}", "")
    return check_purl(template, path=path)


def _cve_excludes(value: Any, path: str) -> tuple[CveExclusion, ...]:
    out: list[CveExclusion] = []
    for where, entry in _list_entries(value, "cve-exclude-list", path):
        if not isinstance(entry, dict):
            raise ManifestError("entry must be a mapping with 'cve' and 'reason'", path=path, field=where)
        _reject_unknown(entry, {"cve", "reason", "justification"}, where, path)
        if "cve" not in entry or "reason" not in entry:
            missing = "cve" if "cve" not in entry else "reason"
            raise ManifestError(f"missing '{missing}'", path=path, field=f"{where}.{missing}")
        cve = check_cve_id(entry["cve"], path=path, key=f"{where}.cve")
        reason = _str(entry["reason"], f"{where}.reason", path)
        justification = entry.get("justification")
        if justification is not None:
            justification = _str(justification, f"{where}.justification", path)
            if justification not in _JUSTIFICATIONS:
                raise ManifestError(
                    f"unknown justification {justification!r}", path=path, field=f"{where}.justification"
                )
        out.append(CveExclusion(cve=cve, reason=reason, justification=justification))
    return tuple(out)


def _manifest_refs(value: Any, path: str) -> tuple[ManifestRef, ...]:
    out: list[ManifestRef] = []
    for where, entry in _list_entries(value, "manifests", path):
        if not isinstance(entry, dict):
            raise ManifestError("entry must be a mapping", path=path, field=where)
        _reject_unknown(entry, {"path", "manifest", "dest"}, where, path)
        if "dest" not in entry:
            raise ManifestError("missing 'dest'", path=path, field=f"{where}.dest")
        if ("path" in entry) == ("manifest" in entry):
            raise ManifestError("exactly one of 'path' or 'manifest' is required", path=path, field=where)
        embedded = entry.get("manifest")
        if embedded is not None and not isinstance(embedded, dict):
            raise ManifestError("'manifest' must be a mapping", path=path, field=f"{where}.manifest")
        out.append(
            ManifestRef(
                dest=_str(entry["dest"], f"{where}.dest", path),
                path=_str(entry["path"], f"{where}.path", path) if "path" in entry else None,
                embedded=embedded,
            )
        )
    return tuple(out)


def _document(value: Any, path: str) -> DocumentInfo:
    if not isinstance(value, dict):
        raise ManifestError("'document' must be a mapping", path=path, field="document")
    _reject_unknown(value, {"supplier", "manufacturer"}, "document", path)
    parts: dict[str, Any] = {}
    for role in ("supplier", "manufacturer"):
        entry = value.get(role)
        if entry is None:
            continue
        where = f"document.{role}"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ManifestError("must be a mapping with 'name'", path=path, field=where)
        _reject_unknown(entry, {"name", "url", "contact"}, where, path)
        ent = Entity.parse(_str(entry["name"], f"{where}.name", path), path=path, key=f"{where}.name")
        contact = entry.get("contact")
        if contact is not None:
            ent = replace(ent, email=_str(contact, f"{where}.contact", path))
        parts[role] = ent
        parts[f"{role}_url"] = _url(entry["url"], f"{where}.url", path) if "url" in entry else None
    return DocumentInfo(**parts)


def _hashes(value: Any, path: str, key: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ManifestError(f"'{key}' must map an algorithm (SHA-256, …) to a hex digest", path=path, field=key)
    out: list[tuple[str, str]] = []
    for alg, digest in value.items():
        alg_s = str(alg).upper()
        want = _HASH_ALGS.get(alg_s.lower())
        digest_s = _str(digest, f"{key}.{alg}", path).lower()
        if want is None:
            raise ManifestError(f"unsupported hash algorithm {alg!r}", path=path, field=f"{key}.{alg}")
        if len(digest_s) != want or not _HEX_RE.match(digest_s):
            raise ManifestError(f"{alg_s} digest must be {want} hex digits", path=path, field=f"{key}.{alg}")
        out.append((alg_s, digest_s))
    return tuple(sorted(out))


def _support_rules(value: Any, path: str) -> tuple[SupportRule, ...]:
    out: list[SupportRule] = []
    for where, entry in _list_entries(value, "support", path):
        if not isinstance(entry, dict) or "name" not in entry:
            raise ManifestError("entry must be a mapping with 'name'", path=path, field=where)
        _reject_unknown(entry, {"name", "support-level", "end-of-support"}, where, path)
        level = entry.get("support-level")
        if level is not None and level not in SUPPORT_LEVELS:
            raise ManifestError(
                f"support-level must be one of {', '.join(SUPPORT_LEVELS)}", path=path, field=f"{where}.support-level"
            )
        eos = entry.get("end-of-support")
        out.append(
            SupportRule(
                name=_str(entry["name"], f"{where}.name", path),
                level=SupportLevel(level) if level is not None else None,
                end_of_support=check_date(eos, path=path, key=f"{where}.end-of-support") if eos is not None else None,
            )
        )
    return tuple(out)
