"""The bundle manifest signed by an evidence key held in a PKCS#11 token (SoftHSM2)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from medfw.crypto.keys import KeyType
from medfw.crypto.registry import load_signer
from medfw.evidence.build import build_bundle
from medfw.evidence.spec import load_release_spec
from medfw.evidence.verify import verify_evidence
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, available, softhsm_token

from .conftest import Built

pytestmark = [pytest.mark.softhsm, pytest.mark.skipif(not available(), reason="SoftHSM2 is not installed")]


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


def test_manifest_signed_in_the_token(built: Built, softhsm: SoftHsm, tmp_path: Path) -> None:
    uri = softhsm.uri("evidence", key_id=b"\x07")
    public = generate_key(uri, KeyType.ECDSA_P256)
    release = tmp_path / "release"
    shutil.copytree(built.release.root, release)
    spec = load_release_spec(release)
    result = build_bundle(spec, tmp_path / "bundle", signer=load_signer(uri))
    assert result.ok
    manifest = (result.path / "manifest.json").read_text()
    assert softhsm.pin not in manifest
    verified = verify_evidence(result.path, key=public)
    assert verified.ok and verified.key_pinned
