"""``medfw sign mcuboot`` / ``medfw verify mcuboot``: exit codes, --json, audit events, no partial output."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from imgtool.main import imgtool

from medfw.audit.sink import MemorySink
from medfw.cli import main
from medfw.crypto.keys import load_private_key, public_key_pem
from medfw.image.mcuboot import key_hash

from ._json import envelope
from ._json import result as cli_result

KEY_TYPES = ["rsa-3072", "ecdsa-p256", "ecdsa-p384", "ed25519"]


@pytest.fixture
def keys(vectors: Path, tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for kt in KEY_TYPES:
        dst = tmp_path / f"{kt}.pem"
        shutil.copy(vectors / "mcuboot" / f"key-{kt}.pem", dst)
        out[kt] = dst
        pub = tmp_path / f"{kt}.pub.pem"
        pub.write_bytes(public_key_pem(load_private_key(dst).public_key()))
        out[f"{kt}.pub"] = pub
    return out


@pytest.fixture
def app(vectors: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "app.bin"
    shutil.copy(vectors / "mcuboot" / "app.bin", dst)
    return dst


@pytest.fixture
def sink(monkeypatch: pytest.MonkeyPatch) -> MemorySink:
    memory = MemorySink()
    monkeypatch.setattr("medfw.cli._mcuboot.audit_sink", lambda args: memory)
    return memory


def _sign(key: Path, app: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "sign",
            "mcuboot",
            "--key",
            str(key),
            "--version",
            "1.2.3+4",
            "--header-size",
            "0x200",
            "--pad-header",
            *extra,
            str(app),
            str(out),
        ]
    )


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_sign_then_verify_and_imgtool_agrees(
    kt: str, keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "signed.bin"
    args = ["--security-counter", "auto", "--slot-size", "0x4000", "--confirm", "--align", "4"]
    assert _sign(keys[kt], app, out, *args, "--json") == 0
    signed = cli_result(capsys.readouterr().out)
    assert signed["version"] == "1.2.3+4"
    assert signed["security_counter"] == 0x01020003
    assert signed["trailer"]["confirmed"] is True
    assert signed["size"] == 0x4000
    assert out.stat().st_size == 0x4000

    assert main(["verify", "mcuboot", "--key", str(keys[f"{kt}.pub"]), str(out), "--json"]) == 0
    verified = cli_result(capsys.readouterr().out)
    assert verified["ok"] is True
    assert verified["hash"]["digest"] == signed["hash"]["digest"]
    assert verified["key"]["type"] == kt.replace("rsa-", "rsa")

    result = CliRunner().invoke(imgtool, ["verify", "-k", str(keys[kt]), str(out)])
    assert result.exit_code == 0, result.output


def test_human_output(keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ed25519"], app, out, "--security-counter", "5") == 0
    text = capsys.readouterr().out
    assert "1.2.3+4" in text
    assert "security counter: 5" in text
    assert main(["verify", "mcuboot", "--key", str(keys["ed25519"]), str(out)]) == 0
    assert "OK:" in capsys.readouterr().out


def test_file_uri_and_private_key_for_verify(keys: dict[str, Path], app: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ecdsa-p256"], app, out) == 0
    assert main(["verify", "mcuboot", "--key", f"file:{keys['ecdsa-p256']}", str(out)]) == 0
    assert (
        main(["verify", "mcuboot", "--key", str(keys["rsa-3072.pub"]), "--key", str(keys["ecdsa-p256"]), str(out)]) == 0
    )


def test_verify_tampered_exits_1(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ecdsa-p384"], app, out) == 0
    data = bytearray(out.read_bytes())
    data[0x300] ^= 0x04
    out.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["verify", "mcuboot", "--key", str(keys["ecdsa-p384.pub"]), str(out), "--json"]) == 1
    captured = capsys.readouterr()
    doc = envelope(captured.out)
    assert doc["exit_code"] == 1
    assert doc["error"]["field"] == "SHA384"
    assert doc["error"]["path"] == str(out)
    assert "does not match" in captured.err
    assert str(out) in captured.err


def test_verify_wrong_key_exits_1(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ecdsa-p256"], app, out) == 0
    assert main(["verify", "mcuboot", "--key", str(keys["rsa-3072.pub"]), str(out)]) == 1
    assert "no trusted key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d[:20], "truncated"),
        (lambda d: b"\x00\x00\x00\x00" + d[4:], "bad image magic"),
    ],
    ids=["truncated", "wrong-magic"],
)
def test_verify_bad_input_exits_2(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, needle: str
) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ed25519"], app, out) == 0
    out.write_bytes(mutate(out.read_bytes()))  # type: ignore[operator]
    capsys.readouterr()
    assert main(["verify", "mcuboot", "--key", str(keys["ed25519"]), str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "offset" in err
    assert "Traceback" not in err


def test_verify_missing_file_and_bad_key(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "mcuboot", "--key", str(keys["ed25519"]), str(tmp_path / "nope.bin")]) == 2
    assert main(["verify", "mcuboot", "--key", str(app), str(app)]) == 2
    err = capsys.readouterr().err
    assert "not found" in err
    assert "Traceback" not in err


def test_image_larger_than_slot_exits_2_without_output(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], sink: MemorySink
) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["rsa-3072"], app, out, "--slot-size", "0x800", "--pad") == 2
    err = capsys.readouterr().err
    assert "exceeds the slot size (2048 bytes" in err
    assert not out.exists()
    assert list(tmp_path.glob(".s.bin.*")) == []
    [event] = sink.of_type("release.sign")
    assert event.outcome == "failure"


@pytest.mark.parametrize(
    "extra",
    [
        ["--version", "1.2.x"],
        ["--slot-size", "zero"],
        ["--pad"],
        ["--security-counter", "sometimes"],
        ["--align", "3"],
        ["--erased-val", "7"],
        ["--header-size", "8"],
    ],
)
def test_sign_bad_options_exit_2(
    keys: dict[str, Path], app: Path, tmp_path: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.bin"
    argv = [
        "sign",
        "mcuboot",
        "--key",
        str(keys["ed25519"]),
        "--version",
        "1.0.0",
        "--header-size",
        "0x200",
        "--pad-header",
    ]
    argv += extra
    try:
        code = main([*argv, str(app), str(out)])
    except SystemExit as e:  # argparse usage errors
        code = int(e.code or 0)
    assert code == 2
    assert not out.exists()
    assert "Traceback" not in capsys.readouterr().err


def test_sign_with_public_key_exits_2(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sign(keys["ed25519.pub"], app, tmp_path / "s.bin") == 2
    assert "public key" in capsys.readouterr().err


def test_sign_unpadded_header_exits_2(
    keys: dict[str, Path], app: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sign", "mcuboot", "--key", str(keys["ed25519"]), "--version", "1.0.0", "--header-size", "0x200"]
    assert main([*argv, str(app), str(tmp_path / "s.bin")]) == 2
    err = capsys.readouterr().err
    assert str(app) in err
    assert "--pad-header" in err


def test_audit_event_has_key_hash_not_key(keys: dict[str, Path], app: Path, tmp_path: Path, sink: MemorySink) -> None:
    out = tmp_path / "s.bin"
    assert _sign(keys["ecdsa-p256"], app, out, "--security-counter", "9") == 0
    [event] = sink.of_type("release.sign")
    assert event.outcome == "success"
    pub = load_private_key(keys["ecdsa-p256"]).public_key()
    assert event.objects["key_hash_sha256"] == key_hash(pub).hex()
    assert event.data["security_counter"] == 9
    assert event.data["version"] == "1.2.3+4"
    import hashlib

    assert event.objects["image_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    text = repr(event)
    key_text = keys["ecdsa-p256"].read_text()
    body = "".join(key_text.splitlines()[1:-1])
    assert body[:40] not in text
    assert "PRIVATE" not in text


def test_output_is_overwritten_atomically(keys: dict[str, Path], app: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.bin"
    out.write_bytes(b"old")
    assert _sign(keys["ed25519"], app, out) == 0
    assert out.read_bytes() != b"old"
    assert main(["verify", "mcuboot", "--key", str(keys["ed25519"]), str(out)]) == 0


def test_group_help_lists_mcuboot(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sign", "mcuboot", "--help"])
    assert info.value.code == 0
    assert "--security-counter" in capsys.readouterr().out


def test_wrong_key_type_exits_2(
    app: Path, tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from medfw.crypto.keys import private_key_pem

    rsa2048 = tmp_path / "rsa2048.pem"
    rsa2048.write_bytes(private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    p521 = tmp_path / "p521.pem"
    p521.write_bytes(private_key_pem(ec.generate_private_key(ec.SECP521R1())))
    out = tmp_path / "s.bin"
    assert _sign(rsa2048, app, out) == 2
    assert "RSA-3072 is required" in capsys.readouterr().err
    assert _sign(p521, app, out) == 2
    assert "P-256 or P-384" in capsys.readouterr().err
    assert not out.exists()
    assert _sign(keys["ed25519"], app, out) == 0
    assert main(["verify", "mcuboot", "--key", str(rsa2048), str(out)]) == 2
    assert "RSA-3072 is required" in capsys.readouterr().err


def test_real_audit_log_records_the_signing(keys: dict[str, Path], app: Path, tmp_path: Path) -> None:
    from medfw.audit import init_log
    from medfw.audit.store import open_store

    log = tmp_path / "audit.db"
    init_log(log, key_out=tmp_path / "audit-verify.key")
    out = tmp_path / "s.bin"
    assert _sign(keys["ed25519"], app, out, "--audit-log", str(log)) == 0
    assert _sign(keys["ed25519"], app, tmp_path / "big.bin", "--slot-size", "0x400", "--audit-log", str(log)) == 2
    store = open_store(log)
    try:
        records = [record for record, _tag in store.iter_entries()]
    finally:
        store.close()
    signs = [r for r in records if b"release.sign" in r]
    assert len(signs) == 2
    assert b"success" in signs[0]
    assert b"failure" in signs[1]
    pub_hash = key_hash(load_private_key(keys["ed25519"]).public_key()).hex().encode()
    assert pub_hash in signs[0]
    key_body = "".join(keys["ed25519"].read_text().splitlines()[1:-1]).encode()
    assert all(key_body not in r for r in records)
