"""``medfw keys export-public|rotate|revoke|approve|check-approvals`` end to end (SoftHSM2 and key files)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, load_public_key, public_key_pem, write_private_key
from medfw.device.device import Device
from medfw.image import sbv2
from medfw.image.esp import build_app_image
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, softhsm_token

from ._json import result as cli_result


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> MemorySink:
    """Capture the events the commands record (the audit log itself is tested by the audit package)."""
    memory = MemorySink()
    monkeypatch.setattr("medfw.cli._keys_common.audit_sink", lambda args: memory)
    return memory


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _key_file(tmp_path: Path, name: str, kt: KeyType = KeyType.ECDSA_P256) -> Path:
    path = tmp_path / f"{name}.pem"
    write_private_key(generate_private_key(kt), path)
    return path


@pytest.mark.softhsm
def test_export_public(softhsm: SoftHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = softhsm.uri("release")
    pub = generate_key(uri, KeyType.ECDSA_P384)
    out = tmp_path / "release.pub.pem"
    code, stdout, _ = run(capsys, "keys", "export-public", uri, "--out", out, "--json")
    assert code == 0
    data = cli_result(stdout)
    assert data["type"] == "ecdsa-p384"
    assert data["key"].startswith(f"pkcs11:token={softhsm.label};object=release")
    assert "module-path" not in data["key"]
    assert load_public_key(out) == pub
    assert out.stat().st_mode & 0o777 == 0o644
    # refuses to overwrite without --force; exit 2 and the file named
    code, _, err = run(capsys, "keys", "export-public", uri, "--out", out)
    assert code == 2
    assert str(out) in err
    code, stdout, _ = run(capsys, "keys", "export-public", uri)
    assert stdout.strip() == public_key_pem(pub).decode().strip()


@pytest.mark.softhsm
def test_hsm_errors_via_cli_never_show_the_pin(
    softhsm: SoftHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = softhsm.uri("k")
    generate_key(uri, KeyType.ECDSA_P256)
    subject = tmp_path / "fw.bin"
    subject.write_bytes(b"fw")
    approval = tmp_path / "a.json"
    wrong = "not-the-pin-98765"
    monkeypatch.setenv("MEDFW_PKCS11_PIN", wrong)
    argv = ["keys", "approve", "--key", uri, "--approver", "alice", "--signing-key", uri]
    code, out, err = run(capsys, *argv, "--subject", subject, "--out", approval)
    assert code == 2
    assert "wrong PIN" in err
    assert f"token '{softhsm.label}'" in err
    assert "object 'k'" in err
    assert wrong not in out + err
    assert softhsm.pin not in out + err
    assert "Traceback" not in err
    assert not approval.exists()  # no partial output
    code, out, err = run(capsys, "keys", "export-public", uri.replace(softhsm.label, "absent-token"))
    assert code == 2
    assert "no such token" in err
    code, out, err = run(capsys, "keys", "export-public", uri + f"&pin-value={softhsm.pin}")
    assert code == 2
    assert "pin-value" in err
    assert softhsm.pin not in out + err


def test_approvals_two_of_three(tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: MemorySink) -> None:
    release = _key_file(tmp_path, "release")
    approvers = {name: _key_file(tmp_path, name, KeyType.ED25519) for name in ("alice", "bob", "carol")}
    pubdir = tmp_path / "pub"
    pubdir.mkdir()
    for name, path in approvers.items():
        (pubdir / f"{name}.pem").write_bytes(public_key_pem(load_public_key(path)))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "format: medfw-approval-policy/1\nthreshold: 2\napprovers:\n"
        + "".join(f"  - name: {n}\n    public_key: pub/{n}.pem\n" for n in approvers)
    )
    subject = tmp_path / "fw.bin"
    subject.write_bytes(b"firmware 2.0")
    records = []
    for name in ("alice", "bob"):
        out = tmp_path / f"{name}.approval.json"
        argv = ["keys", "approve", "--key", approvers[name], "--approver", name, "--signing-key", release]
        code, _, err = run(capsys, *argv, "--subject", subject, "--out", out, "--json")
        assert code == 0, err
        records.append(out)
    check = ["keys", "check-approvals", "--policy", policy, "--signing-key", release, "--subject", subject, "--json"]
    code, stdout, _ = run(capsys, *check, "--approval", records[0])
    assert code == 1
    assert cli_result(stdout)["missing"] == 1
    code, stdout, _ = run(capsys, *check, "--approval", records[0], "--approval", records[1])
    assert code == 0
    assert len(cli_result(stdout)["approved_by"]) == 2
    # a different file is not covered by the approvals
    other = tmp_path / "other.bin"
    other.write_bytes(b"firmware 2.0 with a backdoor")
    check[check.index(subject)] = other
    code, stdout, _ = run(capsys, *check, "--approval", records[0], "--approval", records[1])
    assert code == 1
    assert [e.type for e in sink.events].count("key.approve") == 5  # 2 approvals + 3 checks
    assert [e.outcome for e in sink.of_type("key.approve")][2:] == ["denied", "success", "denied"]


def test_bad_policy_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"format": "medfw-approval-policy/1", "threshold": 3, "approvers": [{"name": "a"}]}')
    release = _key_file(tmp_path, "release")
    subject = tmp_path / "fw.bin"
    subject.write_bytes(b"x")
    argv = ["keys", "check-approvals", "--policy", policy, "--signing-key", release, "--subject", subject]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "approvers[0]" in err
    assert str(policy) in err


def _app(version: str) -> bytes:
    return build_app_image(chip="esp32c6", version=version, secure_version=1, payload=version.encode() * 50)


@pytest.mark.softhsm
def test_rotate_and_revoke_via_cli(
    softhsm: SoftHsm, tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: MemorySink
) -> None:
    old_uri, new_uri = softhsm.uri("boot-old"), softhsm.uri("boot-new")
    old_pub = generate_key(old_uri, KeyType.ECDSA_P256)
    new_pub = generate_key(new_uri, KeyType.ECDSA_P256)
    from medfw.crypto.registry import load_signer

    old_signer, new_signer = load_signer(old_uri), load_signer(new_uri)
    device_dir = tmp_path / "unit"
    device = Device.init(
        device_dir, chip="esp32c6", key_digests=[sbv2.public_key_digest(old_pub), sbv2.public_key_digest(new_pub)]
    )
    device.flash(
        sbv2.sign_image(_app("bootloader"), [old_signer, new_signer]), sbv2.sign_image(_app("1.0"), [old_signer])
    )
    device.boot(confirm=True)

    unsigned = tmp_path / "app-2.0.bin"
    unsigned.write_bytes(_app("2.0"))
    plan, transition = tmp_path / "plan.json", tmp_path / "app-2.0.signed.bin"
    code, stdout, err = run(
        capsys, "keys", "rotate", "--old", old_uri, "--new", new_uri, "--device", device_dir,
        "--plan-out", plan, "--image", unsigned, "--out", transition, "--json",
    )  # fmt: skip
    assert code == 0, err
    result = cli_result(stdout)
    assert result["plan"]["revocations"][0]["efuse_field"] == "SECURE_BOOT_KEY_REVOKE0"
    assert softhsm.pin not in plan.read_text()
    assert len(sbv2.parse_signed_image(transition.read_bytes()).blocks) == 2

    # revoking before the transition image runs confirmed is refused (exit 1), nothing burned
    code, _, err = run(capsys, "keys", "revoke", "--plan", plan, "--device", device_dir)
    assert code == 1
    assert "does not verify without key slot 0" in err
    device = Device.open(device_dir)
    device.boot(confirm=True)
    device.install_update(transition.read_bytes())
    device.boot(confirm=True)
    code, stdout, err = run(capsys, "keys", "revoke", "--plan", plan, "--device", device_dir, "--json")
    assert code == 0, err
    assert cli_result(stdout)["revoked_slots"] == [0]
    device = Device.open(device_dir)
    assert device.efuse.key_slots()[0].revoked
    assert sbv2.verify_image(transition.read_bytes(), trusted_digests=device.efuse.trusted_digests()).key_slot == 0
    types = [(e.type, e.outcome) for e in sink.events]
    assert ("key.rotate", "info") in types  # the plan
    assert ("key.sign", "success") in types  # the new HSM key signed the transition image
    assert ("key.rotate", "success") in types
    assert types[-1] == ("key.rotate", "success")
    assert sink.events[-1].data["revoked_slots"] == [0]
    assert os.environ["MEDFW_PKCS11_PIN"] not in json.dumps([e.data for e in sink.events], default=str)


def test_rotate_needs_the_device_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _key_file(tmp_path, "old"), _key_file(tmp_path, "new")
    code, _, err = run(capsys, "keys", "rotate", "--old", old, "--new", new)
    assert code == 2
    assert "--device" in err
    # the new key is not burned: policy violation, exit 1
    digest = sbv2.public_key_digest(load_public_key(old)).hex()
    code, _, err = run(capsys, "keys", "rotate", "--old", old, "--new", new, "--key-digest", digest)
    assert code == 1
    assert "not burned" in err
    code, _, err = run(capsys, "keys", "rotate", "--old", old, "--new", new, "--key-digest", "zz")
    assert code == 2


def test_rotate_image_signing_needs_approvals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: MemorySink
) -> None:
    old, new = _key_file(tmp_path, "old"), _key_file(tmp_path, "new")
    approver = _key_file(tmp_path, "alice", KeyType.ED25519)
    (tmp_path / "alice.pub.pem").write_bytes(public_key_pem(load_public_key(approver)))
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "format": "medfw-approval-policy/1",
                "threshold": 1,
                "approvers": [{"name": "alice", "public_key": "alice.pub.pem"}],
            }
        )
    )
    digests = [sbv2.public_key_digest(load_public_key(k)).hex() for k in (old, new)]
    image, out = tmp_path / "app.bin", tmp_path / "app.signed.bin"
    image.write_bytes(_app("2.0"))
    argv = ["keys", "rotate", "--old", old, "--new", new, "--key-digest", digests[0], "--key-digest", digests[1]]
    plan = tmp_path / "plan.json"
    argv += ["--image", image, "--out", out, "--policy", policy, "--plan-out", plan]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "approval" in err
    assert not out.exists()
    assert not plan.exists()  # no partial output
    assert [(e.type, e.outcome) for e in sink.events][-1] == ("key.sign", "denied")
    approval = tmp_path / "alice.json"
    code, _, err = run(
        capsys, "keys", "approve", "--key", approver, "--approver", "alice", "--signing-key", new,
        "--subject", image, "--out", approval,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, *argv, "--approval", approval)
    assert code == 0, err
    assert json.loads(plan.read_text())["new_key"]["efuse_slot"] == 1
    blocks = sbv2.parse_signed_image(out.read_bytes()).blocks
    assert [b.key_digest.hex() for b in blocks] == [digests[1], digests[0]]
    signs = [e for e in sink.of_type("key.sign") if e.outcome == "success"]
    assert len(signs) == 2
    assert signs[0].data["approved_by"]  # the new key's signature names its approver


def test_rotate_plan_goes_into_a_real_audit_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medfw.audit import init_log
    from medfw.audit.query import list_entries

    log = tmp_path / "audit.db"
    init_log(log, key_out=tmp_path / "audit-vk.json")
    old, new = _key_file(tmp_path, "old"), _key_file(tmp_path, "new")
    digests = [sbv2.public_key_digest(load_public_key(k)).hex() for k in (old, new)]
    argv = ["keys", "rotate", "--old", old, "--new", new, "--key-digest", digests[0], "--key-digest", digests[1]]
    code, _, err = run(capsys, *argv, "--audit-log", log)
    assert code == 0, err
    [entry] = list_entries(log, type_="key.rotate")
    assert entry.body["objects"]["new_key_digest"] == digests[1]
    assert entry.body["data"]["revoke"] == ["SECURE_BOOT_KEY_REVOKE0"]
