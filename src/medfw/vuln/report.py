"""Renderings of a :class:`~medfw.vuln.model.ScanResult`: JSON, CycloneDX 1.6 BOM with vulnerabilities, HTML.

All renderers are pure (result in, text or dict out). The HTML report is self-contained (inline CSS, no
scripts, every value escaped): findings grouped by severity, each with why it matched and its decision.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from typing import Any

from medfw import __version__
from medfw.vuln.model import Finding, MatchReason, ScanResult
from medfw.vuln.vex import bom_link

__all__ = ["SEVERITY_ORDER", "to_cyclonedx", "to_html"]

SEVERITY_ORDER = ("critical", "high", "medium", "low", "none", "unscored")
_METHOD = {"CVSS:3.1": "CVSSv31", "CVSS:3.0": "CVSSv3", "CVSS:4.0": "CVSSv4"}


def _method(vector: str) -> str:
    for prefix, name in _METHOD.items():
        if vector.startswith(prefix):
            return name
    return "CVSSv2"


def _why(w: MatchReason) -> str:
    return f"{w.source} {w.record}: {w.criterion} [{w.bound}] via {w.identity}"


def _vuln_entry(f: Finding, serial: str, version: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "bom-ref": f"{f.vuln_id}#{f.component_ref}",
        "id": f.vuln_id,
        "source": {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{f.vuln_id}"}
        if f.vuln_id.startswith("CVE-")
        else {"name": "OSV", "url": f"https://osv.dev/vulnerability/{f.vuln_id}"},
        "affects": [{"ref": bom_link(serial, version, f.component_ref) if serial else f.component_ref}],
        "properties": [
            {"name": "medfw:priority", "value": str(f.priority)},
            {"name": "medfw:kev", "value": str(f.kev).lower()},
            *[
                {"name": "medfw:why", "value": f"{w.source} {w.record}: {w.criterion} [{w.bound}] via {w.identity}"}
                for w in f.why
            ],
        ],
    }
    if f.description:
        entry["description"] = f.description
    entry["properties"].append({"name": "medfw:severity-source", "value": f.severity_source or "unscored"})
    if f.vector and f.score is not None:
        entry["ratings"] = [
            {
                "source": {"name": f.severity_source},
                "score": f.score,
                "severity": f.severity,
                "method": _method(f.vector),
                "vector": f.vector,
            }
        ]
    elif f.severity != "unscored":
        entry["ratings"] = [{"source": {"name": f.severity_source}, "severity": f.severity, "method": "other"}]
    else:
        entry["ratings"] = [{"severity": "unknown", "justification": f.unscored_reason}]
    if f.epss is not None:
        entry["properties"].append({"name": "medfw:epss", "value": f"{f.epss:.5f}"})
    if f.decision is not None:
        d = f.decision
        analysis: dict[str, Any] = {"state": d.state, "detail": d.detail}
        if d.justification:
            analysis["justification"] = d.justification
        if d.responses:
            analysis["response"] = list(d.responses)
        entry["analysis"] = analysis
    return entry


def _snapshot_properties(result: ScanResult) -> list[dict[str, str]]:
    out = []
    for name, st in sorted(result.feed.items()):
        version = f" version {st['version']}" if st.get("version") else ""
        data_date = f" data {st['data_date']}" if st.get("data_date") else ""
        out.append({"name": f"medfw:feed:{name}", "value": f"updated {st['updated_at']}{version}{data_date}".strip()})
    return out


def to_cyclonedx(result: ScanResult, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return a CycloneDX 1.6 BOM listing the findings (``affects`` are BOM-Links into the scanned SBOM)."""
    now = now or dt.datetime.now(dt.UTC)
    s = result.sbom
    serial_ok = s.serial.startswith("urn:uuid:")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tools": {"components": [{"type": "application", "name": "medfw", "version": __version__}]},
            "properties": [
                {"name": "medfw:sbom-serial", "value": s.serial},
                *_snapshot_properties(result),
                *[
                    {"name": "medfw:no-feed-data", "value": f"{n.ref} ({', '.join(n.identifiers) or 'no identifiers'})"}
                    for n in result.no_data
                ],
            ],
        },
        "vulnerabilities": [_vuln_entry(f, s.serial if serial_ok else "", s.version) for f in result.findings],
    }


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}.critical{color:#fff;background:#8b0000}.high{background:#e06666}
.medium{background:#f6b26b}.low{background:#ffe599}.none,.unscored{background:#ddd}
.badge{padding:1px 6px;border-radius:3px;font-weight:bold}.kev{color:#fff;background:#000}
.why{font-family:monospace;font-size:.85em}.handled{color:#555}
"""


def _esc(v: object) -> str:
    return html.escape(str(v), quote=True)


def _row(f: Finding) -> str:
    why = "<br>".join(_esc(_why(w)) for w in f.why)
    if f.decision is None:
        decision = "<b>no decision</b>"
    else:
        d = f.decision
        parts = [d.state, d.justification or "", ", ".join(d.responses)]
        decision = (
            _esc(" / ".join(p for p in parts if p))
            + f"<br>{_esc(d.detail)}<br><small>{_esc(d.author)}, {_esc(d.timestamp.isoformat())}"
            + f" ({_esc(d.source)})</small>"
        )
    ssvc = ", ".join(f"{k}: {v}" for k, v in sorted(f.ssvc.items()))
    epss = f"{f.epss:.3f}" if f.epss is not None else "–"
    kev = '<span class="badge kev">KEV</span>' if f.kev else ""
    cls = ' class="handled"' if f.handled else ""
    source = f.severity_source or f.unscored_reason
    return (
        f"<tr{cls}><td>{f.priority}</td><td>{_esc(f.vuln_id)} {kev}</td>"
        f"<td>{_esc(f.component_name)} {_esc(f.component_version)}<br><small>{_esc(f.component_ref)}</small></td>"
        f"<td>{_esc(f.score if f.score is not None else '–')}<br><small>{_esc(source)}</small></td>"
        f"<td>{epss}</td><td>{_esc(ssvc)}</td>"
        f'<td class="why">{why}</td><td>{decision}</td></tr>'
    )


def to_html(result: ScanResult, now: dt.datetime | None = None) -> str:
    """Return a self-contained HTML report of the scan."""
    now = now or dt.datetime.now(dt.UTC)
    s = result.sbom
    by_sev: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_sev.setdefault(f.severity, []).append(f)
    summary = ", ".join(f"{len(by_sev[k])} {k}" for k in SEVERITY_ORDER if k in by_sev) or "no findings"
    open_count = sum(1 for f in result.findings if not f.handled)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Vulnerability report: {_esc(s.name or s.serial)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Vulnerability report: {_esc(s.name or 'SBOM')}</h1>",
        f"<p>SBOM serial {_esc(s.serial or '–')} version {s.version} (sha256 {_esc(s.sha256)}), "
        f"{len(s.components)} components. Generated {_esc(now.isoformat(timespec='seconds'))}"
        f" by medfw {__version__}.</p>",
        f"<p><b>{len(result.findings)} findings</b>: {_esc(summary)}; {open_count} without a closing decision.</p>",
    ]
    header = (
        "<tr><th>#</th><th>Vulnerability</th><th>Component</th><th>CVSS</th><th>EPSS</th><th>SSVC</th>"
        "<th>Why it matched</th><th>Decision</th></tr>"
    )
    for sev in SEVERITY_ORDER:
        if sev not in by_sev:
            continue
        parts.append(f"<h2><span class='badge {sev}'>{sev.upper()}</span> ({len(by_sev[sev])})</h2>")
        parts.append(f"<table>{header}{''.join(_row(f) for f in by_sev[sev])}</table>")
    if result.no_data:
        items = "".join(
            f"<li>{_esc(n.name)} {_esc(n.version)} ({_esc(', '.join(n.identifiers) or 'no identifiers')}): "
            f"{_esc(n.reason)}</li>"
            for n in result.no_data
        )
        parts.append(
            f"<h2>No feed data ({len(result.no_data)} components: not clean, not assessed)</h2><ul>{items}</ul>"
        )
    snap = "".join(
        f"<li>{_esc(name)}: updated {_esc(st['updated_at'])}, {_esc(st['records'])} records"
        f"{', version ' + _esc(st['version']) if st.get('version') else ''}"
        f"{', data date ' + _esc(st['data_date']) if st.get('data_date') else ''}</li>"
        for name, st in sorted(result.feed.items())
    )
    parts.append(f"<h2>Feed snapshot</h2><ul>{snap or '<li>no feed data imported</li>'}</ul>")
    if result.warnings:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{_esc(w)}</li>" for w in result.warnings) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
