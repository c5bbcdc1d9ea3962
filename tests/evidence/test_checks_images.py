"""Image and key evidence against third-party vectors: espsecure's SBv2 images and digests, imgtool's MCUboot
images and KEYHASHes."""

from __future__ import annotations

from pathlib import Path

from medfw.crypto.keys import load_public_key
from medfw.evidence.checks_images import key_digests, verify_images

VECTORS = Path(__file__).parent.parent / "vectors"
ESP = VECTORS / "esp" / "espsecure"
MCU = VECTORS / "mcuboot"


def test_key_digests_match_espsecure_and_imgtool() -> None:
    rsa = ("rsa", load_public_key(ESP / "rsa_secure_boot_signing_key.pem"))
    p256 = ("p256", load_public_key(ESP / "ecdsa256_secure_boot_signing_key_v2.pem"))
    mcu = ("mcu", load_public_key(MCU / "key-ecdsa-p256.pem"))
    out = key_digests([rsa, p256, mcu])
    assert [d["slot"] for d in out] == [0, 1, 2]
    assert out[0]["sbv2_digest"] == (ESP / "rsa_public_key_digest.bin").read_bytes().hex()
    assert out[1]["sbv2_digest"] == (ESP / "ecdsa256_public_key_digest_v2.bin").read_bytes().hex()
    assert out[2]["mcuboot_keyhash"] == (MCU / "key-ecdsa-p256.getpubhash.bin").read_bytes().hex()


def test_espsecure_and_imgtool_images_verify_and_failures_are_results() -> None:
    keys = [
        ("keys/rsa.pem", load_public_key(ESP / "rsa_secure_boot_signing_key.pem")),
        ("keys/mcu.pem", load_public_key(MCU / "key-ecdsa-p256.pem")),
    ]
    images = [
        ("bl.bin", "bootloader", "sbv2", (ESP / "bootloader_signed_v2_rsa.bin").read_bytes()),
        ("mcu.bin", "app", "mcuboot", (MCU / "ecdsa-p256-confirm.bin").read_bytes()),
        ("other.bin", "app", "sbv2", (ESP / "bootloader_signed_v2_ecdsa256.bin").read_bytes()),
        ("p384.bin", "app", "mcuboot", (MCU / "ecdsa-p384.bin").read_bytes()),
    ]
    res = {r["file"]: r for r in verify_images(images, keys)}
    assert res["bl.bin"]["ok"] and res["bl.bin"]["key_slot"] == 0 and res["bl.bin"]["key_file"] == "keys/rsa.pem"
    assert res["mcu.bin"]["ok"] and res["mcu.bin"]["secure_version"] == 0x02000001
    assert res["mcu.bin"]["version"].startswith("2.0.1")
    assert not res["other.bin"]["ok"] and res["other.bin"]["error"]
    assert not res["p384.bin"]["ok"]
    assert {len(r["sha256"]) for r in res.values()} == {64}


def test_revoked_slot_is_not_trusted() -> None:
    keys = [("k", load_public_key(ESP / "rsa_secure_boot_signing_key.pem"))]
    image = [("bl.bin", "bootloader", "sbv2", (ESP / "bootloader_signed_v2_rsa.bin").read_bytes())]
    assert verify_images(image, keys)[0]["ok"]
    (revoked,) = verify_images(image, keys, revoked=[0])
    assert not revoked["ok"] and "revoked" in revoked["error"]
