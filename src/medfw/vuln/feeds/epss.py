"""FIRST EPSS daily scores CSV (``epss_scores-YYYY-MM-DD.csv[.gz]``).

Format: an optional first comment line ``#model_version:v2023.03.01,score_date:2023-06-24T00:00:00+0000``,
then the header ``cve,epss,percentile`` and one row per CVE with probabilities in [0, 1].
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from medfw.errors import FeedError
from medfw.vuln.feeds import CVE_ID, Skip, maybe_gunzip

__all__ = ["EpssScores", "parse_epss"]


@dataclass
class EpssScores:
    """Parsed scores: CVE id → (epss, percentile), the score date, and skipped rows."""

    score_date: str
    model_version: str = ""
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)


def parse_epss(raw: bytes, path: str) -> EpssScores:
    """Parse an EPSS CSV; malformed rows are skipped and reported.

    Raises:
        FeedError: not text, or the header is not ``cve,epss,percentile``.
    """
    try:
        text = maybe_gunzip(raw, path, "EPSS").decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FeedError("EPSS file is not UTF-8 text", path=path, offset=e.start) from e
    lines = text.splitlines()
    score_date = model = ""
    if lines and lines[0].startswith("#"):
        m = re.search(r"score_date:([0-9T:\-+]+)", lines[0])
        score_date = m.group(1) if m else ""
        mv = re.search(r"model_version:([A-Za-z0-9.\-_]+)", lines[0])
        model = mv.group(1) if mv else ""
        lines = lines[1:]
    if not lines or [h.strip() for h in lines[0].split(",")] != ["cve", "epss", "percentile"]:
        raise FeedError("not an EPSS CSV: header must be 'cve,epss,percentile'", path=path, field="header")
    out = EpssScores(score_date, model)
    try:
        _rows(out, lines, path)
    except csv.Error as e:
        raise FeedError(f"EPSS CSV is malformed: {e}", path=path) from e
    return out


def _rows(out: EpssScores, lines: list[str], path: str) -> None:
    for n, row in enumerate(csv.reader(io.StringIO("\n".join(lines[1:]))), start=2):
        if not row:
            continue
        if len(row) != 3 or not CVE_ID.match(row[0]):
            out.skips.append(Skip(row[0] if row else f"line {n}", f"line {n}: malformed row", path))
            continue
        try:
            score, pct = float(row[1]), float(row[2])
        except ValueError:
            out.skips.append(Skip(row[0], f"line {n}: score is not a number", path))
            continue
        if not (0.0 <= score <= 1.0 and 0.0 <= pct <= 1.0):
            out.skips.append(Skip(row[0], f"line {n}: score outside [0, 1]", path))
            continue
        out.scores[row[0]] = (score, pct)
