"""Fixtures for the vulnerability-management tests: vector paths, SBOM builders, a populated index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medfw.vuln import import_feeds, open_index
from medfw.vuln.index import VulnIndex

VULN = Path(__file__).parent.parent / "vectors" / "vuln"


@pytest.fixture
def vuln_vectors() -> Path:
    """tests/vectors/vuln."""
    return VULN


def make_sbom(components: list[dict[str, Any]], *, serial: str | None = None, name: str = "test-fw") -> bytes:
    """Return CycloneDX 1.6 JSON bytes for a firmware with these components."""
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial or f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {"component": {"type": "firmware", "name": name, "version": "1.0.0", "bom-ref": "fw"}},
        "components": [{"type": "library", **c} for c in components],
    }
    return json.dumps(doc).encode()


@pytest.fixture
def sbom_factory() -> Callable[..., bytes]:
    """Build an SBOM from component dicts."""
    return make_sbom


def populate(index: VulnIndex) -> None:
    """Import the NVD, CVE 5, OSV, KEV and EPSS vectors."""
    import_feeds(
        index,
        nvd=[str(VULN / "nvd"), str(VULN / "custom" / "heartbleed-nvd-api-2.0.json")],
        cve5=[str(VULN / "cve5")],
        osv=[str(VULN / "osv"), str(VULN / "custom" / "osv-semver-mbedtls.json")],
        kev=[str(VULN / "kev" / "known_exploited_vulnerabilities.json")],
        epss=[str(VULN / "custom" / "epss_scores-2026-11-20.csv")],
    )


@pytest.fixture(scope="session")
def full_index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite index with every vector imported (built once per session and worker)."""
    path = tmp_path_factory.mktemp("vulnidx") / "full.db"
    index = open_index(str(path))
    populate(index)
    index.close()
    return path


@pytest.fixture
def full_index(full_index_path: Path, tmp_path: Path) -> VulnIndex:
    """A private copy of the populated index (tests may write decisions to it)."""
    copy = tmp_path / "index.db"
    copy.write_bytes(full_index_path.read_bytes())
    index = open_index(str(copy))
    yield index  # type: ignore[misc]
    index.close()
