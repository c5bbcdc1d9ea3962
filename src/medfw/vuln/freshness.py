"""Feed freshness: what each source's data is, how old it is, and the refusal to report on stale data.

Every import and every sync writes one ``feed_state`` row per source: when it last succeeded, how (``import`` of
local files, ``sync`` from an upstream or mirror), from where (URLs never carry keys), how many records the
source holds, its catalog or model version (KEV ``catalogVersion``, EPSS ``model_version``) and the data's own date
(KEV ``dateReleased``, EPSS ``score_date``, the newest record modification). Scan results carry this snapshot;
``--max-feed-age`` turns a stale source into exit 1. The writes are in :mod:`medfw.vuln.feed_state_store`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from medfw.errors import PolicyViolationError, UsageError
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import Table

__all__ = [
    "FeedState",
    "check_max_age",
    "feed_snapshot",
    "feed_states",
    "format_age",
    "parse_age",
    "state_of",
]

_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: the record sources of each feed kind (kev and epss are tables of their own)
KIND_SOURCES: Mapping[str, tuple[str, ...]] = {
    "nvd": ("nvd", "nvd-override"),
    "cve5": ("cve5-cna", "cve5-adp"),
    "osv": ("osv",),
    "vendor": ("vendor",),
}


@dataclass(frozen=True)
class FeedState:
    """One source's state (see the module docstring)."""

    source: str
    updated_at: str
    method: str
    location: str
    records: int
    version: str
    data_date: str
    cursor: Mapping[str, Any]

    def age(self, now: dt.datetime | None = None) -> dt.timedelta:
        """Time since the last successful update."""
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.datetime.fromisoformat(self.updated_at)

    def as_dict(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Return a JSON-ready dict (the cursor is internal and left out)."""
        return {
            "source": self.source,
            "updated_at": self.updated_at,
            "age_seconds": int(self.age(now).total_seconds()),
            "method": self.method,
            "location": self.location,
            "records": self.records,
            "version": self.version,
            "data_date": self.data_date,
        }


def parse_age(text: str) -> dt.timedelta:
    """Parse ``90s``, ``30m``, ``12h``, ``2d`` or ``1w``.

    Raises:
        UsageError: any other form.
    """
    m = _AGE.match(text)
    if not m or int(m.group(1)) <= 0:
        raise UsageError(f"feed age {text!r} is not a positive number with s, m, h, d or w", field="--max-feed-age")
    return dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def format_age(age: dt.timedelta) -> str:
    """``3d 4h``, ``5h 2m``, ``40s``."""
    secs = max(0, int(age.total_seconds()))
    d, rem = divmod(secs, 86400)
    h, rem = divmod(rem, 3600)
    m, s = divmod(rem, 60)
    if d:
        return f"{d}d {h}h" if h else f"{d}d"
    if h:
        return f"{h}h {m}m" if m else f"{h}h"
    return f"{m}m {s}s" if m else f"{s}s"


def state_of(row: Mapping[str, Any]) -> FeedState:
    """A ``feed_state`` row (a dict of its columns) as a :class:`FeedState`."""
    r = row
    return FeedState(
        r["source"],
        r["updated_at"],
        r["method"],
        r["location"],
        int(r["records"]),
        r["version"],
        r["data_date"],
        json.loads(r["cursor"]),
    )


def feed_states(index: ScanReads) -> list[FeedState]:
    """Every source's state, by source name (plain SQL: a scan reads it without loading SQLAlchemy)."""
    return [state_of(r) for r in index.table_rows(Table.FEED_STATE, order="source")]


def feed_snapshot(index: ScanReads, now: dt.datetime | None = None) -> dict[str, dict[str, Any]]:
    """The feed snapshot a scan used: source → its state (only sources updated at least once)."""
    return {s.source: s.as_dict(now) for s in feed_states(index) if s.records or s.version or s.data_date}


def check_max_age(
    index: ScanReads, max_age: dt.timedelta, *, sources: Iterable[str] | None = None, now: dt.datetime | None = None
) -> None:
    """Refuse stale data: raise when a source is older than ``max_age`` or no source was ever updated.

    Raises:
        PolicyViolationError: ``feed stale: kev last synced 3d 4h ago (max 2d)`` (exit 1).
    """
    now = now or dt.datetime.now(dt.UTC)
    states = {s.source: s for s in feed_states(index) if s.updated_at > "1970-01-01T00:00:00+00:00"}
    wanted = list(sources) if sources is not None else sorted(states)
    if not wanted:
        raise PolicyViolationError("feed stale: no feed was ever imported or synced", field="--max-feed-age")
    limit = format_age(max_age)
    for name in wanted:
        st = states.get(name)
        if st is None:
            raise PolicyViolationError(f"feed stale: {name} was never synced (max {limit})", field="--max-feed-age")
        if st.age(now) > max_age:
            raise PolicyViolationError(
                f"feed stale: {name} last synced {format_age(st.age(now))} ago (max {limit})", field="--max-feed-age"
            )
