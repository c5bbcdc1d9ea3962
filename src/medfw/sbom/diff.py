"""``medfw sbom diff``: what changed between two releases' SBOMs (added, removed, changed components).

Components are paired by bom-ref first (medfw's bom-refs come from where a component lives, not from its
version, so they are stable between releases), then, for what is left, by purl without version, then by name when
that is unambiguous. Compared fields: version, purl, CPEs, supplier, licenses, hashes, support level, end of
support and the cve-exclude statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packageurl import PackageURL

from medfw.sbom.document import SbomComponent, SbomDocument

__all__ = ["ComponentChange", "SbomDiff", "diff_sboms"]

_FIELDS = (
    "version",
    "purl",
    "cpes",
    "supplier",
    "licenses",
    "hashes",
    "support_level",
    "end_of_support",
    "cve_excludes",
)


@dataclass(frozen=True)
class ComponentChange:
    """One component present in both SBOMs whose fields differ: ``changes`` maps field → (old, new)."""

    old: SbomComponent
    new: SbomComponent
    changes: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class SbomDiff:
    """Added, removed and changed components, each sorted by name then bom-ref."""

    added: tuple[SbomComponent, ...]
    removed: tuple[SbomComponent, ...]
    changed: tuple[ComponentChange, ...]
    old_firmware: tuple[str | None, str | None]
    new_firmware: tuple[str | None, str | None]

    @property
    def empty(self) -> bool:
        """True when nothing was added, removed or changed."""
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by ``--json``)."""

        def brief(c: SbomComponent) -> dict[str, Any]:
            return {"bom-ref": c.bom_ref, "name": c.name, "version": c.version, "purl": c.purl}

        def plain(v: Any) -> Any:
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if hasattr(v, "__dataclass_fields__"):
                return {k: getattr(v, k) for k in v.__dataclass_fields__}
            return v

        return {
            "old": {"name": self.old_firmware[0], "version": self.old_firmware[1]},
            "new": {"name": self.new_firmware[0], "version": self.new_firmware[1]},
            "added": [brief(c) for c in self.added],
            "removed": [brief(c) for c in self.removed],
            "changed": [
                {
                    **brief(ch.new),
                    "old_version": ch.old.version,
                    "changes": {k: {"old": plain(o), "new": plain(n)} for k, (o, n) in sorted(ch.changes.items())},
                }
                for ch in self.changed
            ],
        }


def _purl_base(c: SbomComponent) -> str | None:
    if not c.purl:
        return None
    try:
        p = PackageURL.from_string(c.purl)
    except ValueError:
        return None
    return str(PackageURL(type=p.type, namespace=p.namespace, name=p.name, subpath=p.subpath).to_string())


def _key(c: SbomComponent) -> tuple[str, str]:
    return (c.name.lower(), c.bom_ref or "")


def _pair(old: list[SbomComponent], new: list[SbomComponent], key: Any) -> list[tuple[SbomComponent, SbomComponent]]:
    pairs: list[tuple[SbomComponent, SbomComponent]] = []
    old_by: dict[Any, list[SbomComponent]] = {}
    new_by: dict[Any, list[SbomComponent]] = {}
    for c in old:
        if key(c) is not None:
            old_by.setdefault(key(c), []).append(c)
    for c in new:
        if key(c) is not None:
            new_by.setdefault(key(c), []).append(c)
    for k, olds in old_by.items():
        news = new_by.get(k, [])
        if len(olds) == 1 and len(news) == 1:
            pairs.append((olds[0], news[0]))
    for o, n in pairs:
        old.remove(o)
        new.remove(n)
    return pairs


def diff_sboms(old: SbomDocument, new: SbomDocument) -> SbomDiff:
    """Compare two SBOMs."""
    olds = list(old.components)
    news = list(new.components)
    pairs = _pair(olds, news, lambda c: c.bom_ref)
    pairs += _pair(olds, news, _purl_base)
    pairs += _pair(olds, news, lambda c: c.name.lower())
    changed: list[ComponentChange] = []
    for o, n in pairs:
        changes: dict[str, tuple[Any, Any]] = {}
        for f in _FIELDS:
            a, b = getattr(o, f), getattr(n, f)
            if isinstance(a, tuple):
                a, b = tuple(sorted(a, key=repr)), tuple(sorted(b, key=repr))
            if a != b:
                changes[f] = (a, b)
        if changes:
            changed.append(ComponentChange(old=o, new=n, changes=changes))

    def fw(d: SbomDocument) -> tuple[str | None, str | None]:
        return (d.component.name, d.component.version) if d.component else (None, None)

    return SbomDiff(
        added=tuple(sorted(news, key=_key)),
        removed=tuple(sorted(olds, key=_key)),
        changed=tuple(sorted(changed, key=lambda ch: _key(ch.new))),
        old_firmware=fw(old),
        new_firmware=fw(new),
    )
