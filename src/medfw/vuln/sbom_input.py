"""Turn an SBOM into a :class:`~medfw.vuln.model.ScanInput` (pure: bytes in).

Parsing is done by :func:`medfw.sbom.load_sbom`'s parser (CycloneDX JSON or XML, 1.4–1.7): every component
(nested ones flattened, and ``metadata.component``) with its bom-ref, name, version, purl, CPEs (its own and
those of ``evidence.identity``) and the supplier's exclusions — ``medfw:cve-exclude`` properties whose value is
``{"cve": …, "reason": …, "justification": …}``. This module adds what scanning needs on top: a stable ref for
components without a bom-ref, the SHA-256 of the SBOM bytes, and the refusal of an SBOM that carries no
identity at all.
"""

from __future__ import annotations

import hashlib

from medfw.errors import ManifestError
from medfw.sbom.document import SbomComponent, parse_sbom
from medfw.vuln.model import ScanComponent, ScanInput

__all__ = ["read_sbom", "to_scan_component"]


def to_scan_component(c: SbomComponent) -> ScanComponent:
    """Convert one parsed SBOM component."""
    version = c.version or ""
    return ScanComponent(
        ref=c.bom_ref or f"{c.name}@{version}",
        name=c.name,
        version=version,
        purl=c.purl,
        cpes=c.cpes,
        cve_exclude={e.cve: (e.reason, e.justification) for e in c.cve_excludes},
    )


def read_sbom(data: bytes, path: str = "<sbom>") -> ScanInput:
    """Read a CycloneDX SBOM (JSON or XML).

    Raises:
        ManifestError: not a readable CycloneDX document, a duplicate bom-ref, or no component carries any
            identity (CPE or purl) — such an SBOM cannot be scanned.
    """
    doc = parse_sbom(data, path=path)
    comps: list[ScanComponent] = []
    if doc.component is not None:
        subject = to_scan_component(doc.component)
        if subject.has_identity:
            comps.append(subject)
    comps.extend(to_scan_component(c) for c in doc.components)
    seen: set[str] = set()
    for c in comps:
        if c.ref in seen:
            raise ManifestError(f"duplicate bom-ref {c.ref!r}", path=path, field="components")
        seen.add(c.ref)
    if not any(c.has_identity for c in comps):
        raise ManifestError(
            "SBOM has no component identities: no component carries a CPE or a purl, so nothing can be matched",
            path=path,
            field="components",
        )
    return ScanInput(
        serial=doc.serial_number or "",
        version=doc.version,
        name=doc.component.name if doc.component is not None else "",
        components=tuple(comps),
        sha256=hashlib.sha256(data).hexdigest(),
        subject_version=(doc.component.version or "") if doc.component is not None else "",
    )
