"""The vulnerability index as the console reads it (``medfw ota serve --vuln-db URL``).

A fleet release is tied to its SBOM by the SBOM's SHA-256 (``release publish --sbom`` records it in the signed
target); the index holds released SBOMs (``medfw vuln release add``) by the same digest. Findings are the
scanner's, with the decisions recorded in the index; a release's scan is kept for ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medfw.errors import MedfwError

if TYPE_CHECKING:
    from medfw.server.service import FleetService
    from medfw.vuln.exposure import Exposure
    from medfw.vuln.index import VulnIndex
    from medfw.vuln.model import Finding, ScanInput

__all__ = ["ReleaseFindings", "VulnSource"]

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "none": 4, "unknown": 5}


@dataclass(frozen=True)
class ReleaseFindings:
    """An SBOM found in the index for a release, and what the scanner finds in it."""

    serial: str
    name: str
    components: tuple[Any, ...]
    findings: tuple[Finding, ...]

    @property
    def open(self) -> tuple[Finding, ...]:
        """Findings without a closing decision."""
        return tuple(f for f in self.findings if not f.handled)


def ordered(findings: tuple[Finding, ...]) -> list[Finding]:
    """KEV first, then by severity, then by score (highest first)."""
    return sorted(findings, key=lambda f: (not f.kev, _SEVERITY_RANK.get(f.severity, 9), -(f.score or 0), f.vuln_id))


class VulnSource:
    """Lazily opened vulnerability index with a short-lived cache of per-release scans."""

    def __init__(self, url: str, *, ttl: float = 60.0) -> None:
        self.url = url
        self.ttl = ttl
        self._index: VulnIndex | None = None
        self._cache: dict[str, tuple[float, ReleaseFindings | None]] = {}
        self._exposure: tuple[float, list[Exposure]] | None = None
        self._lock = threading.Lock()
        self.error = ""

    def _open(self) -> VulnIndex | None:
        if self._index is None:
            from medfw.vuln.index import open_index  # noqa: PLC0415 - only when configured

            try:
                self._index = open_index(self.url)
            except MedfwError as e:
                self.error = e.message
                return None
        return self._index

    def for_sbom(self, sbom_sha256: str) -> ReleaseFindings | None:
        """The SBOM registered with this digest and its findings, or ``None`` when the index does not hold it."""
        if not sbom_sha256:
            return None
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(sbom_sha256)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
            result = self._scan(sbom_sha256)
            self._cache[sbom_sha256] = (now, result)
            return result

    def _scan(self, sbom_sha256: str) -> ReleaseFindings | None:
        from medfw.vuln.sbom_input import read_sbom  # noqa: PLC0415
        from medfw.vuln.scanner import scan  # noqa: PLC0415

        index = self._open()
        if index is None:
            return None
        try:
            for row in index.releases():
                if row["sha256"] != sbom_sha256:
                    continue
                sbom: ScanInput = read_sbom(bytes(row["sbom"]), f"release {row['id']}")
                result = scan(index, sbom)
                return ReleaseFindings(sbom.serial, sbom.name, sbom.components, tuple(ordered(result.findings)))
        except MedfwError as e:
            self.error = e.message
        return None

    def vex(self, sbom_sha256: str, fmt: str) -> bytes | None:
        """The VEX (``cyclonedx``, ``openvex`` or ``csaf``) of the SBOM with this digest, from the decisions recorded
        now; ``None`` when the index does not hold that SBOM.

        Raises:
            Invalid: the document cannot be made (a CSAF VEX needs at least one decision), with the reason.
        """
        import json  # noqa: PLC0415

        from medfw.server.errors import Invalid  # noqa: PLC0415
        from medfw.vuln import export_vex  # noqa: PLC0415

        index = self._open()
        if index is None or not sbom_sha256:
            return None
        with self._lock:
            row = next((r for r in index.releases() if r["sha256"] == sbom_sha256), None)
            if row is None:
                return None
            try:
                doc = export_vex(index, bytes(row["sbom"]), fmt, author="medfw fleet console")
            except MedfwError as e:
                raise Invalid(f"no {fmt} VEX for this release: {e.message}", field="format") from None
        return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()

    def exposure(self, service: FleetService) -> list[Exposure]:
        """Every open finding across released firmware with the devices exposed and the fix's rollout
        (:func:`medfw.vuln.exposure.exposure` over this server's fleet), kept for ``ttl`` seconds."""
        from medfw.vuln.exposure import exposure  # noqa: PLC0415
        from medfw.vuln.fleet_view import fleet_from_service  # noqa: PLC0415

        now = time.monotonic()
        with self._lock:
            if self._exposure is not None and now - self._exposure[0] < self.ttl:
                return self._exposure[1]
            index = self._open()
            if index is None:
                return []
            try:
                result = exposure(index, fleet_from_service(service, source="console"))
            except MedfwError as e:
                self.error = e.message
                return []
            self._exposure = (now, result)
            return result
