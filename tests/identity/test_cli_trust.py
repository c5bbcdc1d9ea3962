"""The device-trust commands end to end: device CA, unit identity, busy/approve, enrollment, windows, unit audit
trail, key-rotation campaign — through ``medfw …`` against a real TLS fleet server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.device import Device

from .trusted import TrustedFleet, trusted_fleet


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    doc = json.loads(out) if out.strip().startswith(("{", "[")) else out
    if isinstance(doc, dict) and "exit_code" in doc:  # the --json envelope
        assert doc["exit_code"] == code
        doc = doc["result"] if doc["ok"] else doc["error"]
    return code, doc


def test_ca_init_and_provision_identity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca_key = tmp_path / "ca.pem"
    write_private_key(generate_private_key(KeyType.ECDSA_P256), ca_key)
    master = tmp_path / "audit-master"
    code, out = _run(
        capsys,
        "device", "ca-init", "--key", str(ca_key), "--out", str(tmp_path / "ca.crt"), "--org", "Acme Medical",
        "--audit-master-out", str(master), "--json",
    )  # fmt: skip
    assert code == 0, out
    assert master.stat().st_mode & 0o777 == 0o600
    unit = tmp_path / "unit"
    argv = ["device", "provision-identity", str(unit), "--ca", str(tmp_path / "ca.crt"), "--ca-key", str(ca_key)]
    code, out = _run(capsys, *argv, "--id", "pump-1", "--model", "pump", "--chip", "esp32c6", "--audit-master",
                     str(master), "--json")  # fmt: skip
    assert code == 0, out
    assert out["device_id"] == "pump-1" and out["audit_log"] is True
    assert (unit / "identity" / "device.key").stat().st_mode & 0o777 == 0o600
    code, _out = _run(capsys, *argv, "--id", "pump-1", "--model", "pump", "--chip", "esp32c6", "--json")
    assert code == 2  # already provisioned: refused, nothing overwritten
    # a CSR whose key is not the unit's key
    other = tmp_path / "other"
    (other / "identity").mkdir(parents=True)
    write_private_key(generate_private_key(KeyType.ECDSA_P256), other / "identity" / "device.key")
    from medfw.identity.ca import build_csr

    csr = build_csr(generate_private_key(KeyType.ECDSA_P256), device_id="pump-2", model="pump", chip="esp32c6")
    (tmp_path / "x.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    argv2 = ["device", "provision-identity", str(other), "--ca", str(tmp_path / "ca.crt"), "--ca-key", str(ca_key)]
    log = tmp_path / "audit.db"
    assert main(["audit", "init", str(log), "--key-out", str(tmp_path / "audit.key")]) == 0
    capsys.readouterr()
    code, _out = _run(capsys, *argv2, "--id", "pump-2", "--model", "pump", "--chip", "esp32c6",
                      "--csr", str(tmp_path / "x.csr"), "--audit-log", str(log))  # fmt: skip
    assert code == 2
    assert not (other / "identity" / "device.crt").exists()
    from medfw.audit.query import list_entries

    denied = [r for r in list_entries(log, type_="device.register") if r.body["outcome"] == "denied"]
    assert denied and denied[0].body["reason"] == "csr_key_mismatch"


def test_busy_and_approve_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "unit"
    Device.init(d, chip="esp32c6", key_digests=[b"\x01" * 32])
    code, out = _run(capsys, "device", "busy", str(d), "on", "--json")
    assert (code, out) == (0, {"busy": True})
    code, out = _run(capsys, "device", "approve", str(d), "pump/pump-2.0.0.bin", "--json")
    assert code == 0 and out["approved"] == ["pump/pump-2.0.0.bin"]
    assert Device.open(d).clinical.busy


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from .test_fleet_campaign import POLICY

    with trusted_fleet(tmp_path, approval_policy=POLICY) as f:
        monkeypatch.setenv("SSL_CERT_FILE", str(f.tls.ca))
        monkeypatch.setenv("MEDFW_OTA_SERVER", f.url)
        monkeypatch.setenv("MEDFW_OTA_TOKEN", f.admin.headers["Authorization"].split(" ", 1)[1])
        yield f


def test_operator_commands(fleet: TrustedFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serials = tmp_path / "serials.csv"
    serials.write_text("# serial,model\npump-0001,pump\npump-0002,pump\n")
    code, out = _run(capsys, "ota", "enroll", "preauthorize", str(serials), "--json")
    assert (code, out) == (0, {"added": 2})
    unit = fleet.unit("pump-0001", preauthorize=False)
    assert unit.cycle() == "idle"
    held = fleet.unit("pump-0077", preauthorize=False)
    assert held.cycle() == "unreachable"  # 403: held
    code, out = _run(capsys, "ota", "enroll", "list", "--state", "held", "--json")
    assert [r["device"] for r in out] == ["pump-0077"]
    code, out = _run(capsys, "ota", "enroll", "approve", "pump-0077", "--json")
    assert out["state"] == "approved"
    stranger = fleet.unit("pump-0666", preauthorize=False)
    assert stranger.cycle() == "unreachable"  # held too
    code, out = _run(capsys, "ota", "enroll", "reject", "pump-0666", "--json")
    assert code == 0 and out["state"] == "rejected"
    code, out = _run(capsys, "ota", "window", "set", "default", "--tz", "UTC", "--days", "mon,tue", "--start", "01:00",
                     "--end", "01:00", "--json")  # fmt: skip
    assert code == 2  # never opens
    code, out = _run(capsys, "ota", "window", "set", "default", "--tz", "UTC", "--days", "mon,sun", "--start", "22:00",
                     "--end", "04:00", "--json")  # fmt: skip
    assert code == 0 and out["days"] == ["mon", "sun"]
    code, out = _run(capsys, "ota", "window", "list", "--json")
    assert out[0]["group"] == "default"
    code, _ = _run(capsys, "ota", "window", "clear", "default", "--json")
    assert code == 0
    code, out = _run(capsys, "ota", "device", "audit", "pump-0001", "--verify", "--json")
    assert code == 0
    assert out["verification"]["ok"] and out["size"] > 0
    assert {"audit.init", "boot.verify"} <= {e["type"] for e in out["entries"]}
    code, out = _run(capsys, "ota", "device", "revoke-cert", "pump-0077", "--json")
    assert code == 0 and len(out["revoked"]) == 1


def test_keys_rotation_start_with_approvals(
    fleet: TrustedFleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .test_fleet_campaign import APPROVERS

    unit = fleet.unit("pump-0001", keep_unused_slots=True)
    assert unit.cycle() == "idle"
    target = fleet.publish("2.0.0", 2, signers=[fleet.old_key, fleet.new_key])
    image = fleet.repo.target_file(target)
    new_pub = tmp_path / "new.pub.pem"
    new_pub.write_bytes(
        fleet.new_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    records = []
    for name, signer in zip(["alice", "bob"], APPROVERS[:2], strict=True):
        key = tmp_path / f"{name}.pem"
        key.write_bytes(signer._key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))  # fmt: skip
        key.chmod(0o600)
        rec = tmp_path / f"{name}.approval.json"
        code, out = _run(capsys, "keys", "approve", "--key", str(key), "--approver", name, "--signing-key", str(new_pub),
                         "--subject", str(image), "--purpose", "key-rotation", "--out", str(rec), "--json")  # fmt: skip
        assert code == 0, out
        records += ["--approval", str(rec)]
    argv = ["keys", "rotation", "start", "--old-slot", "0", "--new-key", str(new_pub), "--release", target]
    code, out = _run(capsys, *argv, *records[:2], "--json")
    assert code == 1  # one approval of the two required
    code, out = _run(capsys, *argv, *records, "--phases", "100%", "--json")
    assert code == 0, out
    campaign = str(out["id"])
    code, paused = _run(capsys, "keys", "rotation", "pause", campaign, "--json")
    assert code == 0 and paused["state"] == "paused"
    code, resumed = _run(capsys, "keys", "rotation", "resume", campaign, "--json")
    assert code == 0 and resumed["state"] == "running"
    for _ in range(3):
        unit.cycle()
    code, out = _run(capsys, "keys", "rotation", "status", str(out["id"]), "--json")
    assert code == 0
    assert [u["state"] for u in out["units"]] == ["rotated"]
