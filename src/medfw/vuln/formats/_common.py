"""Helpers shared by the document formats: times, current decisions, BOM-Links, Decision ↔ Analysis."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medfw.vuln.model import Decision
from medfw.vuln.vocabulary import Analysis, Justification, Response, State

__all__ = [
    "Product",
    "Statement",
    "VexDocument",
    "analysis_of",
    "bom_link",
    "current",
    "decision_of",
    "iso",
    "parse_bom_link",
    "parse_time",
]

_LINK = re.compile(r"^urn:cdx:([0-9a-f-]{36})/(\d+)#(.+)$")


def bom_link(serial: str, version: int, ref: str) -> str:
    """Return the BOM-Link of a component of an SBOM (``urn:cdx:<uuid>/<version>#<bom-ref>``)."""
    return f"urn:cdx:{serial.removeprefix('urn:uuid:')}/{version}#{ref}"


def parse_bom_link(link: str) -> tuple[str, int, str] | None:
    """Return (serial ``urn:uuid:…``, version, bom-ref) of a BOM-Link, or None if ``link`` is not one."""
    m = _LINK.match(link)
    if m is None:
        return None
    return f"urn:uuid:{m.group(1)}", int(m.group(2)), m.group(3)


def iso(t: dt.datetime) -> str:
    """RFC 3339 UTC with seconds and a ``Z``."""
    return t.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: object, default: dt.datetime) -> dt.datetime:
    """Parse an RFC 3339 time (``Z`` or offset); ``default`` when absent.

    Raises:
        ValueError: present but not a time.
    """
    if not value:
        return default
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def current(decisions: Sequence[Decision]) -> list[tuple[Decision, dt.datetime]]:
    """The latest decision per (component, vulnerability) with the time of the first one, sorted by id then ref."""
    first: dict[tuple[str, str], dt.datetime] = {}
    latest: dict[tuple[str, str], Decision] = {}
    for d in decisions:
        first.setdefault((d.component_ref, d.vuln_id), d.timestamp)
        latest[(d.component_ref, d.vuln_id)] = d
    return [(latest[k], first[k]) for k in sorted(latest, key=lambda k: (k[1], k[0]))]


def analysis_of(d: Decision) -> Analysis:
    """The format-independent analysis of a decision."""
    return Analysis(
        State(d.state),
        None if d.justification is None else Justification(d.justification),
        tuple(Response(r) for r in d.responses),
        d.detail,
        d.author,
        d.timestamp,
    )


def decision_of(serial: str, ref: str, vuln_id: str, a: Analysis, source: str) -> Decision:
    """A decision from an analysis read from a document."""
    return Decision(
        serial,
        ref,
        vuln_id,
        str(a.state),
        None if a.justification is None else str(a.justification),
        tuple(str(r) for r in a.responses),
        a.detail,
        a.author,
        a.timestamp,
        source,
    )


@dataclass(frozen=True)
class Product:
    """A product a VEX statement is about, as the document names it.

    Attributes:
        bom_link: BOM-Link to an SBOM component (the manufacturer's own statements).
        purl: package URL (with or without a version).
        cpe: CPE 2.3 name.
        versions: a version range (``vers:`` or ``<``/``>=`` constraints) or exact version, when the document
            gives one apart from the purl/CPE; None when the purl/CPE's own version (or none: all) applies.
        name: the document's name for it (diagnostics).
    """

    bom_link: str | None = None
    purl: str | None = None
    cpe: str | None = None
    versions: str | None = None
    name: str = ""


@dataclass(frozen=True)
class Statement:
    """One vulnerability × a set of products × one analysis."""

    vuln_id: str
    products: tuple[Product, ...]
    analysis: Analysis


@dataclass(frozen=True)
class VexDocument:
    """A VEX document read into statements, with its provenance."""

    format: str
    doc_id: str
    publisher: str
    date: dt.datetime
    statements: tuple[Statement, ...]
    sha256: str = ""
