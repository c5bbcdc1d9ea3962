"""Risk-change alerts of postmarket rescans: detection (pure) and their open/closed life (stored).

Comparing a release's scan with its previous scan, an alert is raised for an unhandled finding that is:

* ``new`` — not in the previous scan (whatever its severity, unscored included);
* ``kev`` — newly in CISA KEV (the alert carries KEV's ``dueDate``);
* ``raised`` — its severity rank or CVSS score went up (unscored → scored counts);
* ``epss`` — its EPSS probability crossed the threshold (default 0.1) from below;

and for a handled finding:

* ``decision-stale`` — its decision was made for another component version (the release's SBOM was revised and
  the component's version changed), so the decision no longer holds.

An alert stays open — every rescan reports it again and fails the job — until a decision for its finding is
recorded after the alert was opened, or someone acknowledges it. One alert per (release, finding, kind) is open
at a time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from medfw.errors import InputError
from medfw.vuln.model import Decision, Finding

if TYPE_CHECKING:  # the reads and writes load SQLAlchemy when they run (a command that only registers does not)
    from medfw.vuln.index import VulnIndex

__all__ = [
    "EPSS_THRESHOLD",
    "Alert",
    "AlertKind",
    "acknowledge",
    "close_decided",
    "detect",
    "list_alerts",
    "open_alerts",
    "summary",
]

EPSS_THRESHOLD = 0.1
_RANK = {"unscored": 0, "none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


class AlertKind(StrEnum):
    """What changed."""

    NEW = "new"
    KEV = "kev"
    RAISED = "raised"
    EPSS = "epss"
    DECISION_STALE = "decision-stale"


@dataclass(frozen=True)
class Alert:
    """One alert (``id`` 0 until stored)."""

    id: int
    release_id: int
    component_ref: str
    vuln_id: str
    kind: AlertKind
    detail: Mapping[str, Any]
    opened_at: str
    scan_id: int
    closed_at: str | None = None
    closed_by: str | None = None
    close_reason: str | None = None

    @property
    def key(self) -> str:
        """``component_ref|vuln_id``."""
        return f"{self.component_ref}|{self.vuln_id}"

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "id": self.id,
            "release_id": self.release_id,
            "component_ref": self.component_ref,
            "vuln_id": self.vuln_id,
            "kind": self.kind.value,
            "detail": dict(self.detail),
            "opened_at": self.opened_at,
            "scan_id": self.scan_id,
            "closed_at": self.closed_at,
            "closed_by": self.closed_by,
            "close_reason": self.close_reason,
        }


def summary(f: Finding) -> dict[str, Any]:
    """What a scan remembers of a finding, to compare with the next scan."""
    return {
        "key": f.key,
        "severity": f.severity,
        "score": f.score,
        "kev": f.kev,
        "epss": f.epss,
        "version": f.component_version,
        "handled": f.handled,
    }


def _finding_detail(f: Finding) -> dict[str, Any]:
    return {
        "severity": f.severity,
        "severity_source": f.severity_source,
        "score": f.score,
        "kev": f.kev,
        "epss": f.epss,
        "component": f"{f.component_name}@{f.component_version}",
        "description": f.description[:300],
    }


def _changes(
    f: Finding, before: Mapping[str, Any], kev_due: Mapping[str, str], epss_threshold: float
) -> list[tuple[AlertKind, dict[str, Any]]]:
    out: list[tuple[AlertKind, dict[str, Any]]] = []
    if f.kev and not before.get("kev"):
        out.append((AlertKind.KEV, {"due_date": kev_due.get(f.vuln_id, "")}))
    old_score, old_sev = before.get("score"), str(before.get("severity", "unscored"))
    score_up = f.score is not None and (old_score is None or f.score > float(old_score))
    if score_up or _RANK.get(f.severity, 0) > _RANK.get(old_sev, 0):
        out.append((AlertKind.RAISED, {"from": {"severity": old_sev, "score": old_score}}))
    old_epss = before.get("epss")
    if f.epss is not None and f.epss >= epss_threshold and (old_epss is None or float(old_epss) < epss_threshold):
        out.append((AlertKind.EPSS, {"from": old_epss, "threshold": epss_threshold}))
    return out


def detect(
    findings: Sequence[Finding],
    previous: Sequence[Mapping[str, Any]],
    *,
    kev_due: Mapping[str, str],
    epss_threshold: float = EPSS_THRESHOLD,
) -> list[tuple[Finding, AlertKind, dict[str, Any]]]:
    """The risk changes between the previous scan's summaries and the current findings (see the module doc)."""
    before = {p["key"]: p for p in previous}
    out: list[tuple[Finding, AlertKind, dict[str, Any]]] = []
    for f in findings:
        prev = before.get(f.key)
        if f.handled:
            if prev is not None and prev.get("version") not in (None, f.component_version):
                detail = {"decided_for_version": prev.get("version"), "now": f.component_version}
                out.append((f, AlertKind.DECISION_STALE, {**_finding_detail(f), **detail}))
            continue
        if prev is None:
            out.append((f, AlertKind.NEW, _finding_detail(f)))
            continue
        for kind, extra in _changes(f, prev, kev_due, epss_threshold):
            out.append((f, kind, {**_finding_detail(f), **extra}))
    return out


def _to_alert(r: Any) -> Alert:
    return Alert(
        int(r.id),
        int(r.release_id),
        r.component_ref,
        r.vuln_id,
        AlertKind(r.kind),
        json.loads(r.detail),
        r.opened_at,
        int(r.scan_id),
        r.closed_at,
        r.closed_by,
        r.close_reason,
    )


def list_alerts(index: VulnIndex, *, release_id: int | None = None, include_closed: bool = False) -> list[Alert]:
    """Alerts (open ones, or all), oldest first."""
    from sqlalchemy import select  # noqa: PLC0415 - see the imports above

    from medfw.vuln.schema import alert  # noqa: PLC0415

    q = select(alert).order_by(alert.c.id)
    if release_id is not None:
        q = q.where(alert.c.release_id == release_id)
    if not include_closed:
        q = q.where(alert.c.closed_at.is_(None))
    with index.transaction() as conn:
        return [_to_alert(r) for r in conn.execute(q)]


def open_alerts(index: VulnIndex, release_id: int) -> list[Alert]:
    """The open alerts of one release."""
    return list_alerts(index, release_id=release_id)


def store(
    index: VulnIndex,
    release_id: int,
    scan_id: int,
    changes: Iterable[tuple[Finding, AlertKind, dict[str, Any]]],
    now: dt.datetime,
) -> list[Alert]:
    """Open an alert per change unless one of the same kind is already open for the finding; return the new ones."""
    from sqlalchemy import insert  # noqa: PLC0415 - see the imports above

    from medfw.vuln.schema import alert  # noqa: PLC0415

    already = {(a.key, a.kind) for a in open_alerts(index, release_id)}
    opened: list[Alert] = []
    stamp = now.isoformat()
    with index.transaction() as conn:
        for f, kind, detail in changes:
            if (f.key, kind) in already:
                continue
            already.add((f.key, kind))
            row = {
                "release_id": release_id,
                "component_ref": f.component_ref,
                "vuln_id": f.vuln_id,
                "kind": kind.value,
                "detail": json.dumps(detail, sort_keys=True),
                "opened_at": stamp,
                "scan_id": scan_id,
            }
            pk = conn.execute(insert(alert).values(**row)).inserted_primary_key
            opened.append(
                Alert(int(pk[0]) if pk else 0, release_id, f.component_ref, f.vuln_id, kind, detail, stamp, scan_id)
            )
    return opened


def close_decided(
    index: VulnIndex, release_id: int, decisions: Mapping[tuple[str, str], Decision], now: dt.datetime
) -> list[Alert]:
    """Close the open alerts of a release whose finding got a decision after the alert was opened."""
    from sqlalchemy import select, update  # noqa: PLC0415 - see the imports above

    from medfw.vuln.schema import alert  # noqa: PLC0415

    closed: list[Alert] = []
    with index.transaction() as conn:
        q = select(alert).where(alert.c.release_id == release_id, alert.c.closed_at.is_(None))
        for a in [_to_alert(r) for r in conn.execute(q)]:
            d = decisions.get((a.component_ref, a.vuln_id))
            if d is None or d.timestamp < dt.datetime.fromisoformat(a.opened_at):
                continue
            reason = f"decision {d.state}" + (f" ({d.justification})" if d.justification else "")
            conn.execute(
                update(alert)
                .where(alert.c.id == a.id)
                .values(closed_at=now.isoformat(), closed_by=d.author, close_reason=reason)
            )
            closed.append(a)
    return closed


def acknowledge(index: VulnIndex, alert_ids: Sequence[int], *, by: str, reason: str, now: dt.datetime) -> list[Alert]:
    """Close open alerts by acknowledgement.

    Raises:
        InputError: an id names no open alert, or the reason is empty (nothing is closed then).
    """
    from sqlalchemy import select, update  # noqa: PLC0415 - see the imports above

    from medfw.vuln.schema import alert  # noqa: PLC0415

    if not reason.strip():
        raise InputError("an acknowledgement needs a reason", field="--reason")
    with index.transaction() as conn:
        rows = {int(r.id): _to_alert(r) for r in conn.execute(select(alert).where(alert.c.id.in_(list(alert_ids))))}
        for i in alert_ids:
            if i not in rows or rows[i].closed_at is not None:
                raise InputError(f"alert {i} is not an open alert", field="alert")
        conn.execute(
            update(alert)
            .where(alert.c.id.in_(list(alert_ids)))
            .values(closed_at=now.isoformat(), closed_by=by, close_reason=f"acknowledged: {reason}")
        )
    return [rows[i] for i in alert_ids]
