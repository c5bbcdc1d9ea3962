"""Maintenance windows: open/closed in the site's time zone, spanning midnight, next opening, refusals."""

from __future__ import annotations

import datetime as dt

import pytest

from medfw.errors import ConfigError
from medfw.server.windows import parse_window

UTC = dt.UTC


def test_window_in_the_site_time_zone() -> None:
    w = parse_window("Europe/Berlin", ["mon"], "02:00", "04:00")
    # Monday 2026-12-07 01:30 UTC = 02:30 in Berlin (CET, UTC+1)
    assert w.is_open(dt.datetime(2026, 12, 7, 1, 30, tzinfo=UTC))
    assert not w.is_open(dt.datetime(2026, 12, 7, 3, 0, tzinfo=UTC))  # 04:00 Berlin: end is exclusive
    assert not w.is_open(dt.datetime(2026, 12, 8, 1, 30, tzinfo=UTC))  # Tuesday
    nxt = w.next_open(dt.datetime(2026, 12, 7, 3, 0, tzinfo=UTC))
    assert nxt == dt.datetime(2026, 12, 14, 1, 0, tzinfo=UTC)


def test_window_spanning_midnight_belongs_to_the_night_it_starts() -> None:
    w = parse_window("UTC", ["fri"], "22:00", "04:00")
    assert w.is_open(dt.datetime(2026, 12, 11, 23, 0, tzinfo=UTC))  # Friday night
    assert w.is_open(dt.datetime(2026, 12, 12, 3, 59, tzinfo=UTC))  # early Saturday
    assert not w.is_open(dt.datetime(2026, 12, 12, 4, 0, tzinfo=UTC))
    assert not w.is_open(dt.datetime(2026, 12, 11, 3, 0, tzinfo=UTC))  # early Friday belongs to Thursday
    assert w.to_dict() == {"timezone": "UTC", "days": ["fri"], "start": "22:00", "end": "04:00"}


@pytest.mark.parametrize(
    ("tz", "days", "start", "end"),
    [
        ("UTC", [], "01:00", "02:00"),
        ("UTC", ["mon"], "01:00", "01:00"),
        ("Nowhere/City", ["mon"], "01:00", "02:00"),
        ("../etc/passwd", ["mon"], "01:00", "02:00"),
        ("UTC", ["funday"], "01:00", "02:00"),
        ("UTC", ["mon"], "24:00", "02:00"),
        ("UTC", ["mon"], "1:00", "02:00"),
    ],
)
def test_windows_that_never_open_or_are_malformed_are_refused(tz: str, days: list[str], start: str, end: str) -> None:
    with pytest.raises(ConfigError):
        parse_window(tz, days, start, end)
