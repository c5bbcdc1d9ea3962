"""``medfw sign sbv2`` / ``medfw verify sbv2``: flows, remote signing, audit, exit codes and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from medfw.audit.sink import MemorySink
from medfw.cli import _sbv2, main
from medfw.crypto.keys import private_key_pem, public_key_pem
from medfw.image.esp import build_app_image
from softhsm import SoftHsm, softhsm_token

from ._json import error as cli_error
from ._json import result as cli_result

VEC = Path(__file__).resolve().parent.parent / "vectors" / "esp" / "espsecure"
RSA_KEY = VEC / "rsa_secure_boot_signing_key.pem"
RSA_KEY2 = VEC / "rsa_secure_boot_signing_key2.pem"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "app.bin").write_bytes(build_app_image(version="1.0.0", secure_version=1, payload=b"\x42" * 3000))
    for name, curve in [("p256", ec.SECP256R1()), ("p256b", ec.SECP256R1()), ("p384", ec.SECP384R1())]:
        key = ec.generate_private_key(curve)
        (tmp_path / f"{name}.pem").write_bytes(private_key_pem(key))
        (tmp_path / f"{name}.pub").write_bytes(public_key_pem(key.public_key()))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _sign(
    capsys: pytest.CaptureFixture[str], key: str | Path, image: Path, out: Path, *extra: str | Path
) -> tuple[int, str, str]:
    return run(capsys, "sign", "sbv2", "--key", key, image, "--out", out, *extra)


def _assemble(
    capsys: pytest.CaptureFixture[str], signature: Path, pub_key: Path, image: Path, out: Path
) -> tuple[int, str, str]:
    """Sign ``image`` with an external ``signature`` made by ``pub_key``'s private half."""
    return run(capsys, "sign", "sbv2", "--signature", signature, "--pub-key", pub_key, image, "--out", out)


def test_sign_and_verify(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _sign(capsys, work / "p256.pem", work / "app.bin", work / "s.bin", "--json")
    assert code == 0
    info = cli_result(out)
    assert info["scheme"] == "ecdsa-p256" and len(info["blocks"]) == 1
    code, out, _ = run(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "s.bin", "--json")
    assert code == 0 and cli_result(out)["ok"] is True
    code, out, _ = run(capsys, "verify", "sbv2", "--key", work / "p256.pem", work / "s.bin")
    assert code == 0 and "OK" in out
    digest = info["blocks"][0]["key_digest"]
    code, _, _ = run(capsys, "verify", "sbv2", "--key-digest", digest, work / "s.bin")
    assert code == 0


def test_three_keys_append_and_slots(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s1, s2 = work / "s1.bin", work / "s2.bin"
    assert _sign(capsys, RSA_KEY, work / "app.bin", s1)[0] == 0
    assert run(capsys, "sign", "sbv2", "--append", "--key", RSA_KEY2, s1, "--out", s2)[0] == 0
    code, out, _ = run(
        capsys, "verify", "sbv2", "--key", RSA_KEY, "--pub-key", RSA_KEY2, "--revoked", "0", s2, "--json"
    )
    assert code == 0
    result = cli_result(out)
    assert (result["block"], result["key_slot"]) == (1, 1)
    code, out, err = run(
        capsys, "verify", "sbv2", "--key", RSA_KEY, "--key", RSA_KEY2, "--revoked", "0", "--revoked", "1", s2, "--json"
    )
    assert code == 1
    assert "revoked" in cli_error(out)["message"]
    assert "revoked" in err
    # four blocks do not fit
    s3 = work / "s3.bin"
    assert run(capsys, "sign", "sbv2", "--append", "--key", RSA_KEY, s2, "--out", s3)[0] == 0
    code, _, err = run(capsys, "sign", "sbv2", "--append", "--key", RSA_KEY2, s3, "--out", work / "s4.bin")
    assert code == 2 and "at most 3" in err
    assert not (work / "s4.bin").exists()


def test_remote_signing_flow_ecdsa_raw_and_rsa(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ECDSA P-384 with raw r||s
    code, out, _ = run(
        capsys, "sign", "sbv2", "--digest-only", "--pub-key", work / "p384.pub", work / "app.bin", "--json"
    )
    assert code == 0
    info = cli_result(out)
    assert info["hash"] == "sha384"
    digest = bytes.fromhex(info["digest"])
    key = serialization.load_pem_private_key((work / "p384.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA384()))))
    (work / "sig.raw").write_bytes(r.to_bytes(48, "big") + s.to_bytes(48, "big"))
    code, _, _ = _assemble(capsys, work / "sig.raw", work / "p384.pub", work / "app.bin", work / "r.bin")
    assert code == 0
    assert run(capsys, "verify", "sbv2", "--pub-key", work / "p384.pub", work / "r.bin")[0] == 0
    # RSA: digest written raw to a file, as an HSM/openssl flow would use it
    code, _, _ = run(capsys, "sign", "sbv2", "--digest-only", work / "app.bin", "--out", work / "d.bin")
    assert code == 0
    rsa_key = serialization.load_pem_private_key(RSA_KEY.read_bytes(), password=None)
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    (work / "rsa.sig").write_bytes(rsa_key.sign((work / "d.bin").read_bytes(), pss, utils.Prehashed(hashes.SHA256())))
    code, _, _ = _assemble(capsys, work / "rsa.sig", RSA_KEY, work / "app.bin", work / "rr.bin")
    assert code == 0
    assert run(capsys, "verify", "sbv2", "--key", RSA_KEY, work / "rr.bin")[0] == 0
    # a signature by another key is refused (exit 1) and leaves no output
    code, _, err = _assemble(capsys, work / "rsa.sig", RSA_KEY2, work / "app.bin", work / "x.bin")
    assert code == 1 and "does not verify" in err
    assert not (work / "x.bin").exists()


def test_audit_event_recorded(work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sink = MemorySink()
    monkeypatch.setattr(_sbv2._common, "audit_sink", lambda args: sink)
    code, _, _ = _sign(capsys, work / "p256.pem", work / "app.bin", work / "s.bin", "--audit-log", work / "a.log")
    assert code == 0
    (event,) = sink.of_type("release.sign")
    assert event.outcome == "success" and event.actor == str(work / "p256.pem")
    assert event.data["keys"][0]["key_digest"] and event.objects["image_sha256"]
    assert "PRIVATE" not in json.dumps(dict(event.data)) + json.dumps(dict(event.objects))
    code, _, _ = _sign(capsys, work / "p256.pub", work / "app.bin", work / "t.bin", "--audit-log", work / "a.log")
    assert code == 2
    assert sink.events[-1].outcome == "failure"


def test_verify_failures_exit_1(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = work / "s.bin"
    assert _sign(capsys, work / "p256.pem", work / "app.bin", signed)[0] == 0
    code, _, err = run(capsys, "verify", "sbv2", "--pub-key", work / "p256b.pub", signed)
    assert code == 1 and "not trusted" in err
    data = bytearray(signed.read_bytes())
    data[500] ^= 1
    (work / "t.bin").write_bytes(bytes(data))
    code, _, err = run(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "t.bin")
    assert code == 1 and "image digest" in err and "offset" in err


def _bad(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> str:
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_bad_input_exit_2(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    signed = work / "s.bin"
    assert _sign(capsys, work / "p256.pem", work / "app.bin", signed)[0] == 0
    data = signed.read_bytes()
    # truncated
    (work / "trunc.bin").write_bytes(data[:-100])
    assert "multiple of 4096" in _bad(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "trunc.bin")
    # not an image at all
    (work / "zero.bin").write_bytes(b"\x00" * 8192)
    err = _bad(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "zero.bin")
    assert "not a signed image" in err and "zero.bin" in err
    # a damaged signature block is tampering: exit 1, naming the field and offset
    start = len(data) - 4096
    (work / "magic.bin").write_bytes(data[:start] + b"\x00" + data[start + 1 :])
    code, _, err = run(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "magic.bin")
    assert code == 1 and "magic" in err and f"offset {start}" in err and "magic.bin" in err
    (work / "ver.bin").write_bytes(data[: start + 1] + b"\x05" + data[start + 2 :])
    code, _, err = run(capsys, "verify", "sbv2", "--pub-key", work / "p256.pub", work / "ver.bin")
    assert code == 1 and "version" in err
    # mixed schemes (RSA + ECDSA key in one signing run)
    err = _bad(
        capsys, "sign", "sbv2", "--key", RSA_KEY, "--key", work / "p256.pem", work / "app.bin", "--out", work / "m.bin"
    )
    assert "one scheme" in err
    assert not (work / "m.bin").exists()
    # RSA-2048
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (work / "rsa2048.pem").write_bytes(private_key_pem(small))
    assert "RSA-3072" in _bad(
        capsys, "sign", "sbv2", "--key", work / "rsa2048.pem", work / "app.bin", "--out", work / "o.bin"
    )
    # a PEM that is not a key
    (work / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    assert "cert.pem" in _bad(
        capsys, "sign", "sbv2", "--key", work / "cert.pem", work / "app.bin", "--out", work / "o.bin"
    )
    assert "cert.pem" in _bad(capsys, "verify", "sbv2", "--pub-key", work / "cert.pem", signed)
    # Ed25519 has no Secure Boot v2 scheme
    from cryptography.hazmat.primitives.asymmetric import ed25519

    (work / "ed.pem").write_bytes(private_key_pem(ed25519.Ed25519PrivateKey.generate()))
    assert "Ed25519" in _bad(
        capsys, "sign", "sbv2", "--key", work / "ed.pem", work / "app.bin", "--out", work / "o.bin"
    )
    assert not (work / "o.bin").exists()
    # usage errors
    _bad(capsys, "sign", "sbv2", work / "app.bin", "--out", work / "o.bin")
    _bad(capsys, "sign", "sbv2", "--key", work / "p256.pem", work / "app.bin")
    _bad(capsys, "sign", "sbv2", "--signature", work / "x", work / "app.bin", "--out", work / "o.bin")
    _bad(capsys, "verify", "sbv2", signed)
    _bad(capsys, "verify", "sbv2", "--key-digest", "zz", signed)
    _bad(capsys, "verify", "sbv2", "--key-digest", "00" * 31, signed)
    _bad(capsys, "verify", "sbv2", "--key", work / "p256.pem", "--revoked", "3", signed)
    assert "not found" in _bad(capsys, "verify", "sbv2", "--key", work / "p256.pem", work / "missing.bin")
    # --append on an unsigned image
    _bad(capsys, "sign", "sbv2", "--append", "--key", work / "p256.pem", work / "app.bin", "--out", work / "o.bin")


def test_console_script_help_and_exit_codes(work: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from medfw.cli import run; run()", "sign", "sbv2", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and "--digest-only" in result.stdout


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


@pytest.mark.softhsm
@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ecdsa-p384"])
def test_hsm_key_generate_sign_verify(
    work: Path, capsys: pytest.CaptureFixture[str], softhsm: SoftHsm, key_type: str
) -> None:
    """A key generated in a PKCS#11 token signs through its URI; espsecure verifies the result."""
    uri = softhsm.uri(f"boot-{key_type}")
    code, out, _ = run(
        capsys, "keys", "generate", "--type", key_type, "--hsm", uri, "--out", work / "hsm.pub", "--json"
    )
    assert code == 0
    expected_digest = cli_result(out)["sbv2_digest"]
    code, out, _ = run(capsys, "keys", "digest", uri, "--format", "sbv2")
    assert code == 0 and out.strip() == expected_digest
    code, out, _ = _sign(capsys, uri, work / "app.bin", work / "s.bin", "--json")
    assert code == 0 and cli_result(out)["blocks"][0]["key_digest"] == expected_digest
    assert run(capsys, "verify", "sbv2", "--key", uri, work / "s.bin")[0] == 0
    pub, signed = str(work / "hsm.pub"), str(work / "s.bin")
    result = subprocess.run(
        [sys.executable, "-m", "espsecure", "verify-signature", "--version", "2", "-k", pub, signed],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_audit_log_end_to_end(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With a real audit log, signing appends a release.sign entry that the log's verifier accepts."""
    log = work / "audit.db"
    assert run(capsys, "audit", "init", log)[0] == 0
    code, _, _ = _sign(capsys, work / "p256.pem", work / "app.bin", work / "s.bin", "--audit-log", log)
    assert code == 0
    code, out, _ = run(capsys, "audit", "show", log, "--json")
    assert code == 0
    (entry,) = [e for e in cli_result(out) if e["type"] == "release.sign"]
    assert entry["outcome"] == "success" and entry["data"]["scheme"] == "ecdsa-p256"
    assert entry["objects"]["image_digest"]
    assert run(capsys, "audit", "verify", "--key", f"{log}.vkey", log)[0] == 0


def test_layout_checks_protect_the_sector_position(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = (work / "app.bin").read_bytes()
    # trailing data past the 4 KiB padding would move the sector away from where the bootloader looks
    (work / "long.bin").write_bytes(app + b"\xff" * 8192)
    err = _bad(capsys, "sign", "sbv2", "--key", work / "p256.pem", work / "long.bin", "--out", work / "o.bin")
    assert "trailing" in err and f"offset {len(app)}" in err
    _bad(capsys, "sign", "sbv2", "--digest-only", work / "long.bin")
    # a corrupt ESP image is never signed
    bad = bytearray(app)
    bad[100] ^= 1
    (work / "corrupt.bin").write_bytes(bytes(bad))
    assert "checksum" in _bad(
        capsys, "sign", "sbv2", "--key", work / "p256.pem", work / "corrupt.bin", "--out", work / "o.bin"
    )
    assert not (work / "o.bin").exists()
    # --append needs exactly image + padding + one sector
    assert _sign(capsys, work / "p256.pem", work / "app.bin", work / "s.bin")[0] == 0
    (work / "s_long.bin").write_bytes((work / "s.bin").read_bytes() + b"\xff" * 4096)
    err = _bad(
        capsys, "sign", "sbv2", "--append", "--key", work / "p256b.pem", work / "s_long.bin", "--out", work / "o.bin"
    )
    assert "signature sector must be at" in err
    # data that is not an ESP image is signed as it is, with a warning (as espsecure does)
    (work / "raw.bin").write_bytes(b"\x00" * 5000)
    code, _, err = _sign(capsys, work / "p256.pem", work / "raw.bin", work / "r.bin")
    assert code == 0 and "not an ESP image" in err
    assert run(capsys, "verify", "sbv2", "--key", work / "p256.pem", work / "r.bin")[0] == 0
    (work / "empty.bin").write_bytes(b"")
    assert "empty" in _bad(
        capsys, "sign", "sbv2", "--key", work / "p256.pem", work / "empty.bin", "--out", work / "o.bin"
    )


def test_verify_checks_sector_position_of_esp_images(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from medfw.crypto.registry import load_signer
    from medfw.image import sbv2

    app = (work / "app.bin").read_bytes()
    signer = load_signer(str(work / "p256.pem"))
    (work / "ok.bin").write_bytes(sbv2.sign_image(app, [signer]))
    code, out, _ = run(capsys, "verify", "sbv2", "--key", work / "p256.pem", work / "ok.bin", "--json")
    assert code == 0
    assert cli_result(out)["image"] == {
        "chip": "esp32c3",
        "project_name": "medfw-example",
        "secure_version": 1,
        "version": "1.0.0",
    }
    # the library signs whatever it is given; the verifier knows this one would not boot
    (work / "moved.bin").write_bytes(sbv2.sign_image(app + b"\xff" * 8192, [signer]))
    code, out, err = run(capsys, "verify", "sbv2", "--key", work / "p256.pem", work / "moved.bin", "--json")
    assert code == 1 and "would not boot" in err
    assert cli_error(out)["field"] == "length"
