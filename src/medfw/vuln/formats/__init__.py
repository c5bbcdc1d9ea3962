"""Document formats behind one interface, chosen in one place.

:data:`FORMATS` maps a format name to a :class:`Format` whose optional operations say what it can do:

========== ========== ============ ========== ==========
name       report     VEX export   VEX read   advisory
========== ========== ============ ========== ==========
json       yes
cyclonedx  yes        yes          yes
html       yes
openvex               yes          yes
csaf                  yes          yes        yes
========== ========== ============ ========== ==========

The CLI offers ``names(Kind.…)`` as choices and calls ``get(name, kind)``; reading a document picks the format
with :func:`detect`. Implementations are imported on first use.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from medfw.errors import InputError, UsageError
from medfw.vuln.formats._common import Product, Statement, VexDocument
from medfw.vuln.model import Decision, ScanInput, ScanResult

__all__ = ["FORMATS", "Format", "Kind", "Product", "Statement", "VexDocument", "detect", "get", "names"]


class Kind(StrEnum):
    """What a format is used for."""

    REPORT = "report"
    VEX = "vex"
    ADVISORY = "advisory"


ReportFn = Callable[[ScanResult], str]
VexExportFn = Callable[[ScanInput, Sequence[Decision], str, dt.datetime], dict[str, Any]]
VexReadFn = Callable[[Mapping[str, Any], str, dt.datetime], VexDocument]


@dataclass(frozen=True)
class Format:
    """One document format and the operations it supports (None: not supported)."""

    name: str
    suffix: str
    report: ReportFn | None = None
    export_vex: VexExportFn | None = None
    read_vex: VexReadFn | None = None
    claims: Callable[[Mapping[str, Any]], bool] | None = None
    advisory: bool = False

    def supports(self, kind: Kind) -> bool:
        """Whether this format can be used for ``kind``."""
        if kind == Kind.REPORT:
            return self.report is not None
        if kind == Kind.VEX:
            return self.export_vex is not None
        return self.advisory


def _json_report(result: ScanResult) -> str:
    import orjson  # noqa: PLC0415

    return orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def _cdx_report(result: ScanResult) -> str:
    from medfw.vuln.report import to_cyclonedx  # noqa: PLC0415

    return json.dumps(to_cyclonedx(result), indent=2) + "\n"


def _html_report(result: ScanResult) -> str:
    from medfw.vuln.report import to_html  # noqa: PLC0415

    return to_html(result)


def _cdx_export(sbom: ScanInput, decisions: Sequence[Decision], author: str, now: dt.datetime) -> dict[str, Any]:
    from medfw.vuln.formats.cyclonedx import export_cyclonedx_vex  # noqa: PLC0415

    return export_cyclonedx_vex(sbom, decisions, now=now)


def _cdx_read(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    from medfw.vuln.formats.cyclonedx import read_cyclonedx_vex  # noqa: PLC0415

    return read_cyclonedx_vex(doc, path, now)


def _ovx_export(sbom: ScanInput, decisions: Sequence[Decision], author: str, now: dt.datetime) -> dict[str, Any]:
    from medfw.vuln.formats.openvex import export_openvex  # noqa: PLC0415

    return export_openvex(sbom, decisions, author=author, now=now)


def _ovx_read(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    from medfw.vuln.formats.openvex import read_openvex  # noqa: PLC0415

    return read_openvex(doc, path, now)


def _csaf_export(sbom: ScanInput, decisions: Sequence[Decision], author: str, now: dt.datetime) -> dict[str, Any]:
    from medfw.vuln.csaf_validate import check_csaf  # noqa: PLC0415
    from medfw.vuln.formats.csaf import export_csaf_vex  # noqa: PLC0415

    doc = export_csaf_vex(sbom, decisions, author=author, now=now)
    check_csaf(doc, "<generated CSAF VEX>")  # a guard against bugs, as the CycloneDX export's schema check
    return doc


def _csaf_read(doc: Mapping[str, Any], path: str, now: dt.datetime) -> VexDocument:
    from medfw.vuln.csaf_validate import check_csaf  # noqa: PLC0415
    from medfw.vuln.formats.csaf_read import read_csaf  # noqa: PLC0415

    check_csaf(doc, path)
    return read_csaf(doc, path, now)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("json", ".json", report=_json_report),
        Format(
            "cyclonedx",
            ".cdx.json",
            report=_cdx_report,
            export_vex=_cdx_export,
            read_vex=_cdx_read,
            claims=lambda d: d.get("bomFormat") == "CycloneDX",
        ),
        Format("html", ".html", report=_html_report),
        Format(
            "openvex",
            ".openvex.json",
            export_vex=_ovx_export,
            read_vex=_ovx_read,
            claims=lambda d: "@context" in d and "openvex" in str(d.get("@context")),
        ),
        Format(
            "csaf",
            ".csaf.json",
            export_vex=_csaf_export,
            read_vex=_csaf_read,
            claims=lambda d: isinstance(d.get("document"), Mapping) and "csaf_version" in d["document"],
            advisory=True,
        ),
    )
}


def names(kind: Kind) -> tuple[str, ...]:
    """The names of the formats usable for ``kind``."""
    return tuple(n for n, f in FORMATS.items() if f.supports(kind))


def get(name: str, kind: Kind) -> Format:
    """The format called ``name``, checked to support ``kind``.

    Raises:
        UsageError: unknown name, or the format cannot be used for ``kind``.
    """
    f = FORMATS.get(name)
    if f is None or not f.supports(kind):
        raise UsageError(f"unknown {kind} format {name!r} (one of {', '.join(names(kind))})", field="format")
    return f


def detect(doc: object, path: str) -> Format:
    """The format a parsed VEX document is in.

    Raises:
        InputError: no readable format claims it.
    """
    if isinstance(doc, Mapping):
        for f in FORMATS.values():
            if f.read_vex is not None and f.claims is not None and f.claims(doc):
                return f
    raise InputError("not a VEX document (CycloneDX, OpenVEX or CSAF 2.0 expected)", path=path)
