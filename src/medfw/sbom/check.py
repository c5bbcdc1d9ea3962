"""``medfw sbom check``: schema validation and per-component completeness scoring.

Elements checked (``required`` ones make the check fail; ``recommended`` ones only lower the score):

=====================  ===========  =========================================================================
element                framework    rule
=====================  ===========  =========================================================================
supplier               NTIA         component ``supplier.name`` (required)
name                   NTIA         component ``name`` (required)
version                NTIA         component ``version`` (required)
unique-identifier      NTIA         ``purl``, ``cpe`` or ``swid`` (required)
dependency             NTIA         component reachable from ``metadata.component`` in ``dependencies``
                                    (required)
hash                   CISA 2024    at least one ``hashes`` entry (recommended)
license                CISA 2024    a license or SPDX expression (recommended)
copyright              CISA 2024    ``copyright`` text (recommended)
support-level          FDA          property ``medfw:support:level`` (required)
end-of-support         FDA          property ``cdx:lifecycle:milestone:endOfSupport`` — a date or ``unknown``
                                    (required)
=====================  ===========  =========================================================================

Document level: SBOM author (``metadata.authors``, ``manufacturer``, ``supplier`` or ``tools``) and
``metadata.timestamp`` (NTIA, required); primary component ``metadata.component`` with name and version
(CISA 2024, required); SBOM type ``metadata.lifecycles`` (CISA 2024, recommended).

The score of a component is the share of all its elements present; the document score is the mean over
components. Schema validation uses the CycloneDX schema bundled with cyclonedx-python-lib (offline).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from cyclonedx.schema import OutputFormat, SchemaVersion
from cyclonedx.validation import make_schemabased_validator

from medfw.sbom.build import PROP_UNDECLARED, PROP_VERSION_MISMATCH
from medfw.sbom.document import SbomComponent, SbomDocument, parse_sbom

__all__ = ["ELEMENTS", "CheckReport", "ComponentScore", "check_sbom"]

#: (element, framework, required)
ELEMENTS: tuple[tuple[str, str, bool], ...] = (
    ("supplier", "NTIA", True),
    ("name", "NTIA", True),
    ("version", "NTIA", True),
    ("unique-identifier", "NTIA", True),
    ("dependency", "NTIA", True),
    ("hash", "CISA-2024", False),
    ("license", "CISA-2024", False),
    ("copyright", "CISA-2024", False),
    ("support-level", "FDA", True),
    ("end-of-support", "FDA", True),
)
_DOC_ELEMENTS: tuple[tuple[str, str, bool], ...] = (
    ("author", "NTIA", True),
    ("timestamp", "NTIA", True),
    ("primary-component", "CISA-2024", True),
    ("sbom-type", "CISA-2024", False),
)


@dataclass(frozen=True)
class ComponentScore:
    """Completeness of one component."""

    bom_ref: str | None
    name: str
    version: str | None
    present: tuple[str, ...]
    missing_required: tuple[str, ...]
    missing_recommended: tuple[str, ...]
    warnings: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        """Share of elements present (0..1)."""
        total = len(self.present) + len(self.missing_required) + len(self.missing_recommended)
        return len(self.present) / total if total else 1.0


@dataclass(frozen=True)
class CheckReport:
    """Result of :func:`check_sbom`. ``passed`` is false when the schema is invalid or a required element is missing."""

    path: str | None
    format: str
    spec_version: str
    schema_valid: bool
    schema_error: str | None
    document_missing_required: tuple[str, ...]
    document_missing_recommended: tuple[str, ...]
    components: tuple[ComponentScore, ...] = field(default=())

    @property
    def score(self) -> float:
        """Mean component score (1.0 for an SBOM without components)."""
        if not self.components:
            return 1.0
        return sum(c.score for c in self.components) / len(self.components)

    @property
    def passed(self) -> bool:
        """True when the schema is valid and no required element is missing anywhere."""
        return (
            self.schema_valid
            and not self.document_missing_required
            and not any(c.missing_required for c in self.components)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by ``--json``)."""
        return {
            "path": self.path,
            "format": self.format,
            "spec_version": self.spec_version,
            "ok": self.passed,
            "score": round(self.score, 4),
            "schema": {"ok": self.schema_valid, "error": self.schema_error},
            "document": {
                "missing_required": list(self.document_missing_required),
                "missing_recommended": list(self.document_missing_recommended),
            },
            "elements": [{"element": e, "framework": f, "required": r} for e, f, r in ELEMENTS],
            "components": [
                {
                    "bom-ref": c.bom_ref,
                    "name": c.name,
                    "version": c.version,
                    "score": round(c.score, 4),
                    "missing_required": list(c.missing_required),
                    "missing_recommended": list(c.missing_recommended),
                    "warnings": list(c.warnings),
                }
                for c in self.components
            ],
        }


def _schema_version(spec: str) -> SchemaVersion | None:
    try:
        return SchemaVersion.from_version(spec)
    except ValueError:
        return None


@functools.lru_cache(maxsize=8)
def _validator(output: OutputFormat, version: SchemaVersion) -> Any:
    return make_schemabased_validator(output, version)


def validate_schema(data: bytes, fmt: str, spec: str) -> str | None:
    """Validate against the bundled CycloneDX schema; return ``None`` if valid, else the first error."""
    version = _schema_version(spec)
    if version is None:
        return f"unsupported CycloneDX specVersion {spec!r}"
    output = OutputFormat.JSON if fmt == "json" else OutputFormat.XML
    validator = _validator(output, version)
    error = validator.validate_str(data.decode("utf-8", "replace"))
    if error is None:
        return None
    detail = getattr(error, "data", None)
    if detail is not None and hasattr(detail, "message"):
        path = "/".join(str(p) for p in getattr(detail, "absolute_path", []))
        return f"{detail.message} (at /{path})" if path else str(detail.message)
    return str(error).splitlines()[0][:500]


def _reachable(doc: SbomDocument) -> set[str]:
    root = doc.component.bom_ref if doc.component else None
    if root is None:
        return set()
    seen: set[str] = set()
    todo = [root]
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        todo.extend(doc.dependencies.get(ref, ()))
    return seen


def _score(c: SbomComponent, reachable: set[str]) -> ComponentScore:
    have = {
        "supplier": bool(c.supplier),
        "name": bool(c.name),
        "version": bool(c.version),
        "unique-identifier": bool(c.purl or c.cpes or c.swid),
        "dependency": c.bom_ref is not None and c.bom_ref in reachable,
        "hash": bool(c.hashes),
        "license": bool(c.licenses),
        "copyright": bool(c.copyright),
        "support-level": bool(c.support_level),
        "end-of-support": bool(c.end_of_support),
    }
    present = tuple(e for e, _f, _r in ELEMENTS if have[e])
    missing_req = tuple(e for e, _f, r in ELEMENTS if r and not have[e])
    missing_rec = tuple(e for e, _f, r in ELEMENTS if not r and not have[e])
    warnings = tuple(f"version mismatch: {v}" for v in c.property(PROP_VERSION_MISMATCH))
    if c.property(PROP_UNDECLARED):
        warnings += ("found in the binary but not declared by any manifest",)
    return ComponentScore(c.bom_ref, c.name, c.version, present, missing_req, missing_rec, warnings)


def check_sbom(data: bytes, *, path: str | None = None) -> CheckReport:
    """Validate and score an SBOM given as bytes (CycloneDX JSON or XML).

    Raises:
        ManifestError: the bytes are not a readable CycloneDX document at all.
    """
    doc = parse_sbom(data, path=path)
    error = validate_schema(data, doc.format, doc.spec_version)
    doc_have = {
        "author": bool(doc.authors or doc.manufacturer or doc.supplier or doc.tools),
        "timestamp": bool(doc.timestamp),
        "primary-component": doc.component is not None and bool(doc.component.name and doc.component.version),
        "sbom-type": bool(doc.lifecycles),
    }
    reachable = _reachable(doc)
    scores = tuple(_score(c, reachable) for c in doc.components)
    return CheckReport(
        path=path,
        format=doc.format,
        spec_version=doc.spec_version,
        schema_valid=error is None,
        schema_error=error,
        document_missing_required=tuple(e for e, _f, r in _DOC_ELEMENTS if r and not doc_have[e]),
        document_missing_recommended=tuple(e for e, _f, r in _DOC_ELEMENTS if not r and not doc_have[e]),
        components=scores,
    )
