"""Fixtures for the evidence tests: one release and its bundle, built once per worker."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from medfw.audit import MemorySink
from medfw.crypto.signer import FileSigner
from medfw.evidence.build import BuildResult, build_bundle
from medfw.evidence.spec import load_release_spec

from ._release import Release, make_release


@dataclass(frozen=True)
class Built:
    """A release and the bundle built from it."""

    release: Release
    result: BuildResult
    events: MemorySink

    @property
    def path(self) -> Path:
        return self.result.path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("evidence")
    release = make_release(base / "release")
    spec = load_release_spec(release.root)
    assert spec.evidence_key is not None
    sink = MemorySink()
    result = build_bundle(spec, base / "bundle", signer=FileSigner.from_file(spec.evidence_key), sink=sink)
    return Built(release, result, sink)


@pytest.fixture
def bundle(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built bundle (tests may tamper with it)."""
    target = tmp_path / "bundle"
    shutil.copytree(built.path, target)
    return target
