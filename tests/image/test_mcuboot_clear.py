"""imgtool variants verify as imgtool verifies them: ``--clear`` images (ENCRYPTED flag, plaintext payload),
encrypted payloads (refused: the hash is over the plaintext), dependency, boot-record and custom TLVs."""

from __future__ import annotations

from pathlib import Path

import pytest
from imgtool import image as imgtool_image
from imgtool import keys as imgtool_keys

from medfw.crypto.keys import load_private_key
from medfw.errors import VerificationError
from medfw.image.mcuboot import parse_image, verify_image
from medfw.image.mcuboot_format import ENCRYPTED_FLAGS, TLV_TYPES

VEC = Path(__file__).resolve().parents[1] / "vectors" / "mcuboot"


def _imgtool_verify(name: str) -> imgtool_image.VerifyResult:
    key = imgtool_keys.load(str(VEC / "key-ecdsa-p256.pem"))
    result, *_ = imgtool_image.Image.verify(str(VEC / name), key)
    return result  # type: ignore[no-any-return]


def test_clear_image_has_the_encryption_capability() -> None:
    img = parse_image((VEC / "ecdsa-p256-clear.bin").read_bytes())
    assert img.header.flags & ENCRYPTED_FLAGS
    assert TLV_TYPES["ENC_EC256"] in {t.type for t in img.tlvs}


def test_clear_image_verifies_like_imgtool() -> None:
    assert _imgtool_verify("ecdsa-p256-clear.bin") == imgtool_image.VerifyResult.OK
    key = load_private_key(VEC / "key-ecdsa-p256.pem").public_key()
    result = verify_image((VEC / "ecdsa-p256-clear.bin").read_bytes(), [key])
    assert str(result.image.header.version) == "1.4.0+0"
    assert result.image.security_counter == 3


def test_encrypted_payload_fails_like_imgtool() -> None:
    assert _imgtool_verify("ecdsa-p256-encrypted.bin") == imgtool_image.VerifyResult.INVALID_HASH
    key = load_private_key(VEC / "key-ecdsa-p256.pem").public_key()
    with pytest.raises(VerificationError, match="ENCRYPTED flag") as info:
        verify_image((VEC / "ecdsa-p256-encrypted.bin").read_bytes(), [key])
    assert info.value.exit_code == 1


def test_dependency_boot_record_and_custom_tlvs_verify_like_imgtool() -> None:
    key = imgtool_keys.load(str(VEC / "key-ed25519.pem"))
    result, *_ = imgtool_image.Image.verify(str(VEC / "ed25519-protected-tlvs.bin"), key)
    assert result == imgtool_image.VerifyResult.OK
    data = (VEC / "ed25519-protected-tlvs.bin").read_bytes()
    verified = verify_image(data, [load_private_key(VEC / "key-ed25519.pem").public_key()])
    protected = [t.name for t in verified.image.protected_tlvs]
    assert protected == ["BOOT_RECORD", "DEPENDENCY", "0x00a0"]
