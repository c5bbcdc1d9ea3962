"""Domain values of vulnerability management: scan inputs, findings, decisions (frozen dataclasses)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medfw.vuln.vocabulary import HANDLED_STATES, Justification, Response, State

__all__ = [
    "ANALYSIS_JUSTIFICATIONS",
    "ANALYSIS_RESPONSES",
    "ANALYSIS_STATES",
    "HANDLED_STATES",
    "Decision",
    "Finding",
    "MatchReason",
    "NoData",
    "ScanComponent",
    "ScanInput",
    "ScanResult",
]

#: the closed sets live in :mod:`medfw.vuln.vocabulary`; these tuples are their values, in CycloneDX order
ANALYSIS_STATES = tuple(str(s) for s in State)
ANALYSIS_JUSTIFICATIONS = tuple(str(j) for j in Justification)
ANALYSIS_RESPONSES = tuple(str(r) for r in Response)


@dataclass(frozen=True)
class ScanComponent:
    """One SBOM component as the scanner sees it.

    Attributes:
        ref: the component's bom-ref (unique in its SBOM).
        name: component name.
        version: component version ('' when unknown).
        purl: package URL, if any.
        cpes: CPE 2.3 names (the component's own plus ``evidence.identity`` ones).
        cve_exclude: vulnerability ids the SBOM's supplier excluded (``medfw:cve-exclude``), id → (reason,
            CycloneDX justification or None).
    """

    ref: str
    name: str
    version: str = ""
    purl: str | None = None
    cpes: tuple[str, ...] = ()
    cve_exclude: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def has_identity(self) -> bool:
        """Whether the component carries an identity a feed can match (a CPE or a purl)."""
        return bool(self.cpes or self.purl)


@dataclass(frozen=True)
class ScanInput:
    """An SBOM reduced to what scanning needs.

    Attributes:
        serial: the SBOM ``serialNumber`` (``urn:uuid:…``).
        version: the SBOM document ``version``.
        name: name of the SBOM's subject (``metadata.component.name``).
        components: components, subject first when it carries an identity.
        sha256: digest of the SBOM bytes.
        subject_version: version of the SBOM's subject (the firmware release), '' when unknown.
    """

    serial: str
    version: int
    name: str
    components: tuple[ScanComponent, ...]
    sha256: str = ""
    subject_version: str = ""


@dataclass(frozen=True)
class MatchReason:
    """Why a finding matched: which record, which criterion, which bound.

    Attributes:
        source: feed kind (``nvd``, ``nvd-override``, ``cve5``, ``osv``).
        record: the feed record id (CVE or OSV id).
        criterion: the CPE match string or purl that matched.
        bound: the version bound or list that admitted the version (``7.32.0 <= v < 8.9.1``).
        identity: the component identity that matched (its CPE or purl, with the alias used).
    """

    source: str
    record: str
    criterion: str
    bound: str
    identity: str

    def as_dict(self) -> dict[str, str]:
        """Return a JSON-ready dict."""
        return {
            "source": self.source,
            "record": self.record,
            "criterion": self.criterion,
            "bound": self.bound,
            "identity": self.identity,
        }


@dataclass(frozen=True)
class Decision:
    """A patch-or-justify decision for one (component, vulnerability) of one SBOM (CycloneDX analysis).

    Attributes:
        serial: SBOM serial the decision is bound to.
        component_ref: bom-ref of the component.
        vuln_id: vulnerability id.
        state: CycloneDX analysis state.
        justification: CycloneDX justification (``not_affected`` only).
        responses: CycloneDX responses.
        detail: free-text reasoning.
        author: who decided.
        timestamp: when (UTC).
        source: ``cli``, ``api``, ``batch``, ``vex-import``, ``supplier-vex``, ``carried``, ``reopened``,
            ``sbom-exclude`` or ``vex-overlay``.
        decision_id: the stored row id (0 when not stored).
        fixed_in: for ``resolved``: the component version that fixes it (the decision holds for newer ones).
        carried_from: ``release R (decision N)`` when inherited from an earlier release.
    """

    serial: str
    component_ref: str
    vuln_id: str
    state: str
    justification: str | None
    responses: tuple[str, ...]
    detail: str
    author: str
    timestamp: dt.datetime
    source: str = "api"
    decision_id: int = 0
    fixed_in: str | None = None
    carried_from: str | None = None

    @property
    def handled(self) -> bool:
        """Whether the decision closes the finding (not affected, resolved, false positive)."""
        return self.state in HANDLED_STATES

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "serial": self.serial,
            "component_ref": self.component_ref,
            "vuln_id": self.vuln_id,
            "state": self.state,
            "justification": self.justification,
            "responses": list(self.responses),
            "detail": self.detail,
            "author": self.author,
            "timestamp": self.timestamp.isoformat(),
            "source": self.source,
            "decision_id": self.decision_id,
            "fixed_in": self.fixed_in,
            "carried_from": self.carried_from,
        }


@dataclass(frozen=True)
class Finding:
    """One vulnerability matched to one component, with its triage data.

    Attributes:
        vuln_id: CVE (or OSV) id.
        component_ref, component_name, component_version: the component.
        severity: ``critical``, ``high``, ``medium``, ``low``, ``none`` or ``unscored`` (no imported source
            scores it; ``unscored_reason`` says why).
        score: CVSS base score (None when no vector is known, or the severity is a vendor's qualitative rating).
        severity_source: which source gave the severity (``NVD primary CVSS 3.1``, ``CISA-ADP CVSS 3.1``,
            ``vendor rating Low (openssl)``), see :data:`medfw.vuln.triage.SEVERITY_PRECEDENCE`.
        vector: the CVSS vector used.
        kev: in the CISA KEV catalog.
        epss, epss_percentile: EPSS probability and percentile (None when unknown).
        ssvc: CISA SSVC decision points (``exploitation``, ``automatable``, ``technical_impact``).
        network: attack vector is network.
        why: the match reasons.
        decision: the current decision, if any.
        description: short description.
        aliases: other ids of the same vulnerability.
        priority: 1 = handle first.
    """

    vuln_id: str
    component_ref: str
    component_name: str
    component_version: str
    severity: str
    score: float | None
    vector: str | None
    kev: bool
    epss: float | None
    epss_percentile: float | None
    ssvc: Mapping[str, str]
    network: bool
    why: tuple[MatchReason, ...]
    decision: Decision | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    priority: int = 0
    severity_source: str = ""
    unscored_reason: str = ""

    @property
    def handled(self) -> bool:
        """Whether a decision closes this finding."""
        return self.decision is not None and self.decision.handled

    @property
    def key(self) -> str:
        """``component_ref|vuln_id``."""
        return f"{self.component_ref}|{self.vuln_id}"

    @classmethod
    def build(cls, fields: Mapping[str, Any]) -> Finding:
        """A finding from its field values (``priority`` and the other defaulted fields may be left out), made
        without the frozen ``__init__``, which sets each of its 19 fields through ``object.__setattr__`` (a scan
        makes ten thousand findings; the values are the same, so is the object)."""
        new = object.__new__(cls)
        new.__dict__.update(_FINDING_DEFAULTS)
        new.__dict__.update(fields)
        return new

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "vuln_id": self.vuln_id,
            "component_ref": self.component_ref,
            "component": f"{self.component_name}@{self.component_version}",
            "severity": self.severity,
            "severity_source": self.severity_source,
            "unscored_reason": self.unscored_reason or None,
            "score": self.score,
            "vector": self.vector,
            "kev": self.kev,
            "epss": self.epss,
            "epss_percentile": self.epss_percentile,
            "ssvc": dict(self.ssvc),
            "network": self.network,
            "priority": self.priority,
            "why": [w.as_dict() for w in self.why],
            "decision": self.decision.as_dict() if self.decision else None,
            "description": self.description,
            "aliases": list(self.aliases),
        }


_FINDING_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Finding) if f.default is not dataclasses.MISSING}


@dataclass(frozen=True)
class NoData:
    """A component no record of any imported source describes: "no feed data", never "clean".

    Attributes:
        ref, name, version: the component.
        identifiers: the CPEs / purl it was looked up by (empty when it has none).
        reason: why nothing matched.
    """

    ref: str
    name: str
    version: str
    identifiers: tuple[str, ...]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "identifiers": list(self.identifiers),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ScanResult:
    """The result of scanning one SBOM.

    Attributes:
        sbom: the scanned input.
        findings: findings in priority order.
        warnings: components that could not be matched, and why.
        no_data: components no imported record describes (coverage gaps).
        feed: the feed snapshot used (source → last update, records, version, data date).
    """

    sbom: ScanInput
    findings: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()
    no_data: tuple[NoData, ...] = ()
    feed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        counts: dict[str, int] = {}
        for f in self.findings:
            counts[f.severity] = counts.get(f.severity, 0) + 1
        return {
            "sbom": {"serial": self.sbom.serial, "version": self.sbom.version, "name": self.sbom.name},
            "components": len(self.sbom.components),
            "counts": counts,
            "findings": [f.as_dict() for f in self.findings],
            "warnings": list(self.warnings),
            "no_data": [n.as_dict() for n in self.no_data],
            "feed": {k: dict(v) for k, v in self.feed.items()},
        }
