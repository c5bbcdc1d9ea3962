"""Postmarket surveillance: registered release SBOMs and rescans that report what is new per release.

``add_release`` stores a released SBOM (bound by its serial) and takes a baseline scan. ``rescan`` re-matches
every release against the current index, compares each with its previous scan and returns, per release, the
findings that are new since then. A new finding is *alarming* when it has no closing decision and is critical
or in CISA KEV; the CLI exits 1 when any is found, for scheduled jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medfw.errors import InputError
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Finding, ScanInput
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.scanner import scan

__all__ = ["ReleaseDelta", "add_release", "rescan"]


@dataclass(frozen=True)
class ReleaseDelta:
    """What changed for one release since its previous scan."""

    release_id: int
    serial: str
    name: str
    total: int
    new: tuple[Finding, ...]
    gone: tuple[str, ...] = field(default_factory=tuple)

    @property
    def alarming(self) -> tuple[Finding, ...]:
        """New findings without a closing decision that are critical or known exploited."""
        return tuple(f for f in self.new if not f.handled and (f.kev or f.severity == "critical"))

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "release_id": self.release_id,
            "serial": self.serial,
            "name": self.name,
            "total": self.total,
            "new": [f.as_dict() for f in self.new],
            "gone": list(self.gone),
            "alarming": [f.key for f in self.alarming],
        }


def _summary(findings: tuple[Finding, ...]) -> list[dict[str, Any]]:
    return [{"key": f.key, "severity": f.severity, "kev": f.kev} for f in findings]


def add_release(index: VulnIndex, data: bytes, path: str = "<sbom>") -> tuple[int, ScanInput, bool]:
    """Register a released SBOM and take its baseline scan; return (release id, SBOM, newly added).

    Raises:
        ManifestError: the SBOM is unreadable or has no identities.
        InputError: the SBOM has no serialNumber, or its serial is registered with different content.
    """
    sbom = read_sbom(data, path)
    if not sbom.serial:
        raise InputError("a released SBOM needs a serialNumber", path=path, field="serialNumber")
    for rel in index.releases():
        if rel["serial"] == sbom.serial and rel["sha256"] != sbom.sha256:
            raise InputError(
                f"serial {sbom.serial} is already registered as release {rel['id']} with different content "
                f"(sha256 {rel['sha256'][:16]}…, this SBOM {sbom.sha256[:16]}…): a changed SBOM needs a new "
                "serialNumber",
                path=path,
                field="serialNumber",
            )
    release_id, created = index.add_release(sbom.serial, sbom.name, sbom.sha256, data)
    if created:
        index.add_scan(release_id, _summary(scan(index, sbom).findings))
    return release_id, sbom, created


def rescan(index: VulnIndex) -> list[ReleaseDelta]:
    """Rescan every registered release and return what is new per release (and store the new scan)."""
    out: list[ReleaseDelta] = []
    for rel in index.releases():
        sbom = read_sbom(bytes(rel["sbom"]), f"release {rel['id']}")
        result = scan(index, sbom)
        previous = index.last_scan(int(rel["id"])) or []
        before = {p["key"] for p in previous}
        now_keys = {f.key for f in result.findings}
        new = tuple(f for f in result.findings if f.key not in before)
        gone = tuple(sorted(before - now_keys))
        index.add_scan(int(rel["id"]), _summary(result.findings))
        out.append(ReleaseDelta(int(rel["id"]), sbom.serial, sbom.name, len(result.findings), new, gone))
    return out
