"""Generating SBOMs: from an ESP-IDF build directory or a project manifest, with binary evidence from firmware
files (the functions :mod:`medfw.sbom` exports)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from cyclonedx.model.bom import Bom

from medfw._io import read_bytes
from medfw.errors import MalformedImageError
from medfw.sbom.binding import bind_project, identify_files
from medfw.sbom.binscan import scan_binary
from medfw.sbom.build import build_bom
from medfw.sbom.idf import read_idf_build
from medfw.sbom.model import Finding
from medfw.sbom.project import read_project_manifest

__all__ = ["MAX_BINARY", "generate_from_idf_build", "generate_from_manifest", "scan_files"]

#: Largest firmware image / ELF file the scanner reads.
MAX_BINARY = 512 * 1024 * 1024


def scan_files(
    paths: Iterable[str | os.PathLike[str]], *, progress: Callable[[str], None] | None = None
) -> list[Finding]:
    """Scan firmware files for embedded libraries (see :func:`medfw.sbom.binscan.scan_binary`).

    Findings name each file by its base name, so SBOMs do not depend on where the build ran.

    Raises:
        InputError: a file is missing or too large.
        MalformedImageError: an ELF file has malformed package notes.
    """
    findings: list[Finding] = []
    for p in paths:
        path = Path(p)
        data = read_bytes(path, max_length=MAX_BINARY, what="firmware binary")
        try:
            findings.extend(scan_binary(data, source=path.name))
        except MalformedImageError as e:
            e.path = str(path)
            raise
        if progress is not None:
            progress(str(path))
    return findings


def generate_from_idf_build(
    build_dir: str | os.PathLike[str],
    *,
    binaries: Iterable[str | os.PathLike[str]] = (),
    all_components: bool = False,
    serial: uuid.UUID | None = None,
    timestamp: dt.datetime | None = None,
    allow_mismatch: str | None = None,
) -> Bom:
    """Build the SBOM of an ESP-IDF build directory (see :mod:`medfw.sbom.idf`).

    Args:
        build_dir: the directory holding ``project_description.json``.
        binaries: firmware images / ELF files to scan for binary evidence.
        all_components: include configuration-only and unlinked components too.
        serial: fixed serial number (default: UUIDv5 of the content with ``SOURCE_DATE_EPOCH``, else random).
        timestamp: fixed timestamp (default: ``SOURCE_DATE_EPOCH`` or now).
        allow_mismatch: why an image whose identity differs from the build metadata is bound anyway.

    The first ESP app or MCUboot image among ``binaries`` is bound to the SBOM (:mod:`medfw.sbom.binding`).

    Raises:
        ManifestError: missing/malformed build inputs (names file and key), or an image that does not match
            the build metadata (without ``allow_mismatch``).
    """
    binaries = list(binaries)
    project = read_idf_build(build_dir, all_components=all_components)
    project = bind_project(project, identify_files(binaries, max_length=MAX_BINARY), allow_mismatch=allow_mismatch)
    return build_bom(project, findings=scan_files(binaries), serial=serial, timestamp=timestamp)


def generate_from_manifest(
    path: str | os.PathLike[str],
    *,
    binaries: Iterable[str | os.PathLike[str]] = (),
    serial: uuid.UUID | None = None,
    timestamp: dt.datetime | None = None,
    allow_mismatch: str | None = None,
) -> Bom:
    """Build the SBOM described by a ``medfw-sbom.yml`` project manifest (see :mod:`medfw.sbom.project`).

    Raises:
        ManifestError: malformed manifests (names file and key).
    """
    binaries = list(binaries)
    project = read_project_manifest(path)
    project = bind_project(project, identify_files(binaries, max_length=MAX_BINARY), allow_mismatch=allow_mismatch)
    return build_bom(project, findings=scan_files(binaries), serial=serial, timestamp=timestamp)
