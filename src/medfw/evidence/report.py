"""The reviewer's HTML report: one self-contained file (inline CSS and SVG charts, no scripts, no fetches).

Pure: :func:`render_report` takes a :class:`ReportData` and returns the HTML text. Every value is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medfw.evidence.trace import TraceRow
from medfw.evidence.verdict import closure, open_findings, order_findings

__all__ = ["SEVERITIES", "CheckLine", "ReportData", "render_report"]

SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "none", "unknown")
_COLOURS = {
    "critical": "#7b1fa2",
    "high": "#d32f2f",
    "medium": "#f57c00",
    "low": "#fbc02d",
    "none": "#9e9e9e",
    "unknown": "#607d8b",
}


@dataclass(frozen=True)
class CheckLine:
    """One verification result shown in the summary."""

    name: str
    ok: bool
    detail: str
    evidence: str = ""


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows."""

    release: dict[str, Any]
    created: str
    checks: Sequence[CheckLine]
    components: Sequence[dict[str, Any]]
    findings: Sequence[dict[str, Any]]
    trace: Sequence[TraceRow]
    audit_events: Sequence[dict[str, Any]]
    history: Sequence[tuple[str, dict[str, int]]] = field(default_factory=tuple)
    files: Sequence[dict[str, Any]] = field(default_factory=tuple)
    update_steps: Sequence[dict[str, Any]] = field(default_factory=tuple)
    signer: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)


def _no_path(value: object) -> str:
    """A value as shown in the report: an absolute file path of the build machine shows as its file name only."""
    text = "" if value is None else str(value)
    if text.startswith("/") or (len(text) > 2 and text[1] == ":" and text[2] in "\\/"):
        return text.replace("\\", "/").rsplit("/", 1)[-1]
    return text


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def severity_counts(findings: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Count findings per severity (unknown severities count as ``unknown``)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        sev = str(f.get("severity") or "unknown").lower()
        counts[sev if sev in counts else "unknown"] += 1
    return counts


def _bar_chart(counts: dict[str, int], *, title: str) -> str:
    width, bar_h, gap, label_w = 520, 22, 8, 90
    top = max(counts.values()) if counts and max(counts.values()) > 0 else 1
    rows = []
    for i, (sev, n) in enumerate(counts.items()):
        y = i * (bar_h + gap)
        w = int((width - label_w - 60) * n / top)
        rows.append(
            f'<text x="0" y="{y + 16}" class="lbl">{_e(sev)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{_COLOURS.get(sev, "#607d8b")}">'
            f"<title>{_e(sev)}: {n}</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 16}" class="val">{n}</text>'
        )
    height = len(counts) * (bar_h + gap)
    return (
        f'<svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )


def _history_chart(history: Sequence[tuple[str, dict[str, int]]]) -> str:
    if not history:
        return "<p class='muted'>No earlier releases registered.</p>"
    col_w, gap, height, base = 60, 24, 200, 170
    top = max((sum(c.values()) for _, c in history), default=1) or 1
    parts = []
    for i, (name, counts) in enumerate(history):
        x = 40 + i * (col_w + gap)
        y = base
        for sev in SEVERITIES:
            n = counts.get(sev, 0)
            if not n:
                continue
            h = int((base - 20) * n / top)
            y -= h
            parts.append(
                f'<rect x="{x}" y="{y}" width="{col_w}" height="{h}" fill="{_COLOURS[sev]}">'
                f"<title>{_e(name)} {_e(sev)}: {n}</title></rect>"
            )
        parts.append(f'<text x="{x}" y="{base + 18}" class="lbl">{_e(name)}</text>')
        parts.append(f'<text x="{x}" y="{y - 4}" class="val">{sum(counts.values())}</text>')
    width = 60 + len(history) * (col_w + gap)
    parts.append(f'<line x1="30" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#9aa3af" stroke-width="1"/>')
    legend = "".join(
        f'<span><i style="background:{_COLOURS[sev]}"></i>{_e(sev)}</span>'
        for sev in SEVERITIES
        if any(c.get(sev) for _, c in history)
    )
    return (
        f'<svg role="img" aria-label="findings over releases" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
        f'<div class="legend">{legend}</div>'
    )


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2a44;color:#fff;padding:20px 32px}header h1{margin:0 0 4px;font-size:24px}
main{padding:16px 32px;max-width:1300px}section{background:#fff;border-radius:8px;padding:16px 20px;margin:16px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{margin-top:0;font-size:19px}table{border-collapse:collapse;width:100%;
font-size:13px}th,td{border-bottom:1px solid #e3e6ea;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5}.ok{color:#1b7f3b;font-weight:600}.fail{color:#c62828;font-weight:600}.muted{color:#6b7280}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;color:#fff;font-size:12px}
.kpis{display:flex;gap:16px;flex-wrap:wrap}.kpi{background:#eef1f5;border-radius:8px;padding:10px 16px;min-width:140px}
.kpi b{display:block;font-size:22px}.muted-h{color:#b8c2d6;font-size:12px;margin-top:4px}
svg .lbl{font-size:12px;fill:#333}svg .val{font-size:12px;fill:#333}
code{font-size:12px;word-break:break-all}td.paths code{white-space:nowrap;word-break:normal}
.verdict{border-radius:8px;padding:14px 20px;margin:16px 0;color:#fff;display:flex;gap:24px;align-items:center}
.verdict.pass{background:#1b7f3b}.verdict.fail{background:#b71c1c}.verdict b{font-size:30px;letter-spacing:1px}
.verdict span{font-size:15px}.verdict a{color:#fff}tr.kev td{background:#fdecea}tr.kev td:first-child{
border-left:4px solid #b71c1c}.kevb{background:#b71c1c}.src{color:#6b7280;font-size:11px;display:block}
@media print{body{background:#fff}section{box-shadow:none;break-inside:auto}header{padding:12px 16px}
main{padding:0 16px}.verdict{break-inside:avoid}}
.legend{display:flex;gap:14px;font-size:12px;margin:6px 0 0}.legend i{display:inline-block;width:12px;height:12px;
border-radius:2px;margin-right:4px;vertical-align:-1px}
"""


def _sev_badge(sev: str) -> str:
    s = (sev or "unknown").lower()
    return f'<span class="badge" style="background:{_COLOURS.get(s, "#607d8b")}">{_e(s)}</span>'


def _verdict(data: ReportData) -> str:
    """The one verdict banner: pass only when every check passes and nothing is open."""
    failed = [c.name for c in data.checks if not c.ok]
    still_open = open_findings(data.findings)
    kev_open = sum(1 for f in still_open if f.get("kev"))
    ok = not failed and not still_open
    parts = [
        f"{len(data.checks) - len(failed)}/{len(data.checks)} checks pass",
        f"{len(data.findings)} findings",
        f"{len(still_open)} open" + (f" ({kev_open} known exploited)" if kev_open else ""),
    ]
    fixed = list(data.fixed.get("fixed") or [])
    if fixed:
        critical = sum(1 for f in fixed if f.get("severity") == "critical" or f.get("kev"))
        parts.append(
            f"{len(fixed)} fixed since {data.fixed.get('previous_release')}"
            + (f" ({critical} critical or known exploited)" if critical else "")
        )
    if failed:
        parts.append("failing: " + ", ".join(failed))
    link = ' · <a href="#open-items">open items</a>' if (failed or still_open) else ""
    return (
        f'<section id="verdict" class="verdict {"pass" if ok else "fail"}" role="status">'
        f'<b id="verdict-word">{"PASS" if ok else "FAIL"}</b>'
        f"<span>{_e(' · '.join(parts))}{link}</span></section>"
    )


def _summary(data: ReportData) -> list[str]:
    passed = sum(1 for c in data.checks if c.ok)
    out = [
        '<section id="summary"><h2>Summary</h2><div class="kpis">',
        f'<div class="kpi"><b id="checks-passed">{passed}/{len(data.checks)}</b>checks passed</div>',
        f'<div class="kpi"><b id="component-count">{len(data.components)}</b>components</div>',
        f'<div class="kpi"><b id="finding-count">{len(data.findings)}</b>findings</div>',
        f'<div class="kpi"><b id="open-count">{len(open_findings(data.findings))}</b>without a closing decision</div>',
        "</div><table><thead><tr><th>Check</th><th>Result</th><th>Detail</th><th>Evidence</th></tr></thead><tbody>",
    ]
    for c in data.checks:
        cls, word = ("ok", "pass") if c.ok else ("fail", "FAIL")
        out.append(
            f'<tr><td>{_e(c.name)}</td><td class="{cls}">{word}</td><td>{_e(c.detail)}</td>'
            f"<td class='paths'><code>{_e(c.evidence)}</code></td></tr>"
        )
    out.append("</tbody></table></section>")
    return out


def _severity_cell(f: dict[str, Any]) -> str:
    sev = str(f.get("severity") or "unknown")
    unscored = sev in ("unknown", "unscored")
    source = str(f.get("severity_source") or ("no score in any feed" if unscored else "source not recorded"))
    return f'{_sev_badge(sev)}<span class="src">{_e(source)}</span>'


def _finding_row(f: dict[str, Any]) -> str:
    why = " / ".join(str(x) for x in (f.get("justification"), f.get("response")) if x)
    c = closure(f)
    kev = '<span class="badge kevb">KEV</span>' if f.get("kev") else ""
    return (
        f"<tr{' class=kev' if f.get('kev') else ''}><td>{_e(f.get('id'))} {kev}</td><td>{_e(f.get('component'))}</td>"
        f"<td>{_severity_cell(f)}</td><td>{_e(f.get('score', ''))}</td>"
        f"<td>{_e(f.get('state') or 'undecided')}</td>"
        f'<td class="{"ok" if c.closed else "fail"}">{_e(c.reason)}</td>'
        f"<td>{_e(why)}</td><td>{_e(f.get('detail', ''))}</td></tr>"
    )


_FINDING_HEAD = (
    "<table><thead><tr><th>Vulnerability</th><th>Component</th><th>Severity (source)</th><th>Score</th>"
    "<th>Decision</th><th>Closed?</th><th>Justification / response</th><th>Detail</th></tr></thead><tbody>"
)


def _open_items(data: ReportData) -> list[str]:
    failed = [c for c in data.checks if not c.ok]
    still_open = open_findings(data.findings)
    out = [f'<section id="open-items"><h2>Open items ({len(failed)} checks, {len(still_open)} findings)</h2>']
    if not failed and not still_open:
        return [*out, "<p class='ok'>Nothing is open: every check passes and every finding is closed.</p></section>"]
    if failed:
        out.append("<ul>")
        out.extend(f"<li><b>{_e(c.name)}</b>: {_e(c.detail)}</li>" for c in failed)
        out.append("</ul>")
    if still_open:
        out.append(_FINDING_HEAD)
        out.extend(_finding_row(dict(f)) for f in still_open)
        out.append("</tbody></table>")
    out.append("</section>")
    return out


def _findings(data: ReportData) -> list[str]:
    out = ['<section id="findings"><h2>Vulnerability findings and decisions (known exploited first)</h2>']
    out.append(_bar_chart(severity_counts(data.findings), title="severity distribution"))
    out.append(_FINDING_HEAD)
    out.extend(_finding_row(dict(f)) for f in order_findings(data.findings))
    out.append("</tbody></table></section>")
    return out


def _fixed(data: ReportData) -> list[str]:
    items = list(data.fixed.get("fixed") or [])
    prev = data.fixed.get("previous_release")
    if prev is None:
        return []
    out = [f'<section id="fixed"><h2>Fixed by this release ({len(items)} since {_e(prev)})</h2>']
    if not items:
        return [*out, "<p class='muted'>No finding of the previous release is fixed by this one.</p></section>"]
    out.append(
        "<table><thead><tr><th>Vulnerability</th><th>Component</th><th>Version then → now</th>"
        "<th>Severity (source)</th><th>Score</th><th>Decision in the previous release</th></tr></thead><tbody>"
    )
    for f in items:
        kev = '<span class="badge kevb">KEV</span>' if f.get("kev") else ""
        out.append(
            f"<tr><td>{_e(f.get('id'))} {kev}</td><td>{_e(f.get('component'))}</td>"
            f"<td>{_e(f.get('version_before'))} → {_e(f.get('version_now'))}</td><td>{_severity_cell(f)}</td>"
            f"<td>{_e(f.get('score') or '')}</td><td>{_e(f.get('previous_decision') or 'undecided')}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return out


def _components(data: ReportData) -> list[str]:
    out = ['<section id="components"><h2>Components and support status</h2><table><thead><tr>']
    out.append(
        "<th>Component</th><th>Version</th><th>Supplier</th><th>License</th><th>Identity</th>"
        "<th>Level of support</th><th>End of support</th></tr></thead><tbody>"
    )
    for comp in data.components:
        out.append(
            f"<tr><td>{_e(comp.get('name'))}</td><td>{_e(comp.get('version'))}</td>"
            f"<td>{_e(comp.get('supplier'))}</td><td>{_e(comp.get('license'))}</td>"
            f"<td><code>{_e(comp.get('purl') or comp.get('cpe') or '')}</code></td>"
            f"<td>{_e(comp.get('support_level') or 'unknown')}</td>"
            f"<td>{_e(comp.get('end_of_support') or 'unknown')}</td></tr>"
        )
    out.append("</tbody></table></section>")
    return out


def render_report(data: ReportData) -> str:
    """Render the report as one self-contained HTML document."""
    rel = data.release
    title = f"{rel.get('name', 'release')} {rel.get('version', '')}".strip()
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>Release evidence: {_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Release evidence: {_e(title)}</h1>",
        f"<div>model {_e(rel.get('model', '-'))} · chip {_e(rel.get('chip', '-'))} · built {_e(data.created)}</div>",
        f"<div class='muted-h'>manifest signed by evidence key SHA-256 {_e(data.signer)}</div>" if data.signer else "",
        "</header><main>",
        _verdict(data),
        *_summary(data),
        *_open_items(data),
        *_findings(data),
        *_fixed(data),
        *_components(data),
    ]
    out.extend(_rest(data))
    out.append("</main></body></html>")
    return "\n".join(out)


def _rest(data: ReportData) -> list[str]:
    out: list[str] = []
    if data.update_steps:
        out.append('<section id="update-path"><h2>Update path and anti-rollback on the device model</h2>')
        out.append("<table><thead><tr><th>Step</th><th>Result</th><th>Numbers</th></tr></thead><tbody>")
        for st in data.update_steps:
            cls, word = ("ok", "pass") if st.get("ok") else ("fail", "FAIL")
            nums = ", ".join(
                f"{k.replace('_', ' ')} = {str(v).lower() if isinstance(v, bool) or v is None else v}"
                for k, v in st.items()
                if k not in {"step", "ok", "image_sha256", "message"}
            )
            out.append(
                f'<tr><td>{_e(str(st.get("step", "")).replace("_", " "))}</td><td class="{cls}">{word}</td>'
                f"<td>{_e(nums)}</td></tr>"
            )
        out.append("</tbody></table></section>")

    out.append('<section id="history"><h2>Findings over releases</h2>')
    out.append(_history_chart(data.history))
    out.append("</section>")

    out.append('<section id="traceability"><h2>Traceability matrix</h2><table><thead><tr>')
    out.append("<th>Security property</th><th>Mechanism</th><th>FDA premarket guidance</th>")
    out.append("<th>IEC 81001-5-1 / IEC 62443-4-2</th><th>Evidence</th><th>Tests</th></tr></thead><tbody>")
    for row in data.trace:
        out.append(
            f"<tr><td>{_e(row.property)}</td><td>{_e(row.mechanism)}</td>"
            f"<td>{'<br>'.join(_e(x) for x in row.fda)}</td><td>{'<br>'.join(_e(x) for x in row.iec)}</td>"
            f"<td class='paths'>{'<br>'.join('<code>' + _e(x) + '</code>' for x in row.evidence)}</td>"
            f"<td class='paths'>{'<br>'.join('<code>' + _e(x) + '</code>' for x in row.tests)}</td></tr>"
        )
    out.append("</tbody></table></section>")

    out.append('<section id="audit"><h2>Audit timeline</h2><table><thead><tr><th>Seq</th><th>Time (UTC)</th>')
    out.append("<th>Event</th><th>Outcome</th><th>Reason</th><th>Actor</th></tr></thead><tbody>")
    for ev in data.audit_events:
        cls = "fail" if ev.get("outcome") in {"failure", "denied"} else ""
        out.append(
            f"<tr><td>{_e(ev.get('seq'))}</td><td>{_e(ev.get('time'))}</td><td>{_e(ev.get('type'))}</td>"
            f'<td class="{cls}">{_e(ev.get("outcome"))}</td><td>{_e(ev.get("reason") or "")}</td>'
            f"<td>{_e(_no_path(ev.get('actor')))}</td></tr>"
        )
    out.append("</tbody></table></section>")

    if data.files:
        out.append('<section id="files"><h2>Bundle contents</h2><table><thead><tr><th>File</th><th>Size</th>')
        out.append("<th>SHA-256</th></tr></thead><tbody>")
        for fe in data.files:
            out.append(
                f"<tr><td><code>{_e(fe['path'])}</code></td><td>{_e(fe['size'])}</td>"
                f"<td><code>{_e(fe['sha256'])}</code></td></tr>"
            )
        out.append("</tbody></table></section>")
    return out
