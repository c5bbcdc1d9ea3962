"""Provisioning a unit's identity and its own audit log, and the server-side check of trail uploads."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit import AuditEvent, open_log, read_rows
from medfw.audit.keys import EpochKeys, mac_key, seal_tag
from medfw.audit.record import encode_record, entry_hash, parse_record
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import DeviceCA, build_csr, create_ca
from medfw.identity.claims import verify_claims
from medfw.identity.errors import IdentityError, TrailRejectedError
from medfw.identity.trail import TrailHead, TrailUpdate, build_upload, verify_upload
from medfw.identity.unit import (
    AUDIT_LOG,
    DeviceCredentials,
    audit_log_id,
    derive_audit_key,
    load_audit_master,
    provision_identity,
)

MASTER = bytes(range(32))


@pytest.fixture
def ca() -> DeviceCA:
    return create_ca(FileSigner(generate_private_key(KeyType.ECDSA_P256)), organisation="Acme")


def test_provision_writes_key_0600_csr_cert_and_sealed_log(tmp_path: Path, ca: DeviceCA) -> None:
    ident = provision_identity(tmp_path, ca, device_id="u1", model="pump", chip="esp32c6", audit_master=MASTER)
    assert ident.device_id == "u1"
    assert (tmp_path / "identity" / "device.key").stat().st_mode & 0o777 == 0o600
    for name in ("device.csr", "device.crt", "ca.crt"):
        assert (tmp_path / "identity" / name).is_file()
    creds = DeviceCredentials.load(tmp_path)
    token = creds.claims("poll", version="1.0.0")
    assert verify_claims(token, creds.identity.public_key, device_id="u1", kind="poll")["seq"] == 1
    assert verify_claims(creds.claims("poll"), creds.identity.public_key, device_id="u1", kind="poll")["seq"] == 2
    rows = read_rows(tmp_path / AUDIT_LOG)
    keys = EpochKeys(derive_audit_key(MASTER, "u1"), audit_log_id("u1"))
    upd = verify_upload(TrailHead(), *_upload(rows, 0), keys=keys, stored_hash=lambda _s: None)
    assert [e.type for e in upd.entries] == ["audit.init"]
    with pytest.raises(IdentityError):
        provision_identity(tmp_path, ca, device_id="u1", model="pump", chip="esp32c6")


def test_provision_with_csr_of_another_key_writes_nothing(tmp_path: Path, ca: DeviceCA) -> None:
    key = generate_private_key(KeyType.ECDSA_P256)
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "device.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    other = build_csr(generate_private_key(KeyType.ECDSA_P256), device_id="u1", model="pump", chip="esp32c6")
    with pytest.raises(IdentityError) as e:
        provision_identity(
            tmp_path,
            ca,
            device_id="u1",
            model="pump",
            chip="esp32c6",
            audit_master=MASTER,
            csr=other.public_bytes(serialization.Encoding.PEM),
        )
    assert e.value.reason == "csr_key_mismatch"
    assert sorted(p.name for p in (tmp_path / "identity").iterdir()) == ["device.key"]
    assert not (tmp_path / AUDIT_LOG).exists()


def test_audit_master_file_must_be_private_and_long(tmp_path: Path) -> None:
    p = tmp_path / "master"
    p.write_text(os.urandom(32).hex())
    p.chmod(0o644)
    with pytest.raises(IdentityError):
        load_audit_master(p)
    p.chmod(0o600)
    assert len(load_audit_master(p)) == 32
    p.write_bytes(b"short")
    with pytest.raises(IdentityError):
        load_audit_master(p)


# ---- trail uploads -------------------------------------------------------------------------------------------


def _upload(rows: list[tuple[bytes, bytes]], first: int, log_size: int | None = None) -> tuple[Any, dict[str, Any]]:
    return build_upload(rows, first, first + len(rows) if log_size is None else log_size)


class Server:
    """What the fleet server keeps of one unit's trail (in memory)."""

    def __init__(self, device_id: str) -> None:
        self.keys = EpochKeys(derive_audit_key(MASTER, device_id), audit_log_id(device_id))
        self.head = TrailHead()
        self.hashes: dict[int, str] = {}

    def upload(self, rows: list[tuple[bytes, bytes]], first: int, log_size: int | None = None) -> TrailUpdate:
        entries, cp = _upload(rows, first, log_size)
        upd = verify_upload(self.head, entries, cp, keys=self.keys, stored_hash=self.hashes.get)
        for e in upd.entries:
            self.hashes[e.seq] = e.entry_hash
        self.head = upd.head
        return upd


def _unit_log(tmp_path: Path, ca: DeviceCA, events: int) -> Path:
    provision_identity(tmp_path, ca, device_id="u1", model="pump", chip="esp32c6", audit_master=MASTER)
    path = tmp_path / AUDIT_LOG
    for i in range(events):
        with open_log(path) as log:  # a session per boot: epochs advance
            log.record(AuditEvent("boot.verify", "success", "image_valid", "bootloader", {}, {"n": i}))
    return path


def test_batched_resumable_uploads_verify(tmp_path: Path, ca: DeviceCA) -> None:
    path = _unit_log(tmp_path, ca, 6)
    rows = read_rows(path)
    srv = Server("u1")
    assert len(srv.upload(rows[:4], 0, len(rows)).entries) == 4
    upd = srv.upload(rows[2:], 2)  # a resend of 2 entries after a lost answer
    assert upd.duplicates == 2
    assert srv.head.size == len(rows)
    assert srv.upload([], len(rows)).entries == ()


def test_truncated_log_is_detected(tmp_path: Path, ca: DeviceCA) -> None:
    path = _unit_log(tmp_path, ca, 4)
    srv = Server("u1")
    rows = read_rows(path)
    srv.upload(rows, 0)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM entries WHERE pos >= ?", (len(rows) - 3,))
    short = read_rows(path)
    with pytest.raises(TrailRejectedError) as e:
        srv.upload(short[-1:], len(short) - 1, len(short))
    assert e.value.reason == "rewind"


def test_forked_log_is_detected(tmp_path: Path, ca: DeviceCA) -> None:
    path = _unit_log(tmp_path, ca, 3)
    rows = read_rows(path)
    srv = Server("u1")
    srv.upload(rows, 0)
    rec, tag = rows[2]
    body = dict(parse_record(rec).body)
    body["outcome"] = "failure"
    r = parse_record(rec)
    forked = encode_record(body, seq=r.seq, epoch=r.epoch, prev=r.prev)
    with pytest.raises(TrailRejectedError) as e:
        srv.upload([*rows[:2], (forked, tag), *rows[3:]], 0)
    assert e.value.reason == "fork"


def _current_epoch_key(path: Path) -> tuple[int, bytes]:
    with sqlite3.connect(path) as db:
        state = json.loads(db.execute("SELECT value FROM meta WHERE name='state'").fetchone()[0])
    return int(state["epoch"]), bytes.fromhex(state["key"])


def test_resealed_log_is_detected(tmp_path: Path, ca: DeviceCA) -> None:
    """Whoever steals the unit's current epoch key can rewrite entries not yet uploaded, but only with that key."""
    path = _unit_log(tmp_path, ca, 5)
    rows = read_rows(path)
    srv = Server("u1")
    srv.upload(rows[:3], 0, len(rows))
    epoch, key = _current_epoch_key(path)
    mac = mac_key(key, audit_log_id("u1"), epoch)
    resealed = []
    prev = entry_hash(rows[2][0]).hex()
    for rec, _tag in rows[3:]:
        r = parse_record(rec)
        body = dict(r.body)
        body["outcome"] = "failure"
        new = encode_record(body, seq=r.seq, epoch=r.epoch, prev=prev)
        resealed.append((new, seal_tag(mac, entry_hash(new))))
        prev = entry_hash(new).hex()
    assert parse_record(rows[3][0]).epoch < epoch
    with pytest.raises(TrailRejectedError) as e:
        srv.upload(resealed, 3)
    assert e.value.reason == "bad_seal"
    assert srv.head.size == 3  # nothing of the refused batch was kept


def test_gap_chain_and_checkpoint_mismatch(tmp_path: Path, ca: DeviceCA) -> None:
    path = _unit_log(tmp_path, ca, 4)
    rows = read_rows(path)
    srv = Server("u1")
    with pytest.raises(TrailRejectedError) as e:
        srv.upload(rows[2:], 2)
    assert e.value.reason == "gap"
    with pytest.raises(TrailRejectedError) as e:
        srv.upload([rows[0], rows[2]], 0)  # filed as consecutive seqs, but the second does not chain to the first
    assert e.value.reason in {"malformed", "chain_broken"}
    entries, cp = _upload(rows, 0)
    cp["head"] = "00" * 32
    with pytest.raises(TrailRejectedError) as e:
        verify_upload(srv.head, entries, cp, keys=srv.keys, stored_hash=srv.hashes.get)
    assert e.value.reason == "checkpoint_mismatch"
    with pytest.raises(TrailRejectedError) as e:
        verify_upload(srv.head, [{"seq": "x"}], cp, keys=srv.keys, stored_hash=srv.hashes.get)
    assert e.value.reason == "malformed"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.fixed_dictionaries(
            {"seq": st.integers(-2, 5), "record": st.text(max_size=80), "tag": st.text("0123456789abcdef", max_size=66)}
        ),
        max_size=4,
    ),
    st.dictionaries(st.sampled_from(["first", "count", "head", "log_size"]), st.integers(-1, 5) | st.text(max_size=5)),
)
def test_arbitrary_uploads_are_refused_cleanly(entries: list[dict[str, Any]], cp: dict[str, Any]) -> None:
    keys = EpochKeys(derive_audit_key(MASTER, "u1"), audit_log_id("u1"))
    reason = None
    try:
        verify_upload(TrailHead(), entries, cp, keys=keys, stored_hash=lambda _s: None)
    except TrailRejectedError as e:
        reason = e.reason
    assert reason in {None, "malformed", "gap", "fork", "chain_broken", "epoch_rewind", "bad_seal", "rewind",
                      "checkpoint_mismatch"}  # fmt: skip
