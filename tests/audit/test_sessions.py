"""Writer sessions as logs are really written: many short sessions, each with its own epoch, no signature unless
asked; the checkpoint key kept out of the log; a log written by 1,000 separate processes."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from medfw.audit import AuditEvent, init_log, open_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit.keys import EpochKeys, VerificationKey, load_checkpoint_private_key
from medfw.audit.log import append_session
from medfw.audit.record import parse_record
from medfw.errors import AuditError

from .helpers import RawLog


def _ev(i: int = 0) -> AuditEvent:
    return AuditEvent(type="boot.verify", outcome="success", actor="bootloader", data={"i": i})


def test_each_session_gets_its_own_epoch_and_no_signature(tmp_path: Path) -> None:
    log = tmp_path / "a.db"
    res = init_log(log, checkpoint_interval=1000)
    for i in range(5):
        s = append_session(log, [_ev(i), _ev(i)])
        assert s.checkpoint is None
        assert [e.epoch for e in s.entries] == [i + 1, i + 1]
    raw = RawLog(log)
    assert len(raw.rows()) == 11  # audit.init + 2 per session: no close entry, no checkpoint
    assert raw.db.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0
    st = raw.state()
    assert (st["epoch"], st["used"], st["boot_n"]) == (6, 0, 5)  # the last session's key is already erased
    assert [parse_record(r).body["boot_n"] for _, r, _ in raw.rows()[1:]] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    raw.close()
    assert verify_log(log, res.verification_key).ok


def test_checkpoints_only_when_due_or_asked(tmp_path: Path) -> None:
    log = tmp_path / "a.db"
    res = init_log(log, checkpoint_interval=4)
    cps = [append_session(log, [_ev(i)]).checkpoint for i in range(7)]
    assert [c is not None for c in cps] == [False, False, True, False, False, False, True]
    asked = append_session(log, [_ev()], checkpoint_reason="release")
    assert asked.checkpoint is not None and asked.checkpoint.checkpoint.reason == "release"
    with open_log(log, checkpoint_on_close=True) as w:
        w.append(_ev())
    with open_log(log) as w:
        assert w.latest_checkpoint() is not None
        assert w.latest_checkpoint().checkpoint.reason == "close"  # type: ignore[union-attr]
    report = verify_log(log, res.verification_key)
    assert report.ok and report.stored_checkpoints == 4, report


def test_interval_checkpoint_deferred_while_the_key_is_away(tmp_path: Path) -> None:
    log = tmp_path / "a.db"
    res = init_log(log, checkpoint_interval=2)
    ckey = Path(res.checkpoint_key)
    shutil.move(ckey, tmp_path / "elsewhere")
    s = append_session(log, [_ev(), _ev()])
    assert s.checkpoint is None and s.deferred_checkpoint is not None
    with pytest.raises(AuditError, match="unavailable"):
        append_session(log, [_ev()], checkpoint_reason="release")  # asked for: fails, and appends nothing
    shutil.move(tmp_path / "elsewhere", ckey)
    assert append_session(log, [_ev()]).checkpoint is not None
    assert verify_log(log, res.verification_key).ok


def test_checkpoint_key_is_a_separate_0600_file_or_refused(tmp_path: Path) -> None:
    log = tmp_path / "a.db"
    res = init_log(log)
    ckey = Path(res.checkpoint_key)
    assert ckey == (tmp_path / "a.db.ckey").resolve()
    assert ckey.stat().st_mode & 0o777 == 0o600
    raw = RawLog(log)
    meta = dict(raw.db.execute("SELECT name, value FROM meta"))
    raw.close()
    assert "checkpoint_private_key" not in meta
    assert bytes(meta["checkpoint_key"]).decode() == str(ckey)
    ckey.chmod(0o644)
    with pytest.raises(AuditError, match="readable by others"), open_log(log) as w:
        w.checkpoint()
    ckey.chmod(0o600)
    # an existing key given at init is used, not copied
    other = init_log(tmp_path / "b.db", checkpoint_key=str(ckey), key_out=tmp_path / "b.vkey")
    assert other.checkpoint_key_id == res.checkpoint_key_id
    assert not (tmp_path / "b.db.ckey").exists()


def _sensitive(res_key: VerificationKey, ckey: Path, log_id: str, epochs: int) -> list[bytes]:
    priv = load_checkpoint_private_key(ckey.read_bytes())
    der = priv.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = priv.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    keys = EpochKeys(res_key.initial_key, log_id, res_key.kdf)
    old = [keys.key(e) for e in range(epochs)]
    return [b"PRIVATE KEY", der, raw, *old, *(k.hex().encode() for k in old)]


def test_no_private_key_material_outside_the_key_files(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    log = d / "device.db"
    res = init_log(log, key_out=d / "device.vkey", epoch_length=3, checkpoint_interval=5)
    for i in range(12):
        append_session(log, [_ev(i)])
    with open_log(log) as w:
        w.checkpoint("release")
    current = RawLog(log).state()["epoch"]
    needles = _sensitive(res.verification_key, Path(res.checkpoint_key), res.log_id, current)
    key_files = {d / "device.vkey", Path(res.checkpoint_key)}
    others = [p for p in d.rglob("*") if p.is_file() and p not in key_files]
    assert others and all(p.name.startswith("device.db") for p in others)
    for p in others:
        blob = p.read_bytes()
        for n in needles:
            assert n not in blob, (p.name, n[:12])


def _one_process(path: str) -> int:
    """What a short-lived writer process does (the library entry point ``medfw audit append`` calls)."""
    s = append_session(path, [AuditEvent(type="boot.verify", outcome="success", data={"pid": os.getpid()})])
    return s.entries[0].seq


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory when there is one (/dev/shm): 1,000 sessions are 2,000 fsyncs, which measure the disk,
    not the log; the processes and the library path are the same either way."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="medfw-audit-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_log_written_by_1000_separate_processes(fast_dir: Path) -> None:
    """1,000 writer processes (forked, four at a time, one session each, each its own process and connection)."""
    log = fast_dir / "fleet.db"
    res = init_log(log, checkpoint_interval=256)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4, maxtasksperchild=1) as pool:
        seqs = pool.map(_one_process, [str(log)] * 1000, chunksize=1)
    assert sorted(seqs) == list(range(1, 1001)) or len(set(seqs)) == 1000
    raw = RawLog(log)
    rows = [parse_record(r) for _, r, _ in raw.rows()]
    raw.close()
    events = [r for r in rows if r.type == "boot.verify"]
    assert len(events) == 1000
    assert len({r.body["data"]["pid"] for r in events}) == 1000  # 1,000 distinct processes
    assert len({r.epoch for r in events}) == 1000  # one epoch (one erased key) per process
    report = verify_log(log, res.verification_key)
    assert report.ok, report
    assert report.stored_checkpoints == 3  # every 256 entries, not one per session
    par = verify_log(log, res.verification_key, workers=2)
    assert par == report


def test_real_cli_processes_append(tmp_path: Path) -> None:
    log = tmp_path / "ci.db"
    res = init_log(log)
    cmd = [sys.executable, "-m", "medfw", "audit", "append", str(log), "--type", "release.sign", "--outcome"]
    procs = [subprocess.Popen([*cmd, "success"], stdout=subprocess.DEVNULL) for _ in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    report = verify_log(log, res.verification_key)
    assert report.ok and report.entries == 9, report


def test_resigned_checkpoint_with_an_unpinned_key_is_named(tmp_path: Path) -> None:
    """Whoever can rewrite the log cannot re-sign its checkpoints: the verifier pins the key."""
    from medfw.audit.checkpoint import SignedCheckpoint, sign_checkpoint
    from medfw.audit.keys import generate_checkpoint_key, public_pem

    log = tmp_path / "a.db"
    res = init_log(log, checkpoint_interval=3)
    for i in range(8):
        append_session(log, [_ev(i)])
    raw = RawLog(log)
    ids = [i for (i,) in raw.db.execute("SELECT id FROM checkpoints ORDER BY id")]
    assert len(ids) >= 2
    doc = bytes(raw.db.execute("SELECT document FROM checkpoints WHERE id = ?", (ids[1],)).fetchone()[0])
    mallory = generate_checkpoint_key()
    forged = sign_checkpoint(SignedCheckpoint.from_bytes(doc).checkpoint, mallory)
    raw.db.execute("UPDATE checkpoints SET document = ? WHERE id = ?", (forged.to_bytes(), ids[1]))
    raw.db.execute(
        "UPDATE meta SET value = ? WHERE name = 'checkpoint_public_key'", (public_pem(mallory.public_key()),)
    )
    raw.close()
    report = verify_log(log, res.verification_key)
    assert not report.ok
    assert report.classification == V.BAD_CHECKPOINT_SIGNATURE
    assert report.bad_checkpoint == forged.checkpoint.size
    assert "#2" in report.message
    # trusting the log's own (replaced) public key would have accepted it: that is why the key is pinned
    assert verify_log(log, res.verification_key.initial_key).ok


def test_a_cli_command_with_audit_log_ends_its_session(tmp_path: Path) -> None:
    """``--audit-log`` sinks are closed when the command's process exits: the key that sealed its events is gone."""
    log = tmp_path / "cli.db"
    init_log(log)
    code = (
        "import argparse, sys; from medfw.cli._common import audit_sink; from medfw.audit import AuditEvent; "
        "audit_sink(argparse.Namespace(audit_log=sys.argv[1])).record(AuditEvent(type='release.sign', outcome='success'))"
    )
    subprocess.run([sys.executable, "-c", code, str(log)], check=True, timeout=120)
    st = RawLog(log).state()
    assert (st["next_seq"], st["used"], st["epoch"]) == (2, 0, 2)  # sealed in epoch 1, whose key is erased
