"""TUF roles held in a PKCS#11 token (SoftHSM2) through MedfwTufSigner: init, publish, rotate, client verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medfw.crypto.keys import KeyType
from medfw.keys.hsm import generate_key
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner
from softhsm import SoftHsm, softhsm_token

from .fleet import tuf_signer
from .test_repository import _client

pytestmark = pytest.mark.softhsm


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


def test_hsm_root_and_targets(tmp_path: Path, softhsm: SoftHsm) -> None:
    root_uri = softhsm.uri("tuf-root", key_id=b"\x11")
    targets_uri = softhsm.uri("tuf-targets", key_id=b"\x12")
    generate_key(root_uri, KeyType.ECDSA_P256)
    generate_key(targets_uri, KeyType.RSA3072)
    root = MedfwTufSigner.from_medfw_uri(root_uri)
    targets = MedfwTufSigner.from_medfw_uri(targets_uri)
    assert (root.public_key.scheme, targets.public_key.scheme) == ("ecdsa-sha2-nistp256", "rsassa-pss-sha256")
    snap, ts = tuf_signer(), tuf_signer()
    repo = TufRepository.init(
        tmp_path / "repo", root_signers=[root], targets_signers=[targets], snapshot_signer=snap, timestamp_signer=ts
    )
    root_v1 = repo.root_bytes()
    info = ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 0, "")
    repo.publish(b"\xa5" * 2048, info, targets_signers=[targets])
    repo.sign_online(snap, ts)
    # rotate root from the token key to a new key: N+1 signed by the token key and the new key
    new_root = tuf_signer()
    repo.rotate("root", [new_root.public_key], old_root_signers=[root], new_root_signers=[new_root])
    up = _client(repo, tmp_path, root_v1)
    assert up._trusted_set.root.version == 2
    target = up.get_targetinfo("pump/pump-1.1.0.bin")
    assert target is not None and target.custom["secure_version"] == 2
