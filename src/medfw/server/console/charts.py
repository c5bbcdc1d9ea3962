"""Charts as inline SVG, rendered on the server (no script, no external resource); every label is escaped.

Each chart is an ``<svg role="img">`` with a ``<title>`` naming what it shows, and the pages print the same numbers
in a table next to it, so nothing is conveyed by colour or graphics alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["STATE_ORDER", "bar_chart", "progress_bar", "state_class"]

#: assignment states in the order progress bars stack them
STATE_ORDER = (
    "confirmed",
    "booted",
    "installed",
    "downloading",
    "pending",
    "waiting",
    "skipped",
    "cancelled",
    "rejected",
    "reverted",
)

_COLOURS = {
    "confirmed": "#1b7f3b",
    "booted": "#2a6fb0",
    "installed": "#2a6fb0",
    "downloading": "#4a86c5",
    "pending": "#6b9bd1",
    "waiting": "#9aa0a6",
    "skipped": "#a15c00",
    "cancelled": "#5f6368",
    "rejected": "#c62828",
    "reverted": "#8e1b1b",
}


def state_class(state: str) -> str:
    """The CSS class of a state's legend swatch."""
    return f"st-{state}" if state.replace("_", "").isalpha() and state.islower() else "st-other"


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(rows: Sequence[tuple[str, int]], *, title: str, width: int = 640) -> Markup:
    """Horizontal bars, one per ``(label, value)``, longest value = full width."""
    if not rows:
        return Markup("")
    label_w, bar_h, gap = 200, 20, 8
    top = max(v for _, v in rows) or 1
    room = width - label_w - 70
    height = len(rows) * (bar_h + gap) + gap
    ident = "chart-" + hashlib.sha256(title.encode()).hexdigest()[:10]
    parts = [
        f'<svg class="chart" role="img" aria-labelledby="{ident}" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet">',
        f'<title id="{ident}">{escape(title)}</title>',
    ]
    for i, (label, value) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        w = max(1.0, room * value / top) if value else 0.0
        text = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="chart-label">{escape(text)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{_num(w)}" height="{bar_h}" fill="#2a6fb0">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{_num(label_w + w)}" dx="6" y="{y + 15}" class="chart-value">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped or a number


def progress_bar(counts: Mapping[str, int], *, label: str, width: int = 480, height: int = 18) -> Markup:
    """One stacked bar: each state's share of the devices, in :data:`STATE_ORDER`."""
    total = sum(counts.values())
    parts = [
        f'<svg class="progress" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="none"><title>{escape(label)}: '
        f"{escape(', '.join(f'{n} {s}' for s, n in _ordered(counts)) or 'no devices')}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eceff1"/>',
    ]
    x = 0.0
    for state, n in _ordered(counts):
        w = width * n / total if total else 0.0
        parts.append(
            f'<rect x="{_num(x)}" y="0" width="{_num(w)}" height="{height}" fill="{_COLOURS.get(state, "#444")}">'
            f"<title>{escape(state)}: {n}</title></rect>"
        )
        x += w
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped or a number


def _ordered(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    known = [(s, counts[s]) for s in STATE_ORDER if counts.get(s)]
    other = sorted((s, n) for s, n in counts.items() if s not in STATE_ORDER and n)
    return known + other
