"""Postmarket surveillance: registered releases, rescans with risk-change alerts, history, retirement.

``add_release`` stores a released SBOM (bound by its serial) and takes a baseline scan; registering a newer
revision of the same serial (higher CycloneDX ``version``) replaces the stored SBOM. ``rescan`` re-matches every
monitored release against the current index, compares each with its previous scan, opens alerts for the risk
changes of :mod:`medfw.vuln.alerts`, closes the alerts that a decision settled, stores the scan (counts and the
feed snapshot used) and records one ``vuln.rescan`` audit event. Open alerts are reported by every rescan until a
decision or an acknowledgement closes them, so a scheduled job keeps failing while one is open.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.errors import InputError
from medfw.vuln import alerts as _alerts
from medfw.vuln.alerts import Alert, AlertKind
from medfw.vuln.decisions import current_decisions
from medfw.vuln.gate import FailOn, finding_fails
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Finding, NoData, ScanInput, ScanResult
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.scanner import scan

__all__ = [
    "ReleaseDelta",
    "RescanReport",
    "add_release",
    "find_release",
    "release_history",
    "rescan",
    "retire_release",
]


@dataclass(frozen=True)
class ReleaseDelta:
    """One release's rescan: what is new or gone since its previous scan, and its alerts."""

    release_id: int
    serial: str
    name: str
    total: int
    new: tuple[Finding, ...]
    gone: tuple[str, ...] = ()
    scan_id: int = 0
    opened: tuple[Alert, ...] = ()
    closed: tuple[Alert, ...] = ()
    open: tuple[Alert, ...] = ()
    no_data: tuple[NoData, ...] = ()
    findings: dict[str, Finding] = field(default_factory=dict)

    @property
    def alarming(self) -> tuple[Finding, ...]:
        """New findings without a closing decision that are critical or known exploited."""
        return tuple(f for f in self.new if not f.handled and (f.kev or f.severity == "critical"))

    def failing(self, rules: frozenset[FailOn]) -> list[Alert]:
        """The open alerts that fail the job under ``rules`` (empty rules: every open alert fails)."""
        if not rules or FailOn.ALERT in rules:
            return list(self.open)
        out: list[Alert] = []
        for a in self.open:
            f = self.findings.get(a.key)
            by_kind = (FailOn.NEW in rules and a.kind is AlertKind.NEW) or (
                FailOn.KEV in rules and a.kind is AlertKind.KEV
            )
            if by_kind or (f is not None and finding_fails(f, rules)):
                out.append(a)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "release_id": self.release_id,
            "serial": self.serial,
            "name": self.name,
            "scan_id": self.scan_id,
            "total": self.total,
            "new": [f.as_dict() for f in self.new],
            "gone": list(self.gone),
            "alarming": [f.key for f in self.alarming],
            "alerts_opened": [a.as_dict() for a in self.opened],
            "alerts_closed": [a.as_dict() for a in self.closed],
            "alerts_open": [a.as_dict() for a in self.open],
            "no_data": [n.as_dict() for n in self.no_data],
        }


@dataclass(frozen=True)
class RescanReport:
    """A whole rescan run."""

    releases: tuple[ReleaseDelta, ...]
    feed: dict[str, Any]
    at: str

    def failing(self, rules: frozenset[FailOn]) -> list[Alert]:
        """Open alerts failing the job (see :meth:`ReleaseDelta.failing`)."""
        return [a for d in self.releases for a in d.failing(rules)]

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "at": self.at,
            "releases": [d.as_dict() for d in self.releases],
            "open_alerts": sum(len(d.open) for d in self.releases),
            "feed": self.feed,
        }


def _counts(result: ScanResult) -> dict[str, Any]:
    by: dict[str, int] = {}
    for f in result.findings:
        by[f.severity] = by.get(f.severity, 0) + 1
    return {
        "findings": len(result.findings),
        "unhandled": sum(1 for f in result.findings if not f.handled),
        "kev": sum(1 for f in result.findings if f.kev),
        "by_severity": by,
        "no_data": len(result.no_data),
    }


def add_release(index: VulnIndex, data: bytes, path: str = "<sbom>") -> tuple[int, ScanInput, bool]:
    """Register a released SBOM and take its baseline scan; return (release id, SBOM, newly added).

    A newer revision (same serial, higher ``version``) replaces the stored SBOM; the next rescan compares with
    the previous revision's scan (and flags decisions made for component versions that changed).

    Raises:
        ManifestError: the SBOM is unreadable or has no identities.
        InputError: the SBOM has no serialNumber, or its serial is registered with different content and the
            same or a lower ``version`` (a revision must raise the version).
    """
    sbom = read_sbom(data, path)
    if not sbom.serial:
        raise InputError("a released SBOM needs a serialNumber", path=path, field="serialNumber")
    for rel in index.releases():
        revision = read_sbom(bytes(rel["sbom"]), path).version < sbom.version if rel["serial"] == sbom.serial else False
        if rel["serial"] == sbom.serial and rel["sha256"] != sbom.sha256 and not revision:
            raise InputError(
                f"serial {sbom.serial} is already registered as release {rel['id']} with different content "
                f"(sha256 {rel['sha256'][:16]}…, this SBOM {sbom.sha256[:16]}…): a changed SBOM needs a new "
                "serialNumber or, for a revision of the same release, a higher version",
                path=path,
                field="serialNumber",
            )
    release_id, created = index.add_release(sbom.serial, sbom.name, sbom.sha256, data)
    if created:
        result = scan(index, sbom)
        index.add_scan(
            release_id, [_alerts.summary(f) for f in result.findings], counts=_counts(result), feed=dict(result.feed)
        )
    else:
        stored = next(r for r in index.releases() if int(r["id"]) == release_id)
        if read_sbom(bytes(stored["sbom"]), path).version < sbom.version:
            index.revise_release(release_id, sbom.name, sbom.sha256, data)
    return release_id, sbom, created


def _rescan_one(
    index: VulnIndex, rel: dict[str, Any], *, epss_threshold: float, now: dt.datetime
) -> tuple[ReleaseDelta, ScanResult]:
    rid = int(rel["id"])
    sbom = read_sbom(bytes(rel["sbom"]), f"release {rid}")
    result = scan(index, sbom, now=now)
    previous = index.last_scan(rid) or []
    before = {p["key"] for p in previous}
    kev_due = {k: str(v.get("due_date", "")) for k, v in index.kev_for({f.vuln_id for f in result.findings}).items()}
    changes = _alerts.detect(result.findings, previous, kev_due=kev_due, epss_threshold=epss_threshold)
    scan_id = index.add_scan(
        rid, [_alerts.summary(f) for f in result.findings], counts=_counts(result), feed=dict(result.feed), when=now
    )
    opened = _alerts.store(index, rid, scan_id, changes, now)
    closed = _alerts.close_decided(index, rid, current_decisions(index, sbom.serial), now)
    delta = ReleaseDelta(
        release_id=rid,
        serial=sbom.serial,
        name=sbom.name,
        total=len(result.findings),
        new=tuple(f for f in result.findings if f.key not in before),
        gone=tuple(sorted(before - {f.key for f in result.findings})),
        scan_id=scan_id,
        opened=tuple(opened),
        closed=tuple(closed),
        open=tuple(_alerts.open_alerts(index, rid)),
        no_data=result.no_data,
        findings={f.key: f for f in result.findings},
    )
    return delta, result


def rescan(
    index: VulnIndex,
    *,
    epss_threshold: float = _alerts.EPSS_THRESHOLD,
    sink: AuditSink | None = None,
    now: dt.datetime | None = None,
) -> RescanReport:
    """Rescan every monitored release, open and close alerts, store the scans, audit the run."""
    now = now or dt.datetime.now(dt.UTC)
    deltas: list[ReleaseDelta] = []
    feed: dict[str, Any] = {}
    for rel in index.releases(include_retired=False):
        delta, result = _rescan_one(index, rel, epss_threshold=epss_threshold, now=now)
        deltas.append(delta)
        feed = dict(result.feed)
    report = RescanReport(tuple(deltas), feed, now.isoformat())
    opened = sum(len(d.opened) for d in deltas)
    open_now = sum(len(d.open) for d in deltas)
    (sink or NullSink()).record(
        AuditEvent(
            type="vuln.rescan",
            outcome="failure" if open_now else "success",
            reason="open_alerts" if open_now else None,
            actor="medfw vuln rescan",
            data={
                "releases": [{"id": d.release_id, "serial": d.serial, "scan_id": d.scan_id} for d in deltas],
                "alerts_opened": opened,
                "alerts_closed": sum(len(d.closed) for d in deltas),
                "alerts_open": open_now,
                "feed": {k: {"updated_at": v.get("updated_at"), "version": v.get("version")} for k, v in feed.items()},
            },
        )
    )
    return report


def find_release(index: VulnIndex, ref: str) -> dict[str, Any]:
    """A release by id, serial or name.

    Raises:
        InputError: no release, or a name shared by several releases.
    """
    rels = index.releases()
    hits = [r for r in rels if str(r["id"]) == ref or r["serial"] == ref]
    hits = hits or [r for r in rels if r["name"] == ref]
    if not hits:
        raise InputError(f"no registered release {ref!r} (id, serial or name)", field="release")
    if len(hits) > 1:
        raise InputError(f"release name {ref!r} is ambiguous: use its id or serial", field="release")
    return hits[0]


def retire_release(
    index: VulnIndex, ref: str, *, by: str, reason: str, sink: AuditSink | None = None, undo: bool = False
) -> dict[str, Any]:
    """Retire a release from monitoring (rescans skip it; its history stays), or monitor it again with ``undo``.

    Raises:
        InputError: no such release, or no reason given.
    """
    if not reason.strip():
        raise InputError("retiring a release needs a reason", field="--reason")
    rel = find_release(index, ref)
    when = None if undo else dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    index.set_retired(int(rel["id"]), when)
    (sink or NullSink()).record(
        AuditEvent(
            type="vuln.release",
            outcome="success",
            reason="unretire" if undo else "retire",
            actor=by,
            objects={"sbom_serial": rel["serial"]},
            data={"release_id": int(rel["id"]), "reason": reason},
        )
    )
    return {**{k: v for k, v in rel.items() if k != "sbom"}, "retired_at": when}


def release_history(index: VulnIndex, ref: str) -> dict[str, Any]:
    """Every scan of a release (counts, feed snapshot used) with the alerts each raised, and alerts closed."""
    rel = find_release(index, ref)
    rid = int(rel["id"])
    all_alerts = _alerts.list_alerts(index, release_id=rid, include_closed=True)
    scans: list[dict[str, Any]] = []
    for s in index.scans(rid):
        raised = [a.as_dict() for a in all_alerts if a.scan_id == s["id"]]
        scans.append({**s, "alerts_raised": raised})
    closed = [a.as_dict() for a in all_alerts if a.closed_at is not None]
    return {
        "release": {k: v for k, v in rel.items() if k != "sbom"},
        "scans": scans,
        "alerts_closed": closed,
        "alerts_open": [a.as_dict() for a in all_alerts if a.closed_at is None],
    }
