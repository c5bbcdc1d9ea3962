"""Turn a :class:`ProjectSpec` (plus binary findings) into a CycloneDX 1.6 document, deterministically.

Mapping (documented in ``docs/sbom.md``):

* firmware → ``metadata.component`` (type ``firmware``); ``metadata.supplier`` / ``metadata.manufacturer`` from
  the project manifest's ``document``; ``metadata.tools`` = medfw; ``metadata.lifecycles`` = ``build``.
* per component: name, version, supplier, ``publisher`` (= manifest ``originator``), first CPE in ``cpe``, the
  other CPEs as ``evidence.identity`` entries (field ``cpe``), purl, SPDX license expression, hashes,
  external references (``vcs`` = repository, ``distribution`` = url), and properties:
  ``medfw:support:level``, ``cdx:lifecycle:milestone:endOfSupport``, one ``medfw:cve-exclude`` per excluded
  vulnerability (canonical JSON ``{"cve", "justification", "reason"}``), ``medfw:package:kind``,
  ``medfw:manifest`` (where the data came from) and the binary-evidence flags
  ``medfw:evidence:version-mismatch`` / ``medfw:evidence:undeclared``.
* binary findings → ``evidence.identity`` (field ``version``, technique ``binary-analysis`` or, for ELF package
  notes, ``manifest-analysis``) and ``evidence.occurrences`` (file + byte offset).

Reproducibility: with the same inputs, serial number and timestamp, the output bytes are identical. When no
serial/timestamp is given and ``SOURCE_DATE_EPOCH`` is set, the timestamp is that epoch and the serial number is
a UUIDv5 of the content.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal

from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.component_evidence import (
    AnalysisTechnique,
    ComponentEvidence,
    Identity,
    IdentityField,
    Method,
    Occurrence,
)
from cyclonedx.model.contact import OrganizationalContact, OrganizationalEntity
from cyclonedx.model.dependency import Dependable, Dependency
from cyclonedx.model.license import LicenseExpression
from cyclonedx.model.lifecycle import LifecyclePhase, PredefinedLifecycle
from cyclonedx.output import make_outputter
from cyclonedx.schema import OutputFormat, SchemaVersion
from packageurl import PackageURL

from medfw import __version__
from medfw.errors import InputError, UsageError
from medfw.sbom.build_merge import (
    PROP_UNDECLARED,
    PROP_VERSION_MISMATCH,
    merge_findings,
)
from medfw.sbom.model import ComponentSpec, Entity, Finding, ProjectSpec
from medfw.sbom.properties import PROP_CVE_EXCLUDE, PROP_END_OF_SUPPORT, PROP_SUPPORT_LEVEL

__all__ = [
    "PROP_CVE_EXCLUDE",
    "PROP_END_OF_SUPPORT",
    "PROP_SUPPORT_LEVEL",
    "PROP_UNDECLARED",
    "PROP_VERSION_MISMATCH",
    "build_bom",
    "merge_findings",
    "reproducible_identity",
    "serialize",
]

_NAMESPACE = uuid.UUID("6f3e1a52-3c1e-5d2b-9a7e-6d0c5b1f4e21")
_TYPES = {
    "library": ComponentType.LIBRARY,
    "framework": ComponentType.FRAMEWORK,
    "firmware": ComponentType.FIRMWARE,
    "operating-system": ComponentType.OPERATING_SYSTEM,
    "application": ComponentType.APPLICATION,
    "device-driver": ComponentType.DEVICE_DRIVER,
    "platform": ComponentType.PLATFORM,
    "file": ComponentType.FILE,
}
_HASH_ALGS = {
    "SHA-1": HashAlgorithm.SHA_1,
    "SHA-256": HashAlgorithm.SHA_256,
    "SHA-384": HashAlgorithm.SHA_384,
    "SHA-512": HashAlgorithm.SHA_512,
    "SHA3-256": HashAlgorithm.SHA3_256,
    "SHA3-512": HashAlgorithm.SHA3_512,
}


def _entity(e: Entity | None, url: str | None = None) -> OrganizationalEntity | None:
    if e is None:
        return None
    contacts = [OrganizationalContact(email=e.email)] if e.email else None
    urls = [XsUri(u) for u in sorted({x for x in (url, e.url) if x})]
    return OrganizationalEntity(name=e.name, urls=urls or None, contacts=contacts)


def _hashes(hashes: Iterable[tuple[str, str]]) -> list[HashType]:
    return [HashType(alg=_HASH_ALGS[alg], content=digest) for alg, digest in sorted(set(hashes))]


def _purl(value: str | None) -> PackageURL | None:
    return PackageURL.from_string(value) if value else None


def _evidence(c: ComponentSpec) -> ComponentEvidence | None:
    identities: list[Identity] = []
    occurrences: list[Occurrence] = []
    source = c.sources[0] if c.sources else "manifest"
    for cpe in c.cpes[1:]:
        identities.append(
            Identity(
                field=IdentityField.CPE,
                concluded_value=cpe,
                confidence=Decimal(1),
                methods=[Method(technique=AnalysisTechnique.MANIFEST_ANALYSIS, confidence=Decimal(1), value=source)],
            )
        )
    for f in sorted(c.findings, key=lambda x: (x.source, x.offset, x.library)):
        technique = (
            AnalysisTechnique.MANIFEST_ANALYSIS if f.method == "elf-package-note" else AnalysisTechnique.BINARY_ANALYSIS
        )
        confidence = Decimal(str(f.confidence))
        where = f"{f.source} offset {f.offset}: {f.text}"
        identities.append(
            Identity(
                field=IdentityField.VERSION,
                concluded_value=f.version,
                confidence=confidence,
                methods=[Method(technique=technique, confidence=confidence, value=where)],
            )
        )
        occurrences.append(Occurrence(location=f.source, offset=f.offset, additional_context=f.method))
    if not identities:
        return None
    return ComponentEvidence(identity=identities, occurrences=occurrences or None)


def _cve_exclude_value(cve: str, reason: str, justification: str | None) -> str:
    return json.dumps(
        {"cve": cve, "justification": justification, "reason": reason},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def _component(c: ComponentSpec) -> Component:
    props: set[tuple[str, str]] = set(c.properties)
    if c.support_level:
        props.add((PROP_SUPPORT_LEVEL, c.support_level))
    if c.end_of_support:
        props.add((PROP_END_OF_SUPPORT, c.end_of_support))
    for ex in c.cve_excludes:
        props.add((PROP_CVE_EXCLUDE, _cve_exclude_value(ex.cve, ex.reason, ex.justification)))
    for kw in c.cve_keywords:
        props.add(("medfw:cve-keyword", kw))
    for src in c.sources:
        props.add(("medfw:manifest", src))
    refs: list[ExternalReference] = []
    if c.repository:
        refs.append(ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(c.repository)))
    if c.url:
        refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(c.url)))
    return Component(
        bom_ref=c.ref,
        name=c.name,
        version=c.version,
        type=_TYPES.get(c.kind, ComponentType.LIBRARY),
        description=c.description,
        supplier=_entity(c.supplier),
        publisher=f"{c.originator.kind}: {c.originator.name}" if c.originator else None,
        cpe=c.cpes[0] if c.cpes else None,
        purl=_purl(c.purl),
        licenses=[LicenseExpression(c.license)] if c.license else None,
        copyright="\n".join(c.copyright) if c.copyright else None,
        hashes=_hashes(c.hashes),
        external_references=refs,
        properties=[Property(name=k, value=v) for k, v in sorted(props)],
        evidence=_evidence(c),
    )


def reproducible_identity(
    project: ProjectSpec, *, serial: uuid.UUID | None = None, timestamp: dt.datetime | None = None
) -> tuple[uuid.UUID, dt.datetime]:
    """Choose the serial number and timestamp.

    Explicit values win. Otherwise, with ``SOURCE_DATE_EPOCH`` set, the timestamp is that epoch (UTC) and the
    serial a UUIDv5 of the content and timestamp; without it, now and a random UUIDv4.

    Raises:
        InputError: ``SOURCE_DATE_EPOCH`` is not an integer, or the timestamp is not timezone-aware.
    """
    if timestamp is not None and timestamp.tzinfo is None:
        raise UsageError("timestamp must be timezone-aware (UTC)")
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if timestamp is None and epoch:
        try:
            timestamp = dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise InputError(
                f"SOURCE_DATE_EPOCH must be an integer, not {epoch!r}", field="SOURCE_DATE_EPOCH"
            ) from None
    if serial is None and timestamp is not None:
        digest = hashlib.sha256(repr(project).encode("utf-8") + timestamp.isoformat().encode()).hexdigest()
        serial = uuid.uuid5(_NAMESPACE, digest)
    if timestamp is None:
        timestamp = dt.datetime.now(tz=dt.UTC).replace(microsecond=0)
    if serial is None:
        serial = uuid.uuid4()
    return serial, timestamp.astimezone(dt.UTC)


def _index_dependencies(bom: Bom) -> None:
    """Give ``bom`` an O(1) ``register_dependency``.

    cyclonedx-python-lib's own implementation searches the dependency set linearly, and its outputter calls it once
    per component, which is quadratic (seconds for a few thousand components). This replacement keeps the same
    semantics (register the target, add its dependencies, register each dependency with none) using a dict.
    """
    index: dict[str, Dependency] = {str(d.ref.value): d for d in bom.dependencies}

    def register(target: Dependable, depends_on: Iterable[Dependable] | None = None) -> None:
        key = str(target.bom_ref.value)
        deps = list(depends_on or ())
        existing = index.get(key)
        if existing is None:
            existing = Dependency(ref=target.bom_ref, dependencies=[Dependency(ref=d.bom_ref) for d in deps])
            index[key] = existing
            bom.dependencies.add(existing)
        elif deps:
            existing.dependencies.update(Dependency(ref=d.bom_ref) for d in deps)
        for d in deps:
            register(d)

    bom.register_dependency = register  # type: ignore[method-assign]


def build_bom(
    project: ProjectSpec,
    *,
    findings: Sequence[Finding] = (),
    serial: uuid.UUID | None = None,
    timestamp: dt.datetime | None = None,
) -> Bom:
    """Build the CycloneDX :class:`Bom` for ``project``.

    Raises:
        InputError: a dependency names a component that does not exist.
    """
    if findings:
        project = merge_findings(project, findings)
    serial, timestamp = reproducible_identity(project, serial=serial, timestamp=timestamp)
    fw_props = sorted(set(project.properties))
    firmware = Component(
        bom_ref=project.ref,
        name=project.name,
        version=project.version,
        type=ComponentType.FIRMWARE,
        description=project.description,
        supplier=_entity(project.supplier, project.supplier_url),
        cpe=project.cpes[0] if project.cpes else None,
        purl=_purl(project.purl),
        licenses=[LicenseExpression(project.license)] if project.license else None,
        hashes=_hashes(project.hashes),
        properties=[Property(name=k, value=v) for k, v in fw_props],
    )
    tool = Component(
        type=ComponentType.APPLICATION,
        name="medfw",
        version=__version__,
        bom_ref="tool:medfw",
    )
    metadata = BomMetaData(
        component=firmware,
        timestamp=timestamp,
        lifecycles=[PredefinedLifecycle(LifecyclePhase.BUILD)],
        supplier=_entity(project.supplier, project.supplier_url),
        manufacturer=_entity(project.manufacturer, project.manufacturer_url),
        authors=[OrganizationalContact(name=e.name, email=e.email)]
        if (e := project.manufacturer or project.supplier)
        else None,
    )
    metadata.tools.components.add(tool)
    bom = Bom(serial_number=serial, metadata=metadata)
    _index_dependencies(bom)
    by_ref: dict[str, Component] = {}
    for spec in project.components:
        comp = _component(spec)
        by_ref[spec.ref] = comp
        bom.components.add(comp)
    for spec in project.components:
        deps = []
        for r in spec.depends_on:
            if r not in by_ref:
                raise InputError(f"component {spec.ref!r} depends on unknown component {r!r}")
            deps.append(by_ref[r])
        bom.register_dependency(by_ref[spec.ref], deps)
    top = []
    for r in project.depends_on:
        if r not in by_ref:
            raise InputError(f"firmware depends on unknown component {r!r}")
        top.append(by_ref[r])
    bom.register_dependency(firmware, top)
    return bom


def serialize(bom: Bom, fmt: str = "json") -> bytes:
    """Serialise ``bom`` as CycloneDX 1.6 ``json`` or ``xml`` (UTF-8, two-space indent, trailing newline).

    Raises:
        UsageError: unknown format.
    """
    formats = {"json": OutputFormat.JSON, "xml": OutputFormat.XML}
    if fmt not in formats:
        raise UsageError(f"unknown SBOM format {fmt!r} (use json or xml)", field="format")
    text = make_outputter(bom, formats[fmt], SchemaVersion.V1_6).output_as_string(indent=2)
    return (text.rstrip("\n") + "\n").encode("utf-8")
