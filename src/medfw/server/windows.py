"""Maintenance windows: the days and hours (in the site's time zone) in which installs may be assigned to a group.

A window is a set of weekdays and a start/end time of day. ``end`` before ``start`` spans midnight (``22:00``–
``04:00``: the night *starting* on a listed day). A window that can never open — no day, or start equal to end — is
refused when it is set, so a rollout can never wait forever on it by mistake.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from medfw.errors import ConfigError

__all__ = ["DAYS", "Window", "parse_window"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TZ = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")


@dataclass(frozen=True)
class Window:
    """A validated maintenance window."""

    timezone: str
    days: tuple[int, ...]
    start: int
    end: int

    def is_open(self, now: dt.datetime) -> bool:
        """True when ``now`` (aware) lies inside the window in the site's time zone."""
        local = now.astimezone(ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        today = local.weekday()
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        if today in self.days and minute >= self.start:
            return True
        return (today - 1) % 7 in self.days and minute < self.end

    def next_open(self, now: dt.datetime) -> dt.datetime:
        """The next time (UTC) the window opens at or after ``now`` (``now`` itself when it is open)."""
        if self.is_open(now):
            return now.astimezone(dt.UTC)
        tz = ZoneInfo(self.timezone)
        local = now.astimezone(tz)
        for ahead in range(8):
            day = (local + dt.timedelta(days=ahead)).date()
            if day.weekday() not in self.days:
                continue
            start = dt.datetime.combine(day, dt.time(self.start // 60, self.start % 60), tzinfo=tz)
            if start >= local:
                return start.astimezone(dt.UTC)
        raise ConfigError("maintenance window never opens", field="window")  # unreachable for a validated window

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {
            "timezone": self.timezone,
            "days": [DAYS[d] for d in self.days],
            "start": f"{self.start // 60:02d}:{self.start % 60:02d}",
            "end": f"{self.end // 60:02d}:{self.end % 60:02d}",
        }


def _minutes(text: str, field: str) -> int:
    m = _TIME.match(text)
    if m is None:
        raise ConfigError(f"{field} {text!r} is not HH:MM (00:00-23:59)", field=field)
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_window(timezone: str, days: Sequence[str], start: str, end: str) -> Window:
    """Validate a window.

    Raises:
        ConfigError: unknown time zone, unknown day, malformed time, or a window that never opens (no day, or start
            equal to end).
    """
    if not _TZ.match(timezone):
        raise ConfigError(f"time zone {timezone!r} is malformed", field="timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {timezone!r}", field="timezone") from None
    picked: set[int] = set()
    for d in days:
        key = str(d).strip().lower()[:3]
        if key not in DAYS:
            raise ConfigError(f"unknown day {d!r} (mon..sun)", field="days")
        picked.add(DAYS.index(key))
    s, e = _minutes(start, "start"), _minutes(end, "end")
    if not picked or s == e:
        raise ConfigError("this maintenance window never opens (no day, or start equals end)", field="window")
    return Window(timezone, tuple(sorted(picked)), s, e)
