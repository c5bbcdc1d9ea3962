"""Exposure across the fleet: which devices run a release that carries an open finding, and is the fix on its way.

The join needs no guessing: a release registered for surveillance (``vuln release add``) is the same SBOM as a
release the OTA server publishes when the SHA-256 of the SBOM bytes equals the ``sbom.sha256`` reference of the
server's release (the TUF target's custom field, set by ``ota release publish --sbom``). For each open finding
(no closing decision) — or one vulnerability — :func:`exposure` returns:

* the registered releases that carry it, and the server releases (model, version) built from them;
* per server release, the active devices of that model reporting that version (count and ids);
* per model, the lowest published release *above* the affected ones whose SBOM is registered and does not carry
  the finding open (the fix), and the state of its latest rollout (state, phase n/m).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medfw.vuln.fleet_view import FleetRelease, FleetRollout, FleetView, devices_running, latest_rollout
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Finding
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.scanner import scan
from medfw.vuln.version import compare_versions, is_version
from medfw.vuln.vocabulary import normalize_vuln_id

__all__ = ["ExposedRelease", "Exposure", "FixRelease", "exposure"]


@dataclass(frozen=True)
class ExposedRelease:
    """One server release that carries the finding, and the devices running it."""

    release: FleetRelease
    registered_release: int
    components: tuple[str, ...]
    devices: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "target": self.release.target_path,
            "model": self.release.model,
            "version": self.release.version,
            "registered_release": self.registered_release,
            "components": list(self.components),
            "devices": len(self.devices),
            "device_ids": list(self.devices),
        }


@dataclass(frozen=True)
class FixRelease:
    """A published release of a model without the finding, and its latest rollout."""

    release: FleetRelease
    rollout: FleetRollout | None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        ro = self.rollout
        return {
            "target": self.release.target_path,
            "model": self.release.model,
            "version": self.release.version,
            "rollout": None
            if ro is None
            else {"id": ro.id, "name": ro.name, "state": ro.state, "phase": ro.current_phase + 1, "phases": ro.phases},
        }


@dataclass(frozen=True)
class Exposure:
    """One vulnerability across the fleet."""

    vuln_id: str
    severity: str
    kev: bool
    releases: tuple[ExposedRelease, ...]
    fixes: tuple[FixRelease, ...]
    unpublished: tuple[int, ...] = ()

    @property
    def devices(self) -> int:
        """Devices running an affected release."""
        return sum(len(r.devices) for r in self.releases)

    def alert(self) -> str:
        """One line for an alert: ``CVE-… is KEV: 412 devices of model pump run affected releases; fixed in …``."""
        label = "KEV" if self.kev else self.severity
        models = sorted({r.release.model for r in self.releases})
        what = f"{self.devices} device(s) of model {', '.join(models)}" if models else "no fielded device"
        parts = [f"{self.vuln_id} is {label}: {what} run affected releases"]
        for fix in self.fixes:
            ro = fix.rollout
            state = (
                "not rolled out"
                if ro is None
                else f"rollout {ro.id} {ro.state} at phase {ro.current_phase + 1}/{ro.phases}"
            )
            parts.append(f"fixed in {fix.release.target_path.rsplit('/', 1)[-1]} ({fix.release.version}), {state}")
        if not self.fixes:
            parts.append("no published release fixes it")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "vuln_id": self.vuln_id,
            "severity": self.severity,
            "kev": self.kev,
            "devices": self.devices,
            "releases": [r.as_dict() for r in self.releases],
            "fixed_by": [f.as_dict() for f in self.fixes],
            "registered_releases_not_published": list(self.unpublished),
            "alert": self.alert(),
        }


def _open_findings(index: VulnIndex) -> dict[str, tuple[int, dict[str, list[Finding]]]]:
    """SBOM sha256 → (registered release id, vuln id → open findings)."""
    out: dict[str, tuple[int, dict[str, list[Finding]]]] = {}
    for rel in index.releases():
        sbom = read_sbom(bytes(rel["sbom"]), f"release {rel['id']}")
        by_vuln: dict[str, list[Finding]] = {}
        for f in scan(index, sbom).findings:
            if not f.handled:
                by_vuln.setdefault(f.vuln_id, []).append(f)
        out[str(rel["sha256"])] = (int(rel["id"]), by_vuln)
    return out


def _newer(a: str, b: str) -> bool:
    return is_version(a) and is_version(b) and compare_versions(a, b) > 0


def _fixes(view: FleetView, vuln_id: str, exposed: Sequence[ExposedRelease], scans: dict[str, Any]) -> list[FixRelease]:
    out: list[FixRelease] = []
    for model in sorted({e.release.model for e in exposed}):
        highest = max((e.release.version for e in exposed if e.release.model == model), key=_VersionKey)
        clean = [
            r
            for r in view.releases
            if r.model == model
            and r.sbom_sha256 in scans
            and vuln_id not in scans[r.sbom_sha256][1]
            and _newer(r.version, highest)
        ]
        if clean:
            best = min(clean, key=lambda r: _VersionKey(r.version))
            out.append(FixRelease(best, latest_rollout(view, best)))
    return out


def _cmp(a: str, b: str) -> int:
    """Order versions with the one comparator (unparsable versions first, then by text)."""
    if is_version(a) and is_version(b):
        return compare_versions(a, b)
    return (is_version(a) - is_version(b)) or (a > b) - (a < b)


_VersionKey = functools.cmp_to_key(_cmp)


def exposure(index: VulnIndex, view: FleetView, vuln_id: str | None = None) -> list[Exposure]:
    """Return the exposure of every open finding (or of ``vuln_id``), most devices first (rules in the docstring)."""
    scans = _open_findings(index)
    wanted = None if vuln_id is None else normalize_vuln_id(vuln_id)
    published = {r.sbom_sha256 for r in view.releases if r.sbom_sha256}
    vulns = sorted({v for _, by_vuln in scans.values() for v in by_vuln if wanted is None or v == wanted})
    out: list[Exposure] = []
    running: dict[str, tuple[str, ...]] = {}  # each release's devices, found once (not once per finding)

    def devices_of(r: FleetRelease) -> tuple[str, ...]:
        if r.target_path not in running:
            running[r.target_path] = tuple(devices_running(view, r))
        return running[r.target_path]

    for vid in vulns:
        exposed: list[ExposedRelease] = []
        severity, kev = "unknown", False
        for sha, (rid, by_vuln) in scans.items():
            findings = by_vuln.get(vid)
            if not findings:
                continue
            severity, kev = findings[0].severity, kev or any(f.kev for f in findings)
            comps = tuple(sorted({f"{f.component_name} {f.component_version}" for f in findings}))
            for r in view.releases:
                if r.sbom_sha256 == sha:
                    exposed.append(ExposedRelease(r, rid, comps, devices_of(r)))
        unpublished = tuple(
            sorted(rid for sha, (rid, by_vuln) in scans.items() if vid in by_vuln and sha not in published)
        )
        fixes = _fixes(view, vid, exposed, scans)
        out.append(Exposure(vid, severity, kev, tuple(exposed), tuple(fixes), unpublished))
    out.sort(key=lambda e: (-e.devices, not e.kev, e.vuln_id))
    return out
