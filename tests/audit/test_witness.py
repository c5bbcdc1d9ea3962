"""Witnessed checkpoints held in a file: truncation and forks below them are detected and named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, init_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit.checkpoint import SignedCheckpoint, sign_checkpoint
from medfw.audit.keys import VerificationKey, generate_checkpoint_key
from medfw.audit.log import append_session, checkpoint
from medfw.audit.witness import check_extension, consistency_proof_for, witness_url
from medfw.cli import main
from medfw.errors import SignatureError, UsageError, VerificationError


def _ev(tag: str, i: int) -> AuditEvent:
    return AuditEvent(type="ota.install", outcome="success", actor=tag, data={"i": i})


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main([str(a) for a in argv])
    doc = json.loads(capsys.readouterr().out)
    return code, doc.get("result") or doc.get("error")


@pytest.fixture
def logs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A log of 11 entries and a snapshot of it at 6 entries (what a rollback restores)."""
    log, vkey = tmp_path / "dev.db", tmp_path / "dev.vkey"
    init_log(log, key_out=vkey, checkpoint_interval=1000)
    for i in range(5):
        append_session(log, [_ev("a", i)])
    snap = tmp_path / "snapshot.db"
    shutil.copyfile(log, snap)
    for i in range(5, 10):
        append_session(log, [_ev("a", i)])
    return log, vkey, snap


def test_export_then_truncation_below_the_witness(logs: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    log, vkey, snap = logs
    wit = tmp_path / "witness.json"
    code, out = _run(capsys, "audit", "checkpoint", log, "--export", wit, "--reason", "release", "--json")
    assert code == 0 and out["exported"] == str(wit) and out["checkpoint"]["size"] == 12
    assert _run(capsys, "audit", "verify", log, "--key", vkey, "--witness", wit, "--json")[0] == 0
    # the attacker rolls the log back to an earlier copy: it is a valid log on its own...
    shutil.copyfile(snap, log)
    assert _run(capsys, "audit", "verify", log, "--key", vkey, "--json")[0] == 0
    # ...but the witness holds a longer tree
    code, out = _run(capsys, "audit", "verify", log, "--key", vkey, "--witness", wit, "--json")
    assert code == 1
    assert (out["classification"], out["first_bad_seq"], out["bad_checkpoint"]) == (V.TRUNCATED, 6, 12)


def test_fork_against_a_witness(logs: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Two histories grown from the same state to the same size: the witness names the fork."""
    log, vkey, snap = logs
    other = tmp_path / "other.db"
    shutil.copyfile(snap, other)
    for i in range(5, 10):
        append_session(other, [_ev("b", i)])
    wit = tmp_path / "witness.json"
    assert _run(capsys, "audit", "checkpoint", log, "--export", wit, "--json")[0] == 0
    assert _run(capsys, "audit", "checkpoint", other, "--out", tmp_path / "o.json", "--json")[0] == 0
    a = SignedCheckpoint.from_bytes(wit.read_bytes()).checkpoint
    b = SignedCheckpoint.from_bytes((tmp_path / "o.json").read_bytes()).checkpoint
    assert a.size == b.size and a.root != b.root  # the same size, different roots
    assert _run(capsys, "audit", "verify", other, "--key", vkey, "--json")[0] == 0  # valid on its own
    code, out = _run(capsys, "audit", "verify", other, "--key", vkey, "--witness", wit, "--json")
    assert code == 1
    assert (out["classification"], out["first_bad_seq"], out["bad_checkpoint"]) == (V.FORKED, a.size - 1, a.size)
    assert "held checkpoint of size 12" in out["message"]


def test_witness_signed_by_another_key_is_refused(logs: tuple[Path, Path, Path], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    log, vkey, _ = logs
    assert verify_log(log, VerificationKey.from_bytes(vkey.read_bytes())).ok
    wit = tmp_path / "witness.json"
    assert _run(capsys, "audit", "checkpoint", log, "--export", wit, "--json")[0] == 0
    forged = sign_checkpoint(SignedCheckpoint.from_bytes(wit.read_bytes()).checkpoint, generate_checkpoint_key())
    wit.write_bytes(forged.to_bytes())
    code, out = _run(capsys, "audit", "verify", log, "--key", vkey, "--witness", wit, "--json")
    assert code == 1 and out["classification"] == V.BAD_CHECKPOINT_SIGNATURE and out["bad_checkpoint"] == 12


def test_check_extension_rules(logs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """The witness's rule: pinned key, no rollback, no fork, a consistency proof for growth."""
    log, vkey, _ = logs

    pinned = VerificationKey.from_bytes(vkey.read_bytes()).public_key()
    small = checkpoint(log)
    append_session(log, [_ev("a", 99)])
    big = checkpoint(log)
    proof = consistency_proof_for(log, small.checkpoint.size, big.checkpoint.size)
    check_extension(None, small, [], pinned)
    check_extension(small, big, proof, pinned)
    check_extension(big, big, [], pinned)  # the same checkpoint again is fine
    with pytest.raises(VerificationError, match="older"):
        check_extension(big, small, [], pinned)
    with pytest.raises(VerificationError):
        check_extension(small, big, proof[:-1] or [b"\x00" * 32], pinned)
    with pytest.raises(SignatureError):
        check_extension(small, big, proof, generate_checkpoint_key().public_key())
    with pytest.raises(UsageError):
        witness_url("ftp://x", "log")
    assert witness_url("http://h:1/", "a b") == "http://h:1/api/v1/audit/witness/a%20b"
