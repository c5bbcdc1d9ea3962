"""VEX documents: export an SBOM's decisions and read VEX documents, in any format of :mod:`medfw.vuln.formats`.

The manufacturer's own statements name products by BOM-Link (``urn:cdx:<sbom-serial-uuid>/<version>#<bom-ref>``),
binding each statement to the SBOM it judges; exports also name each product by its purl / CPE. Formats:
CycloneDX 1.6 VEX (validated against the bundled schema), OpenVEX 0.2 and CSAF 2.0 VEX (validated against the
bundled official schema). States, justifications and responses map through :mod:`medfw.vuln.vocabulary`, which
documents how round trips stay exact.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from medfw.errors import InputError
from medfw.vuln import formats
from medfw.vuln.formats import Kind, VexDocument
from medfw.vuln.formats._common import bom_link, decision_of, parse_bom_link
from medfw.vuln.formats.cyclonedx import validate_cyclonedx
from medfw.vuln.formats.openvex import OPENVEX_CONTEXT
from medfw.vuln.model import Decision, ScanInput

__all__ = [
    "OPENVEX_CONTEXT",
    "bom_link",
    "decisions_of",
    "export_vex",
    "parse_bom_link",
    "read_vex",
    "read_vex_document",
    "validate_cyclonedx",
]


def export_vex(
    sbom: ScanInput, decisions: Sequence[Decision], fmt: str, *, author: str = "medfw", now: dt.datetime | None = None
) -> dict[str, Any]:
    """Build a VEX document (``cyclonedx``, ``openvex`` or ``csaf``) from an SBOM's decision history.

    ``author`` is who issues the document (OpenVEX ``author``, CSAF publisher); each statement keeps its own
    decision's author.

    Raises:
        UsageError: unknown format.
        InputError: the SBOM has no serial number to bind to, or (a guard against bugs) the generated
            document does not validate against its schema.
    """
    f = formats.get(fmt, Kind.VEX)
    if not sbom.serial.startswith("urn:uuid:"):
        raise InputError("the SBOM has no urn:uuid serialNumber; VEX is bound to it", field="serialNumber")
    assert f.export_vex is not None
    return f.export_vex(sbom, decisions, author, now or dt.datetime.now(dt.UTC))


def read_vex_document(data: bytes, path: str = "<vex>", *, now: dt.datetime | None = None) -> VexDocument:
    """Parse a CycloneDX, OpenVEX or CSAF 2.0 document (format detected from its content) into statements.

    Raises:
        InputError: not JSON, no known format, a schema violation, an unknown status or justification, or a
            justification that does not fit its status.
    """
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError("VEX document is not valid JSON", path=path, offset=getattr(e, "pos", None)) from e
    f = formats.detect(doc, path)
    assert f.read_vex is not None
    parsed = f.read_vex(doc, path, now or dt.datetime.now(dt.UTC))
    return replace(parsed, sha256=hashlib.sha256(data).hexdigest())


def decisions_of(doc: VexDocument, path: str = "<vex>") -> list[Decision]:
    """The statements of a document whose products are BOM-Links, as decisions on those SBOM components.

    Raises:
        InputError: a product is not a BOM-Link (a supplier statement: import it with a supplier).
    """
    out: list[Decision] = []
    for st in doc.statements:
        for p in st.products:
            link = parse_bom_link(p.bom_link or "")
            if link is None:
                raise InputError(
                    f"{st.vuln_id}: product {p.name or p.purl or p.cpe!r} is not a BOM-Link to an SBOM component "
                    "(a supplier statement: import it with --supplier)",
                    path=path,
                )
            out.append(decision_of(link[0], link[2], st.vuln_id, st.analysis, "vex-import"))
    return out


def read_vex(data: bytes, path: str = "<vex>", *, now: dt.datetime | None = None) -> list[Decision]:
    """Read a VEX document of the manufacturer's own statements (BOM-Link products) into decisions.

    Raises:
        InputError: see :func:`read_vex_document` and :func:`decisions_of`.
    """
    return decisions_of(read_vex_document(data, path, now=now), path)
