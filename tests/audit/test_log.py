"""The log writer: init, open, append, batches, epochs, checkpoints, key erasure."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, AuditSink, MemorySink, init_log, open_log, verify_log
from medfw.audit.keys import VerificationKey, next_epoch_key
from medfw.audit.log import checkpoint
from medfw.audit.record import parse_record
from medfw.errors import AuditError, InputError

from .helpers import RawLog


def _ev(t: str = "boot.verify", **kw: object) -> AuditEvent:
    return AuditEvent(type=t, outcome="success", **kw)  # type: ignore[arg-type]


def test_init_writes_key_0600_and_first_entry(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db", key_out=tmp_path / "a.key", log_id="dev-42")
    assert stat.S_IMODE(os.stat(tmp_path / "a.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "a.db").st_mode) == 0o600
    vk = VerificationKey.from_bytes((tmp_path / "a.key").read_bytes())
    assert vk == res.verification_key
    assert vk.log_id == "dev-42"
    rows = RawLog(tmp_path / "a.db").rows()
    assert len(rows) == 1
    first = parse_record(rows[0][1])
    assert (first.seq, first.epoch, first.type) == (0, 0, "audit.init")
    assert verify_log(tmp_path / "a.db", vk).ok


def test_init_refuses_existing_log_and_key(tmp_path: Path) -> None:
    init_log(tmp_path / "a.db", key_out=tmp_path / "a.key")
    with pytest.raises(AuditError, match="already exists"):
        init_log(tmp_path / "a.db")
    with pytest.raises(InputError, match="exists"):
        init_log(tmp_path / "b.db", key_out=tmp_path / "a.key")
    assert not (tmp_path / "b.db").exists()


def test_initial_and_old_epoch_keys_never_stored(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db", epoch_length=3)
    with open_log(tmp_path / "a.db") as log:
        for _ in range(20):
            log.append(_ev())
    keys = [res.verification_key.initial_key]
    for e in range(12):
        keys.append(next_epoch_key(keys[-1], res.log_id, e))
    st = RawLog(tmp_path / "a.db").state()
    current = st["epoch"]
    blobs = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("a.db"))
    for e, k in enumerate(keys[:current]):
        assert k not in blobs, e
        assert k.hex().encode() not in blobs, e
    assert keys[current].hex() == st["key"]


def test_epochs_advance_every_n_entries_at_boot_and_checkpoint(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db", epoch_length=4, checkpoint_interval=1000)
    with open_log(tmp_path / "a.db") as log:
        entries = [log.append(_ev()) for _ in range(9)]
    assert [e.epoch for e in entries] == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    with open_log(tmp_path / "a.db") as log:  # new session: closing the last one erased the key of epoch 3
        e = log.append(_ev())
        assert e.epoch == 4
        log.checkpoint("pre-update")
        assert log.append(_ev()).epoch == 5
    with open_log(tmp_path / "a.db"), open_log(tmp_path / "a.db"):
        pass  # opening without appending does not skip epochs
    with open_log(tmp_path / "a.db") as log:
        assert log.append(_ev()).epoch == 6
    report = verify_log(tmp_path / "a.db", res.verification_key)
    assert report.ok, report


def test_record_is_an_audit_sink_and_batch_is_atomic(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db")
    log = open_log(tmp_path / "a.db")
    assert isinstance(log, AuditSink)
    log.record(_ev("release.sign", objects={"image_sha256": "ab" * 32}))

    def aborted_batch() -> None:
        with log.batch():
            log.append(_ev())
            log.append(_ev())
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        aborted_batch()
    with log.batch():
        for _ in range(5):
            log.append(_ev())
    log.close()
    log.close()
    rows = RawLog(tmp_path / "a.db").rows()
    types = [parse_record(r).type for _, r, _ in rows]
    # a session costs what it must: no checkpoint at close unless asked (checkpoint_on_close=True)
    assert types == ["audit.init", "release.sign", *["boot.verify"] * 5]
    assert verify_log(tmp_path / "a.db", res.verification_key).ok
    with pytest.raises(AuditError, match="closed"):
        log.append(_ev())


def test_rejects_unknown_vocabulary_and_bad_data(tmp_path: Path) -> None:
    init_log(tmp_path / "a.db")
    with open_log(tmp_path / "a.db") as log:
        with pytest.raises(AuditError, match="unknown audit event type"):
            log.append(_ev("boot.hacked"))
        with pytest.raises(AuditError, match="outcome"):
            log.append(AuditEvent(type="boot.verify", outcome="maybe"))
        with pytest.raises(AuditError, match="canonicalised"):
            log.append(_ev(data={"big": 2**60}))
        with pytest.raises(AuditError, match="objects"):
            log.append(_ev(objects={"x": 1}))
        with pytest.raises(AuditError, match="canonicalised"):
            log.append(_ev(data={"blob": b"\x00"}))
    assert RawLog(tmp_path / "a.db").state()["next_seq"] == 1


def test_fields_recorded(tmp_path: Path) -> None:
    t0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    init_log(tmp_path / "a.db", host_id="pump-7")
    with open_log(tmp_path / "a.db", boot_id="b-1", clock=lambda: t0) as log:
        e = log.append(
            AuditEvent(type="ota.install", outcome="failure", reason="bad_signature", actor="agent", data={"v": 1})
        )
    r = parse_record(e.record)
    b = r.body
    assert b["ts"] == "2026-01-02T03:04:05.678901Z"
    assert (b["boot_id"], b["host"], b["reason"], b["actor"], b["v"]) == ("b-1", "pump-7", "bad_signature", "agent", 1)
    assert int(b["mono_ns"]) > 0
    assert b["boot_n"] == 1
    assert r.prev != "0" * 64


def test_non_utc_clock_rejected(tmp_path: Path) -> None:
    init_log(tmp_path / "a.db")
    tz = datetime.now(UTC).astimezone().tzinfo
    cet = datetime(2026, 1, 1, tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    with open_log(tmp_path / "a.db", clock=lambda: cet) as log, pytest.raises(AuditError, match="UTC"):
        log.append(_ev())
    offset = datetime(2026, 1, 1, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    with open_log(tmp_path / "a.db", clock=lambda: offset) as log, pytest.raises(AuditError, match="UTC"):
        log.append(_ev())


def test_interval_checkpoints_and_module_checkpoint(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db", checkpoint_interval=10)
    with open_log(tmp_path / "a.db") as log:
        for _ in range(25):
            log.append(_ev())
        latest = log.latest_checkpoint()
        assert latest is not None
        assert latest.checkpoint.reason == "interval"
    cp = checkpoint(tmp_path / "a.db", reason="pre-update", out=tmp_path / "cp.json")
    assert json.loads((tmp_path / "cp.json").read_text())["checkpoint"]["reason"] == "pre-update"
    cp.verify(res.verification_key.public_key())
    report = verify_log(tmp_path / "a.db", res.verification_key, checkpoint=cp)
    assert report.ok
    assert report.stored_checkpoints == 3  # two interval checkpoints (the session closed without one) + pre-update


def test_two_writers_interleave_safely(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db")
    a = open_log(tmp_path / "a.db")
    b = open_log(tmp_path / "a.db")
    for i in range(10):
        (a if i % 2 else b).append(_ev())
    a.close()
    b.close()
    assert verify_log(tmp_path / "a.db", res.verification_key).ok


def test_ecdsa_checkpoint_key(tmp_path: Path) -> None:
    res = init_log(tmp_path / "a.db", checkpoint_key_type="ecdsa-p256")
    with open_log(tmp_path / "a.db") as log:
        cp = log.checkpoint()
    assert cp.algorithm == "ecdsa-p256"
    assert verify_log(tmp_path / "a.db", res.verification_key, checkpoint=cp).ok
    with pytest.raises(AuditError, match="unknown checkpoint key type"):
        init_log(tmp_path / "b.db", checkpoint_key_type="rsa")


def test_open_missing_or_foreign(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="not found"):
        open_log(tmp_path / "nope.db")
    import sqlite3

    db = sqlite3.connect(tmp_path / "other.db")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(AuditError, match="not a medfw audit log"):
        open_log(tmp_path / "other.db")


def test_memory_sink_unchanged() -> None:
    sink = MemorySink()
    sink.record(_ev())
    assert sink.of_type("boot.verify")
