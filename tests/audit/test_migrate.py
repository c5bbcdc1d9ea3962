"""``medfw audit migrate``: an older log (format 1, HKDF, checkpoint key inside the log) gets its key moved out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from medfw.audit import AuditEvent, init_log, open_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit.keys import KDF_HKDF, load_checkpoint_private_key
from medfw.audit.log import InitResult
from medfw.audit.migrate import migrate_log
from medfw.audit.record import parse_record
from medfw.cli import main
from medfw.errors import AuditError

from .helpers import RawLog, rewrite


def _old_log(tmp_path: Path, n: int = 12) -> tuple[Path, InitResult, bytes]:
    """A log as medfw wrote it before: format 1, HKDF epochs, the checkpoint private key in meta."""
    log = tmp_path / "old.db"
    res = init_log(log, key_out=tmp_path / "old.vkey", kdf=KDF_HKDF, epoch_length=4, checkpoint_interval=5)
    ckey = Path(res.checkpoint_key)
    pem = ckey.read_bytes()
    raw = RawLog(log)
    raw.db.execute("INSERT INTO meta (name, value) VALUES ('checkpoint_private_key', ?)", (pem,))
    raw.db.execute("DELETE FROM meta WHERE name = 'checkpoint_key'")
    raw.close()
    ckey.unlink()
    for i in range(n):
        with open_log(log) as w:
            w.append(AuditEvent(type="config.change", outcome="success", data={"i": i}))
    assert json.loads((tmp_path / "old.vkey").read_text())["version"] == 1
    return log, res, pem


def test_old_log_verifies_warns_and_migrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, res, pem = _old_log(tmp_path)
    before = verify_log(log, res.verification_key)
    assert before.ok and any("migrate" in w for w in before.warnings), before
    assert main(["audit", "migrate", str(log), "--key", str(tmp_path / "old.vkey"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["result"]
    ckey = tmp_path / "old.db.ckey"
    assert out["migrated"] and out["checkpoint_key"] == str(ckey.resolve())
    assert ckey.stat().st_mode & 0o777 == 0o600 and ckey.read_bytes() == pem
    raw = RawLog(log)
    rows = raw.rows()
    meta = dict(raw.db.execute("SELECT name, value FROM meta"))
    raw.close()
    assert "checkpoint_private_key" not in meta
    entry = parse_record(rows[out["entry_seq"]][1])
    assert (entry.type, entry.body["reason"]) == ("audit.migrate", "checkpoint_key_out_of_log")
    assert entry.body["data"]["previously"].startswith("embedded in the log")
    # the key is gone from every file of the log (zeroed, WAL truncated, vacuumed)
    priv = load_checkpoint_private_key(pem)
    der = priv.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for p in tmp_path.glob("old.db*"):
        if p != ckey:
            blob = p.read_bytes()
            assert pem not in blob and der not in blob and b"PRIVATE KEY" not in blob, p
    after = verify_log(log, res.verification_key)  # the old (version 1) key file still pins the same key
    assert after.ok and not any("migrate" in w for w in after.warnings), after
    assert after.stored_checkpoints == before.stored_checkpoints + 1
    with open_log(log) as w:  # writers now sign with the key file
        assert w.checkpoint("release").checkpoint.size == after.entries + 1
    with pytest.raises(AuditError, match="already migrated"):
        migrate_log(log)


def test_entries_altered_before_migration_stay_detected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log, _res, _ = _old_log(tmp_path)
    raw = RawLog(log)
    pos, rec, tag = raw.rows()[3]
    raw.set_row(pos, rewrite(rec, outcome="failure"), tag)
    raw.close()
    # with the verification key, migrate refuses and names the entry
    assert main(["audit", "migrate", str(log), "--key", str(tmp_path / "old.vkey"), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)["result"]
    assert not out["migrated"] and out["verify"]["first_bad_seq"] == 3
    assert not (tmp_path / "old.db.ckey").exists()
    # without it (a device that never holds the key) it migrates, and verification still fails at seq 3
    assert migrate_log(log).migrated
    code = main(["audit", "verify", str(log), "--key", str(tmp_path / "old.vkey"), "--json"])
    report = json.loads(capsys.readouterr().out)["result"]
    assert code == 1
    assert (report["classification"], report["first_bad_seq"]) == (V.EDITED, 3)
