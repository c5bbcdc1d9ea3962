"""Merging binary-scan findings into a project's components before the CycloneDX document is built."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import replace

from packageurl import PackageURL

from medfw.sbom.model import ComponentSpec, Finding, ProjectSpec

PROP_VERSION_MISMATCH = "medfw:evidence:version-mismatch"
PROP_UNDECLARED = "medfw:evidence:undeclared"

_ALIASES: dict[str, frozenset[str]] = {
    "mbedtls": frozenset({"mbedtls", "mbed_tls"}),
    "openssl": frozenset({"openssl"}),
    "wolfssl": frozenset({"wolfssl"}),
    "curl": frozenset({"curl", "libcurl"}),
    "zlib": frozenset({"zlib"}),
    "lwip": frozenset({"lwip"}),
    "freertos": frozenset({"freertos", "freertos_kernel", "freertoskernel"}),
    "busybox": frozenset({"busybox"}),
    "expat": frozenset({"expat", "libexpat"}),
    "libpng": frozenset({"libpng"}),
    "sqlite": frozenset({"sqlite", "sqlite3"}),
}

__all__ = ["PROP_UNDECLARED", "PROP_VERSION_MISMATCH", "merge_findings"]


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", name.lower().replace("-", "_"))


def _strip_v(version: str | None) -> str:
    v = (version or "").strip()
    return v[1:] if v[:1] in ("v", "V") and v[1:2].isdigit() else v


def _identifiers(c: ComponentSpec) -> tuple[set[str], set[str], set[str]]:
    """Return the normalised (CPE products, purl names, component names) of a component."""
    products = {_norm(cpe.split(":")[4]) for cpe in c.cpes if len(cpe.split(":")) > 4}
    purl_names: set[str] = set()
    if c.purl:
        with contextlib.suppress(ValueError):
            purl_names.add(_norm(PackageURL.from_string(c.purl).name))
    return products, purl_names, {_norm(c.name)}


def merge_findings(project: ProjectSpec, findings: Iterable[Finding]) -> ProjectSpec:
    """Attach binary findings to the declared components they identify, flagging version mismatches.

    A finding is matched to a component by CPE product first, then by purl name, then by component name (with
    the library's known aliases); among equals, a component whose version equals the found one wins. Findings
    that match nothing become new components flagged ``medfw:evidence:undeclared``; the firmware depends on them.
    """
    comps = {c.ref: c for c in project.components}
    extra_top: list[str] = []
    for f in findings:
        aliases = _ALIASES.get(f.library, frozenset({_norm(f.library)})) | {_norm(f.name)}
        candidates: list[ComponentSpec] = []
        for tier in range(3):
            candidates = [c for c in comps.values() if _identifiers(c)[tier] & aliases]
            if candidates:
                break
        if candidates:
            same = [c for c in candidates if _strip_v(c.version) == _strip_v(f.version)]
            target = sorted(same or candidates, key=lambda c: c.ref)[0]
            props = list(target.properties)
            if f.version and target.version and _strip_v(target.version) != _strip_v(f.version):
                props.append(
                    (
                        PROP_VERSION_MISMATCH,
                        f"declared {target.version}, found {f.version} in {f.source} at offset {f.offset}",
                    )
                )
            comps[target.ref] = replace(target, findings=(*target.findings, f), properties=tuple(sorted(set(props))))
            continue
        base = f"binary:{_norm(f.library) or 'unknown'}"
        ref = base if base not in comps else f"{base}@{f.version}"
        if ref in comps:
            existing = comps[ref]
            comps[ref] = replace(existing, findings=(*existing.findings, f))
            continue
        comps[ref] = ComponentSpec(
            ref=ref,
            name=f.name,
            version=f.version,
            cpes=(f.cpe,) if f.cpe else (),
            purl=f.purl,
            license=f.license,
            sources=(f.source,),
            findings=(f,),
            properties=((PROP_UNDECLARED, "true"), ("medfw:package:kind", "binary-detected")),
        )
        extra_top.append(ref)
    return replace(
        project,
        components=tuple(sorted(comps.values(), key=lambda c: c.ref)),
        depends_on=tuple(sorted({*project.depends_on, *extra_top})),
    )
