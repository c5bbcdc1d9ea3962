"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def vectors() -> Path:
    """The directory of golden vectors and real test data shipped with the repository."""
    return VECTORS
