"""A checkpoint key in a PKCS#11 token (SoftHSM2): ``audit init --checkpoint-key pkcs11:…``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medfw.audit import init_log, open_log, verify_log
from medfw.audit.log import append_session
from medfw.audit.sink import AuditEvent
from medfw.crypto.keys import KeyType
from medfw.crypto.pkcs11 import generate_keypair
from medfw.errors import AuditError
from softhsm import SoftHsm, softhsm_token

pytestmark = pytest.mark.softhsm


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


@pytest.mark.parametrize("kind", [KeyType.ECDSA_P256, KeyType.ED25519])
def test_checkpoint_key_in_a_token(softhsm: SoftHsm, tmp_path: Path, kind: KeyType) -> None:
    uri = softhsm.uri("audit-checkpoint")
    generate_keypair(uri, kind)
    log = tmp_path / "a.db"
    res = init_log(log, checkpoint_key=uri, checkpoint_interval=3)
    assert res.checkpoint_key == uri and not (tmp_path / "a.db.ckey").exists()
    for i in range(4):
        append_session(log, [AuditEvent(type="boot.verify", outcome="success", data={"i": i})])
    with open_log(log) as w:
        cp = w.checkpoint("release")
    assert cp.algorithm == ("ed25519" if kind is KeyType.ED25519 else "ecdsa-p256")
    report = verify_log(log, res.verification_key, checkpoint=cp)
    assert report.ok and report.stored_checkpoints == 2, report
    blob = log.read_bytes()
    assert softhsm.pin.encode() not in blob  # the log stores the URI, never the PIN
    with pytest.raises(AuditError, match="PIN"):
        init_log(tmp_path / "b.db", checkpoint_key=uri + "&pin-value=1234")
    assert not (tmp_path / "b.db").exists()
