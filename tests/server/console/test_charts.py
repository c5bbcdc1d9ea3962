"""Server-side SVG charts: well-formed SVG, every label escaped, sizes proportional to the counts."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.server.console.charts import bar_chart, progress_bar, state_class

SVG = "{http://www.w3.org/2000/svg}"
_PRINTABLE = st.characters(blacklist_categories=("Cc", "Cs"))


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text(_PRINTABLE, min_size=1, max_size=12), st.integers(0, 10_000), max_size=6),
    st.text(_PRINTABLE, max_size=20),
)
def test_progress_bar_is_well_formed_and_escaped(counts: dict[str, int], label: str) -> None:
    svg = _parse(str(progress_bar(counts, label=label)))
    title = svg.find(f"{SVG}title")
    assert title is not None and (title.text or "").startswith(f"{label}: ")
    widths = [float(r.get("width", "0")) for r in svg.findall(f"{SVG}rect")[1:]]
    total = sum(counts.values())
    assert len(widths) == len([n for n in counts.values() if n])
    if total:
        assert abs(sum(widths) - 480) < 1


def test_bar_chart_scales_to_the_largest_value_and_escapes() -> None:
    svg = _parse(str(bar_chart([("<script>x</script>", 10), ("b & c", 5)], title="Devices <per> model")))
    bars = svg.findall(f"{SVG}rect")
    assert [float(b.get("width", "0")) for b in bars] == [370.0, 185.0]
    labels = [t.text for t in svg.findall(f"{SVG}text") if t.get("class") == "chart-label"]
    assert labels == ["<script>x</script>", "b & c"]
    assert str(bar_chart([], title="empty")) == ""


def test_state_class_accepts_only_plain_state_names() -> None:
    assert state_class("nothing_to_do") == "st-nothing_to_do"
    assert state_class('x" onmouseover="y') == "st-other"
