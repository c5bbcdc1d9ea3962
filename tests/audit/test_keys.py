"""Epoch key ratchet, verification key files and checkpoint signatures."""

from __future__ import annotations

import json

import pytest

from medfw.audit.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from medfw.audit.keys import (
    KDF_RATCHET,
    EpochKeys,
    VerificationKey,
    generate_checkpoint_key,
    mac_key,
    next_epoch_key,
    public_pem,
)
from medfw.errors import AuditError, SignatureError


def test_ratchet_is_deterministic_and_bound_to_log_and_epoch() -> None:
    k0 = bytes(range(32))
    k1 = next_epoch_key(k0, "log", 0)
    assert k1 == next_epoch_key(k0, "log", 0)
    assert k1 != next_epoch_key(k0, "other", 0)
    assert k1 != next_epoch_key(k0, "log", 1)
    assert mac_key(k1, "log", 1) != k1
    keys = EpochKeys(k0, "log")
    assert keys.mac(1) == mac_key(k1, "log", 1)
    assert keys.mac(3) == mac_key(next_epoch_key(next_epoch_key(k1, "log", 1), "log", 2), "log", 3)
    with pytest.raises(AuditError):
        EpochKeys(b"short", "log")
    with pytest.raises(ValueError, match="no epoch -1"):
        keys.mac(-1)


def _vk() -> VerificationKey:
    return VerificationKey("log-1", bytes(32), public_pem(generate_checkpoint_key().public_key()))


def test_key_file_roundtrip_and_rejections() -> None:
    vk = _vk()
    assert VerificationKey.from_bytes(vk.to_bytes()) == vk
    v2 = VerificationKey("log-2", bytes(32), vk.checkpoint_public_key_pem, kdf=KDF_RATCHET)
    assert json.loads(v2.to_bytes())["version"] == 2
    assert VerificationKey.from_bytes(v2.to_bytes()) == v2
    doc = json.loads(vk.to_bytes())
    for change, field in [
        ({"format": "x"}, "format"),
        ({"version": 3}, "version"),
        ({"version": 2}, "kdf"),
        ({"version": 2, "kdf": "md5-chain"}, "kdf"),
        ({"log_id": ""}, "log_id"),
        ({"epoch_key": "!!"}, "epoch_key"),
        ({"epoch_key": "AAAA"}, "epoch_key"),
        ({"checkpoint_public_key": "nope"}, "checkpoint_public_key"),
    ]:
        with pytest.raises(AuditError) as e:
            VerificationKey.from_bytes(json.dumps({**doc, **change}).encode(), path="k.json")
        assert e.value.field == field
        assert e.value.path == "k.json"
    with pytest.raises(AuditError, match="not JSON"):
        VerificationKey.from_bytes(b"\x00garbage")


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_checkpoint_sign_verify_tamper(kind: str) -> None:
    key = generate_checkpoint_key(kind)
    cp = Checkpoint("log", 3, b"\x01" * 32, 2, 1, "boot", "2026-01-01T00:00:00.000000Z", "request")
    signed = sign_checkpoint(cp, key)
    signed.verify(key.public_key())
    again = SignedCheckpoint.from_bytes(signed.to_bytes())
    again.verify(key.public_key())
    forged = signed._replace(checkpoint=cp._replace(size=4, last_seq=3))
    with pytest.raises(SignatureError):
        forged.verify(key.public_key())
    with pytest.raises(SignatureError, match="another key"):
        signed.verify(generate_checkpoint_key(kind).public_key())


def test_checkpoint_document_rejections() -> None:
    key = generate_checkpoint_key()
    signed = sign_checkpoint(Checkpoint("log", 1, b"\x02" * 32, 0, 0, "b", "t", "r"), key)
    doc = signed.to_dict()
    with pytest.raises(AuditError, match="not JSON"):
        SignedCheckpoint.from_bytes(b"{")
    bad_body = json.loads(json.dumps(doc))
    bad_body["checkpoint"]["last_seq"] = 5
    with pytest.raises(AuditError, match="inconsistent"):
        SignedCheckpoint.from_dict(bad_body)
    bad_root = json.loads(json.dumps(doc))
    bad_root["checkpoint"]["root"] = "zz"
    with pytest.raises(AuditError):
        SignedCheckpoint.from_dict(bad_root)
    no_sig = {k: v for k, v in doc.items() if k != "signature"}
    with pytest.raises(AuditError, match="signature"):
        SignedCheckpoint.from_dict(no_sig)
    with pytest.raises(AuditError, match="not a medfw audit checkpoint"):
        SignedCheckpoint.from_dict({"checkpoint": {"format": "other"}})


def test_key_id_of_an_ed25519_key_is_the_one_fingerprint() -> None:
    """The checkpoint key id computed from the raw Ed25519 key (no serialization code) is medfw's one fingerprint,
    and an Ed25519 public key loads from its PEM without the PEM loader to the same key."""
    from medfw.audit.ckeys import generate_checkpoint_key, key_id, load_checkpoint_public_key, public_pem
    from medfw.crypto.keys import public_key_fingerprint

    for kind in ("ed25519", "ecdsa-p256", "ed25519"):
        pub = generate_checkpoint_key(kind).public_key()
        assert key_id(pub) == public_key_fingerprint(pub)
        loaded = load_checkpoint_public_key(public_pem(pub))
        assert type(loaded) is type(pub)
        assert key_id(loaded) == key_id(pub)


def test_a_sealing_key_of_another_length_is_refused_not_padded() -> None:
    """The ratchet input is packed with a fixed 32-byte key field, which would pad a shorter key silently."""
    from medfw.audit.keys import EpochKeys, mac_key, next_epoch_key

    keys = EpochKeys(bytes(32), "L")
    for bad in (bytes(31), bytes(33)):
        with pytest.raises(AuditError, match="32 bytes"):
            keys.walk(0, bad, 5)
        with pytest.raises(AuditError, match="32 bytes"):
            keys.walk_keys(0, bad, 5)
        with pytest.raises(AuditError, match="32 bytes"):
            keys.mac_of(3, bad)
        with pytest.raises(AuditError, match="32 bytes"):
            next_epoch_key(bad, "L", 0)
        with pytest.raises(AuditError, match="32 bytes"):
            mac_key(bad, "L", 0)
