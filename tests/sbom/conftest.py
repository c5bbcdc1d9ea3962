"""Fixtures of the SBOM tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._idf_fixture import IdfProject, make_idf_project


@pytest.fixture
def idf_project(tmp_path: Path) -> IdfProject:
    """A fixture ESP-IDF project (real manifests, real template) with a linker map."""
    return make_idf_project(tmp_path)
