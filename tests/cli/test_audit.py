"""``medfw audit …`` end to end: exit codes, --json, errors without tracebacks."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import pytest

from medfw.cli import main

from ._json import result as cli_result


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    path, key = tmp_path / "audit.db", tmp_path / "audit.key"
    code, out, _ = run(capsys, "audit", "init", path, "--key-out", key, "--json", "--epoch-length", "3")
    assert code == 0
    assert cli_result(out)["verification_key"] == str(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for i in range(6):
        code, _, _ = run(
            capsys,
            "audit",
            "append",
            path,
            "--type",
            "ota.install" if i % 2 else "boot.verify",
            "--outcome",
            "success",
            "--data",
            json.dumps({"i": i}),
            "--reason",
            "ok",
            "--actor",
            "agent",
            "--object",
            f"image_sha256={'ab' * 32}",
        )
        assert code == 0
    return path, key


def test_init_default_key_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "audit", "init", tmp_path / "x.db")
    assert code == 0
    assert (tmp_path / "x.db.vkey").exists()
    assert "offline" in err
    code, _, err = run(capsys, "audit", "init", tmp_path / "x.db")
    assert code == 2
    assert "already exists" in err
    assert "Traceback" not in err


def test_verify_ok_and_tampered(log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path, key = log
    cp = tmp_path / "cp.json"
    code, out, _ = run(capsys, "audit", "checkpoint", path, "--out", cp, "--json")
    assert code == 0
    assert cli_result(out)["checkpoint"]["size"] == json.loads(cp.read_text())["checkpoint"]["size"]
    code, out, _ = run(capsys, "audit", "verify", path, "--key", key, "--checkpoint", cp)
    assert code == 0
    assert "OK" in out
    code, out, _ = run(capsys, "audit", "verify", path, "--key", key, "--json", "--workers", "2")
    assert code == 0
    assert cli_result(out)["ok"] is True

    db = sqlite3.connect(path)
    pos, rec = next((p, r) for p, r in db.execute("SELECT pos, record FROM entries") if b'"i":2' in r)
    db.execute("UPDATE entries SET record = ? WHERE pos = ?", (rec.replace(b'"i":2', b'"i":3'), pos))
    db.commit()
    db.close()
    code, out, _ = run(capsys, "audit", "verify", path, "--key", key)
    assert code == 1
    assert f"first bad seq {pos}" in out
    assert "edited" in out
    code, out, _ = run(capsys, "audit", "verify", path, "--key", key, "--json")
    report = cli_result(out)
    assert (code, report["first_bad_seq"], report["classification"]) == (1, pos, "edited")


def test_verify_bad_checkpoint_signature(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, key = log
    cp = tmp_path / "cp.json"
    run(capsys, "audit", "checkpoint", path, "--out", cp)
    doc = json.loads(cp.read_text())
    doc["checkpoint"]["time"] = "2000-01-01T00:00:00.000000Z"
    cp.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "audit", "verify", path, "--key", key, "--checkpoint", cp)
    assert code == 1
    assert "bad checkpoint signature" in out


def test_bad_inputs_exit_2(log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path, key = log
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a log" * 50)
    cases = [
        ("audit", "verify", junk, "--key", key),
        ("audit", "verify", path, "--key", junk),
        ("audit", "verify", path, "--key", key, "--checkpoint", junk),
        ("audit", "append", path, "--type", "nope", "--outcome", "success"),
        ("audit", "append", path, "--type", "boot.verify", "--outcome", "success", "--data", "{"),
        ("audit", "append", path, "--type", "boot.verify", "--outcome", "success", "--data", "[1]"),
        ("audit", "append", path, "--type", "boot.verify", "--outcome", "success", "--object", "noequals"),
        ("audit", "prove", path, "--seq", "999"),
        ("audit", "show", path, "--since", "yesterday"),
        ("audit", "show", path, "--type", "nope"),
        ("audit", "verify", path, "--key", key, "--workers", "0"),
        ("audit", "verify-bundle", junk),
        ("audit", "export", junk, "--out", tmp_path / "b.json"),
    ]
    for argv in cases:
        code, _, err = run(capsys, *argv)
        assert code == 2, (argv, err)
        assert "Traceback" not in err
        assert err.startswith("medfw: error:"), err
    with pytest.raises(SystemExit) as exc:
        run(capsys, "audit", "verify", path)  # --key is required: argparse usage error
    assert exc.value.code == 2
    assert not (tmp_path / "b.json").exists()


def test_key_of_another_log_is_bad_input(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, _ = log
    run(capsys, "audit", "init", tmp_path / "o.db", "--key-out", tmp_path / "o.key")
    code, _, err = run(capsys, "audit", "verify", path, "--key", tmp_path / "o.key")
    assert code == 2
    assert "belongs to log" in err


def test_prove_export_verify_bundle_show(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, key = log
    code, out, _ = run(capsys, "audit", "prove", path, "--seq", "2", "--against", "5", "--from-size", "3", "--json")
    assert code == 0
    proof = cli_result(out)
    assert proof["size"] == 5
    assert proof["consistency_proof"]
    code, out, _ = run(capsys, "audit", "prove", path, "--seq", "2")
    assert code == 0
    assert "inclusion[0]" in out

    bundle = tmp_path / "bundle.json"
    code, out, _ = run(capsys, "audit", "export", path, "--out", bundle, "--seq", "1", "--seq", "4", "--json")
    assert code == 0
    assert cli_result(out)["entries"] == 2
    code, out, err = run(capsys, "audit", "verify-bundle", bundle, "--key", key)
    assert code == 0, err
    assert "OK" in out
    code, out, err = run(capsys, "audit", "verify-bundle", bundle)
    assert code == 0
    assert "not pinned" in err
    doc = json.loads(bundle.read_text())
    doc["entries"][0]["tag"] = "00" * 32
    bundle.write_text(json.dumps(doc))
    code, out, _ = run(capsys, "audit", "verify-bundle", bundle, "--key", key, "--json")
    assert code == 1
    assert cli_result(out)["errors"]

    code, out, _ = run(capsys, "audit", "show", path, "--type", "ota.install", "--json")
    assert code == 0
    rows = cli_result(out)
    assert len(rows) == 3
    assert all(r["type"] == "ota.install" for r in rows)
    code, out, _ = run(capsys, "audit", "show", path, "--since", "2000-01-01")
    assert code == 0
    assert "boot.verify" in out
    code, out, _ = run(capsys, "audit", "show", path, "--since", "2999-01-01", "--json")
    assert cli_result(out) == []


def test_append_json_output(log: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = log
    code, out, _ = run(capsys, "audit", "append", path, "--type", "key.revoke", "--outcome", "success", "--json")
    assert code == 0
    entry = cli_result(out)
    assert entry["seq"] > 6
    assert len(entry["tag"]) == 64


def test_append_events_file_is_one_session(
    log: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, key = log
    events = tmp_path / "ev.jsonl"
    lines = [
        {"type": "release.sign", "outcome": "success", "objects": {"image_sha256": "ab" * 32}},
        {"type": "sbom.generate", "outcome": "info", "data": {"n": 1}},
        {"type": "vuln.scan", "outcome": "failure", "reason": "feed_stale", "actor": "ci"},
    ]
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    code, out, _ = run(capsys, "audit", "append", path, "--events", events, "--json")
    res = cli_result(out)
    assert code == 0 and res["appended"] == 3 and res["seq"] == res["first_seq"] + 2
    rows = sqlite3.connect(path).execute("SELECT record FROM entries ORDER BY pos DESC LIMIT 3").fetchall()
    assert len({json.loads(r)["epoch"] for (r,) in rows}) == 1  # one session, one epoch
    assert run(capsys, "audit", "verify", path, "--key", key)[0] == 0
    for bad, where in [
        ('{"type": "release.sign"}\n', "line 1"),
        ('{"type": "release.sign", "outcome": "success"}\n{"type": "x.y", "outcome": "info"}\n', "line 2"),
        ('{"type": "release.sign", "outcome": "success", "secret": 1}\n', "unknown member"),
        ("not json\n", "line 1"),
        ("\n", "no events"),
    ]:
        events.write_text(bad)
        code, out, _ = run(capsys, "audit", "append", path, "--events", events, "--json")
        assert code == 2 and where in json.loads(out)["error"]["message"], (bad, out)
    code, out, _ = run(capsys, "audit", "append", path, "--events", events, "--type", "boot.verify", "--json")
    assert code == 2
    code, out, _ = run(capsys, "audit", "append", path, "--json")
    assert code == 2 and "--events" in json.loads(out)["error"]["message"]
