"""Domain values of the SBOM mechanism: what a build declares about its components.

These are pure, immutable records. Readers (:mod:`medfw.sbom.idf`, :mod:`medfw.sbom.project`) produce them from
build inputs, the binary scanner (:mod:`medfw.sbom.binscan`) adds :class:`Finding` evidence, and
:mod:`medfw.sbom.build` turns a :class:`ProjectSpec` into a CycloneDX document.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from medfw.errors import ManifestError

__all__ = [
    "SUPPORT_LEVELS",
    "ComponentSpec",
    "CveExclusion",
    "Entity",
    "EntityKind",
    "Finding",
    "ProjectSpec",
    "SupportLevel",
]


class SupportLevel(enum.StrEnum):
    """The ``support-level`` manifest key (FDA "level of support"), written to the SBOM as the
    ``medfw:support:level`` component property."""

    ACTIVELY_MAINTAINED = "actively-maintained"
    NO_LONGER_MAINTAINED = "no-longer-maintained"
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"


class EntityKind(enum.StrEnum):
    """Who an :class:`Entity` is, in the esp-idf-sbom notation."""

    PERSON = "Person"
    ORGANIZATION = "Organization"


#: the values of :class:`SupportLevel`, in order (for messages)
SUPPORT_LEVELS: tuple[str, ...] = tuple(SupportLevel)

_ENTITY_RE = re.compile(r"^(Person|Organization):\s*(.*?)\s*$", re.DOTALL)
_EMAIL_RE = re.compile(r"\(([^()\s]+@[^()\s]+)\)")
_URL_RE = re.compile(r"<(https?://[^<>\s]+)>")


@dataclass(frozen=True)
class Entity:
    """A person or organization, as written in manifests: ``Organization: Name (mail@x) <https://url>``.

    Raises:
        ValueError: ``kind`` is not an :class:`EntityKind` value.
    """

    kind: EntityKind
    name: str
    email: str | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EntityKind(self.kind))

    @classmethod
    def parse(cls, text: str, *, path: str | None = None, key: str | None = None) -> Entity:
        """Parse the esp-idf-sbom ``Person: …`` / ``Organization: …`` notation.

        Raises:
            ManifestError: the prefix is missing or the name is empty.
        """
        m = _ENTITY_RE.match(text)
        if m is None:
            raise ManifestError(f'value {text!r} must start with "Person: " or "Organization: "', path=path, field=key)
        rest = m.group(2)
        email_m = _EMAIL_RE.search(rest)
        url_m = _URL_RE.search(rest)
        name = _URL_RE.sub("", _EMAIL_RE.sub("", rest)).strip()
        if not name:
            raise ManifestError(f"value {text!r} has an empty name", path=path, field=key)
        return cls(
            kind=EntityKind(m.group(1)),
            name=name,
            email=email_m.group(1) if email_m else None,
            url=url_m.group(1) if url_m else None,
        )


@dataclass(frozen=True)
class CveExclusion:
    """A vulnerability the supplier states does not apply (``cve-exclude-list`` entry; VEX ``not_affected`` input)."""

    cve: str
    reason: str
    justification: str | None = None


@dataclass(frozen=True)
class Finding:
    """One library identified in a binary.

    Attributes:
        library: key of the signature that matched (``mbedtls``, ``openssl``, …) or the package-note name.
        name: component name to report.
        version: version read from the binary (``None`` when only presence is known).
        source: file name of the scanned binary.
        offset: byte offset of the match in that file.
        text: the matched bytes, decoded (for reviewers).
        method: ``binary-analysis`` (string signature) or ``elf-package-note``.
        confidence: 0..1.
        cpe: CPE 2.3 name with the found version, when the library has one.
        purl: package URL with the found version, when known.
        license: SPDX expression from a package note.
    """

    library: str
    name: str
    version: str | None
    source: str
    offset: int
    text: str
    method: str
    confidence: float
    cpe: str | None = None
    purl: str | None = None
    license: str | None = None


@dataclass(frozen=True)
class ComponentSpec:
    """Everything declared (or found) about one component of the firmware.

    ``ref`` is the stable bom-ref: it is derived from where the component lives, not from its version, so it stays
    the same between releases (``medfw sbom diff`` relies on that).
    """

    ref: str
    name: str
    version: str | None
    kind: str = "library"
    description: str | None = None
    supplier: Entity | None = None
    originator: Entity | None = None
    cpes: tuple[str, ...] = ()
    purl: str | None = None
    license: str | None = None
    copyright: tuple[str, ...] = ()
    hashes: tuple[tuple[str, str], ...] = ()
    repository: str | None = None
    url: str | None = None
    cve_excludes: tuple[CveExclusion, ...] = ()
    cve_keywords: tuple[str, ...] = ()
    support_level: SupportLevel | None = None
    end_of_support: str | None = None
    sources: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.support_level is not None:
            object.__setattr__(self, "support_level", SupportLevel(self.support_level))


@dataclass(frozen=True)
class ProjectSpec:
    """The firmware (``metadata.component``) and all of its components.

    ``depends_on`` lists the refs the firmware depends on directly.
    """

    ref: str
    name: str
    version: str | None
    description: str | None = None
    supplier: Entity | None = None
    manufacturer: Entity | None = None
    supplier_url: str | None = None
    manufacturer_url: str | None = None
    license: str | None = None
    hashes: tuple[tuple[str, str], ...] = ()
    cpes: tuple[str, ...] = ()
    purl: str | None = None
    components: tuple[ComponentSpec, ...] = ()
    depends_on: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = field(default=())
