"""``medfw device``: the command-line flow over a device directory, exit codes, JSON output and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, public_key_pem
from medfw.crypto.signer import FileSigner
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image

from ._json import result as cli_result

CHIP = "esp32c6"  # verifies ECDSA P-256 Secure Boot v2 signatures (ESP32-C3 verifies RSA-3072 only)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    key = generate_private_key(KeyType.ECDSA_P256)
    stranger = generate_private_key(KeyType.ECDSA_P256)
    signer = FileSigner(key)
    (tmp_path / "digest.txt").write_text(public_key_digest(key.public_key()).hex())
    (tmp_path / "key.pub").write_bytes(public_key_pem(key.public_key()))
    bl = build_app_image(chip=CHIP, version="bootloader", secure_version=0, project_name="bootloader")
    (tmp_path / "bl.bin").write_bytes(sign_image(bl, [signer]))
    for name, version, sv, who in [("a1", "1.0.0", 1, signer), ("a2", "2.0.0", 2, signer), ("a0", "0.5", 0, signer)]:
        (tmp_path / f"{name}.bin").write_bytes(
            sign_image(build_app_image(chip=CHIP, version=version, secure_version=sv), [who])
        )
    evil = build_app_image(chip=CHIP, version="6.6.6", secure_version=9)
    (tmp_path / "evil.bin").write_bytes(sign_image(evil, [FileSigner(stranger)]))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, dict[str, object]]:
    code, out, err = run(capsys, *argv, "--json")
    assert "Traceback" not in err
    return code, cli_result(out)


def test_full_flow(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    code, data = run_json(
        capsys, "device", "init", dev, "--key-digest", (work / "digest.txt").read_text(), "--chip", CHIP
    )
    assert code == 0 and data["efuse"]["secure_boot_enabled"] is True  # type: ignore[index]
    assert run(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "a1.bin")[0] == 0
    code, data = run_json(capsys, "device", "boot", dev)
    assert code == 0 and (data["slot"], data["version"], data["secure_version"], data["reason"]) == (
        0,
        "1.0.0",
        1,
        "initial_otadata",
    )
    code, data = run_json(capsys, "device", "update", dev, work / "a2.bin", "--power-cut-after", "1", "--torn")
    assert code == 0 and data["interrupted"] is True and data["sector_writes"] == 1
    code, data = run_json(capsys, "device", "boot", dev)
    assert data["slot"] == 0
    code, data = run_json(capsys, "device", "update", dev, work / "a2.bin")
    assert code == 0 and data["activated"] is True and data["slot"] == 1
    code, data = run_json(capsys, "device", "boot", dev, "--app-fails")
    assert (data["slot"], data["state"], data["app_failed"]) == (1, "PENDING_VERIFY", True)
    code, data = run_json(capsys, "device", "boot", dev)
    assert (data["slot"], data["reason"]) == (0, "rollback")
    run(capsys, "device", "update", dev, work / "a2.bin")
    run(capsys, "device", "boot", dev)
    code, data = run_json(capsys, "device", "confirm", dev)
    assert code == 0 and data["counter"] == 2
    code, out, _ = run(capsys, "device", "status", dev)
    assert code == 0 and "ota_1: version 2.0.0" in out
    code, data = run_json(capsys, "device", "status", dev)
    assert data["running_slot"] == 1 and data["efuse"]["secure_version_counter"] == 2  # type: ignore[index]


def test_refusals_exit_1_with_reason(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    run(capsys, "device", "init", dev, "--key", work / "key.pub", "--chip", CHIP)
    run(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "a1.bin")
    run(capsys, "device", "boot", dev)
    code, data = run_json(capsys, "device", "update", dev, work / "evil.bin")
    assert code == 1 and data["accepted"] is False and data["reason"] == "untrusted_key"
    code, data = run_json(capsys, "device", "update", dev, work / "a0.bin")
    assert code == 1 and data["reason"] == "rollback"
    code, out, _ = run(capsys, "device", "update", dev, work / "evil.bin")
    assert code == 1 and "untrusted_key" in out and "evil.bin" in out
    code, _, err = run(capsys, "device", "revoke-key", dev, "--slot", "0")
    assert code == 1 and "does not verify without key slot 0" in err


def test_boot_refused_exit_1(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    run(capsys, "device", "init", dev, "--key-digest", (work / "digest.txt").read_text(), "--chip", CHIP)
    run(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "evil.bin")
    code, data = run_json(capsys, "device", "boot", dev)
    assert code == 1 and data["booted"] is False and data["reason"] == "no_bootable_image"
    assert {"type": "boot.refused", "outcome": "denied", "reason": "untrusted_key"} in data["events"]  # type: ignore[operator]


def test_bad_input_exit_2(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    assert run(capsys, "device", "init", dev, "--chip", CHIP)[0] == 2  # no key
    code, _, err = run(capsys, "device", "init", dev, "--key-digest", "abcd", "--chip", CHIP)
    assert code == 2 and "32 bytes" in err
    code, _, err = run(capsys, "device", "status", work / "missing")
    assert code == 2 and "device.json" in err and "Traceback" not in err
    run(capsys, "device", "init", dev, "--key-digest", (work / "digest.txt").read_text(), "--chip", CHIP)
    code, _, err = run(capsys, "device", "confirm", dev)
    assert code == 2 and "boot it first" in err
    code, _, err = run(capsys, "device", "update", dev, work / "a1.bin", "--torn")
    assert code == 2 and "--power-cut-after" in err
    code, _, err = run(capsys, "device", "update", dev, work / "nope.bin")
    assert code == 2 and "nope.bin" in err
    assert run(capsys, "device", "init", dev, "--key-digest", (work / "digest.txt").read_text(), "--chip", CHIP)[0] == 2


def test_efuse_summary_export_and_check(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    digest = (work / "digest.txt").read_text()
    run(capsys, "device", "init", dev, "--key-digest", digest, "--flash-encryption", "--chip", CHIP)
    run(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "a1.bin")
    run(capsys, "device", "boot", dev)
    out = work / "summary.json"
    code, data = run_json(capsys, "device", "efuse-summary", dev, "--out", out)
    assert code == 0 and data["chip"] == CHIP
    summary = json.loads(out.read_text())
    assert summary["BLOCK_KEY0"]["raw_value"] == "0x" + digest
    code, data = run_json(capsys, "efuse", "check", out, "--chip", CHIP)
    assert code == 0 and data["ok"] is True


def test_events_reach_the_audit_log(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = work / "audit.db"
    assert run(capsys, "audit", "init", log)[0] == 0
    dev = work / "unit"
    digest = (work / "digest.txt").read_text()
    run(capsys, "device", "init", dev, "--key-digest", digest, "--audit-log", log, "--chip", CHIP)
    run(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "a1.bin", "--audit-log", log)
    run(capsys, "device", "boot", dev, "--audit-log", log)
    assert run(capsys, "device", "update", dev, work / "evil.bin", "--audit-log", log)[0] == 1
    code, out, _ = run(capsys, "audit", "show", log, "--json")
    assert code == 0
    text = json.dumps(cli_result(out))
    for needle in ("efuse.burn", "boot.verify", "boot.select", "security.svn.increment", "ota.install.rejected"):
        assert needle in text
    assert run(capsys, "audit", "verify", log, "--key", str(log) + ".vkey")[0] == 0


def test_init_refuses_a_key_the_chip_cannot_verify(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "device", "init", work / "c3", "--key", work / "key.pub", "--chip", "esp32c3")
    assert code == 2 and "ecdsa-p256" in err and "esp32c3" in err and "rsa3072 only" in err
    assert not (work / "c3" / "device.json").exists()
    assert run(capsys, "device", "init", work / "c6", "--key", work / "key.pub", "--chip", "esp32c6")[0] == 0


def test_revert_and_revoke_key_results(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev = work / "unit"
    spare = generate_private_key(KeyType.ECDSA_P256).public_key()
    digests = [(work / "digest.txt").read_text(), public_key_digest(spare).hex()]
    argv = ["device", "init", dev, "--chip", CHIP, *(x for d in digests for x in ("--key-digest", d))]
    assert run_json(capsys, *argv)[0] == 0
    code, data = run_json(capsys, "device", "flash", dev, "--bootloader", work / "bl.bin", "--app", work / "a1.bin")
    assert code == 0
    run(capsys, "device", "boot", dev)
    run(capsys, "device", "update", dev, work / "a2.bin")
    run(capsys, "device", "boot", dev)  # 2.0.0 on its trial boot
    code, data = run_json(capsys, "device", "revert", dev)
    assert code == 0 and data["slot"] == 0 and data["version"] == "1.0.0"
    # slot 1 holds a key nothing is signed with: revoking it leaves the unit bootable
    code, data = run_json(capsys, "device", "revoke-key", dev, "--slot", "1")
    assert code == 0 and data["revoked"] == 1
