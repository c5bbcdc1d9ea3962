"""``medfw image info``: real images, signed images, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfw.cli import main

from ._json import result as cli_result

VEC = Path(__file__).resolve().parent.parent / "vectors" / "esp"


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_real_app(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "image", "info", VEC / "images/esp_idf_blink_esp32s2.bin", "--json")
    assert code == 0
    info = cli_result(out)
    assert info["chip"] == "esp32s2" and len(info["segments"]) == 6
    assert info["app_desc"]["project_name"] == "blink" and info["app_desc"]["secure_version"] == 0
    assert info["checksum_valid"] and info["sha256_valid"] and info["signature"] is None
    code, out, _ = run(capsys, "image", "info", VEC / "images/esp_idf_blink_esp32s2.bin")
    assert code == 0 and "blink" in out and "no Secure Boot v2 signature" in out


def test_info_signed_bootloader_lists_key_digests(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "image", "info", VEC / "espsecure/bootloader_multi_signed_v2_rsa.bin", "--json")
    assert code == 0
    sig = cli_result(out)["signature"]
    assert sig["scheme"] == "rsa3072" and sig["offset"] == 32768
    assert [b["index"] for b in sig["blocks"]] == [0, 1, 2]
    assert sig["blocks"][0]["key_digest"] == (VEC / "espsecure/rsa_public_key_digest.bin").read_bytes().hex()
    assert all(b["signature_valid"] and b["image_digest_valid"] for b in sig["blocks"])
    code, out, _ = run(capsys, "image", "info", VEC / "espsecure/bootloader_signed_v2_ecdsa384.bin")
    assert code == 0 and "ecdsa-p384" in out and "(valid)" in out


def test_info_reports_damage_without_failing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray((VEC / "espsecure/bootloader_signed_v2_ecdsa256.bin").read_bytes())
    data[100] ^= 1  # inside segment data: checksum and hash break
    data[32768 + 1196] ^= 1  # block CRC
    (tmp_path / "bad.bin").write_bytes(bytes(data))
    code, out, _ = run(capsys, "image", "info", tmp_path / "bad.bin", "--json")
    assert code == 0
    info = cli_result(out)
    assert info["checksum_valid"] is False and info["sha256_valid"] is False
    assert "CRC" in info["signature"]["error"]


def test_info_not_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00" * 100)
    code, _, err = run(capsys, "image", "info", tmp_path / "x.bin")
    assert code == 2 and "magic" in err and "x.bin" in err and "offset 0" in err
    code, _, err = run(capsys, "image", "info", tmp_path / "missing.bin")
    assert code == 2


def test_info_detects_mcuboot(capsys: pytest.CaptureFixture[str]) -> None:
    mcu = VEC.parent / "mcuboot"
    code, out, _ = run(capsys, "image", "info", mcu / "ecdsa-p256-clear.bin", "--json")
    assert code == 0
    info = cli_result(out)
    assert info["format"] == "mcuboot" and info["version"] == "1.4.0+0" and info["security_counter"] == 3
    assert info["hash"]["ok"] is True and info["encrypted_flag"] is True
    assert info["header"]["flags"] == ["ENCRYPTED_AES128"]
    assert [t["type"] for t in info["tlvs"]] == ["SEC_CNT", "SHA256", "KEYHASH", "ECDSA_SIG", "ENC_EC256"]
    assert info["key_hash"] == (mcu / "key-ecdsa-p256.getpubhash.bin").read_bytes().hex()
    code, out, _ = run(capsys, "image", "info", mcu / "ecdsa-p256-encrypted.bin", "--json")
    assert code == 0 and cli_result(out)["hash"]["ok"] is False
    code, out, _ = run(capsys, "image", "info", mcu / "ed25519-sc7.bin")
    assert code == 0 and "MCUboot image 1.2.3+4" in out and "ED25519" in out


def test_info_names_both_formats_for_unknown_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x3d\x00" * 64)
    code, _, err = run(capsys, "image", "info", tmp_path / "x.bin")
    assert code == 2 and "ESP" in err and "MCUboot" in err
