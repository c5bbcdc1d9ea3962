"""Fixtures of the OTA tests: a fleet (repository, server, devices) in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fleet import Fleet, make_fleet


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    f = make_fleet(tmp_path)
    try:
        yield f
    finally:
        f.close()
