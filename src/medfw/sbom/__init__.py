"""CycloneDX SBOMs from firmware builds: ESP-IDF builds, generic project manifests, and binary evidence.

Public API::

    bom = generate_from_idf_build("build", binaries=["build/app.elf"])      # -> cyclonedx Bom
    bom = generate_from_manifest("medfw-sbom.yml")
    data = serialize(bom, fmt="json")                                        # deterministic bytes
    doc = load_sbom("fw.cdx.json")                                           # -> SbomDocument
    report = check_sbom(data)                                                # NTIA / CISA 2024 / FDA
    changes = diff_sboms(load_sbom(old), load_sbom(new))

The names are loaded on first use (each from its module), so a reader of SBOMs (``medfw.sbom.document``) does not
load the CycloneDX model and lxml that generating and validating need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfw.sbom.binscan import SIGNATURES, read_package_notes, scan_binary
    from medfw.sbom.build import build_bom, serialize
    from medfw.sbom.build_merge import PROP_UNDECLARED, PROP_VERSION_MISMATCH
    from medfw.sbom.check import CheckReport, ComponentScore, check_sbom
    from medfw.sbom.diff import SbomDiff, diff_sboms
    from medfw.sbom.document import SbomComponent, SbomDocument, load_sbom, parse_sbom
    from medfw.sbom.generate import MAX_BINARY, generate_from_idf_build, generate_from_manifest, scan_files
    from medfw.sbom.idf import read_idf_build
    from medfw.sbom.model import ComponentSpec, CveExclusion, Entity, Finding, ProjectSpec
    from medfw.sbom.project import read_project_manifest
    from medfw.sbom.properties import PROP_CVE_EXCLUDE, PROP_END_OF_SUPPORT, PROP_SUPPORT_LEVEL

__all__ = [
    "MAX_BINARY",
    "PROP_CVE_EXCLUDE",
    "PROP_END_OF_SUPPORT",
    "PROP_SUPPORT_LEVEL",
    "PROP_UNDECLARED",
    "PROP_VERSION_MISMATCH",
    "SIGNATURES",
    "CheckReport",
    "ComponentScore",
    "ComponentSpec",
    "CveExclusion",
    "Entity",
    "Finding",
    "ProjectSpec",
    "SbomComponent",
    "SbomDiff",
    "SbomDocument",
    "build_bom",
    "check_sbom",
    "diff_sboms",
    "generate_from_idf_build",
    "generate_from_manifest",
    "load_sbom",
    "parse_sbom",
    "read_idf_build",
    "read_package_notes",
    "read_project_manifest",
    "scan_binary",
    "scan_files",
    "serialize",
]

_WHERE = {
    "CheckReport": "medfw.sbom.check",
    "ComponentScore": "medfw.sbom.check",
    "ComponentSpec": "medfw.sbom.model",
    "CveExclusion": "medfw.sbom.model",
    "Entity": "medfw.sbom.model",
    "Finding": "medfw.sbom.model",
    "MAX_BINARY": "medfw.sbom.generate",
    "PROP_CVE_EXCLUDE": "medfw.sbom.properties",
    "PROP_END_OF_SUPPORT": "medfw.sbom.properties",
    "PROP_SUPPORT_LEVEL": "medfw.sbom.properties",
    "PROP_UNDECLARED": "medfw.sbom.build_merge",
    "PROP_VERSION_MISMATCH": "medfw.sbom.build_merge",
    "ProjectSpec": "medfw.sbom.model",
    "SIGNATURES": "medfw.sbom.binscan",
    "SbomComponent": "medfw.sbom.document",
    "SbomDiff": "medfw.sbom.diff",
    "SbomDocument": "medfw.sbom.document",
    "build_bom": "medfw.sbom.build",
    "check_sbom": "medfw.sbom.check",
    "diff_sboms": "medfw.sbom.diff",
    "generate_from_idf_build": "medfw.sbom.generate",
    "generate_from_manifest": "medfw.sbom.generate",
    "load_sbom": "medfw.sbom.document",
    "parse_sbom": "medfw.sbom.document",
    "read_idf_build": "medfw.sbom.idf",
    "read_package_notes": "medfw.sbom.binscan",
    "read_project_manifest": "medfw.sbom.project",
    "scan_binary": "medfw.sbom.binscan",
    "scan_files": "medfw.sbom.generate",
    "serialize": "medfw.sbom.build",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
