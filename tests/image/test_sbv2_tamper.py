"""Every single-byte change to a small signed image is rejected (image, padding, blocks, keys, signatures, CRC)."""

from __future__ import annotations

import pytest

from medfw.crypto.signer import FileSigner
from medfw.errors import MedfwError
from medfw.image import sbv2

IMAGE = bytes((i * 37 + 11) & 0xFF for i in range(3000))  # 3000 bytes: 1096 bytes of 0xFF padding follow


def _all_rejected(signed: bytes, offsets: range | list[int], keys: list[sbv2.PublicKey], xor: int) -> list[int]:
    accepted = []
    for off in offsets:
        bad = bytearray(signed)
        bad[off] ^= xor
        try:
            sbv2.verify_image(bytes(bad), public_keys=keys)
        except MedfwError:
            continue
        accepted.append(off)
    return accepted


@pytest.mark.parametrize("xor", [0x01, 0x80, 0xFF])
def test_every_byte_of_p256_image_is_covered(p256_signers: list[FileSigner], xor: int) -> None:
    signed = sbv2.sign_image(IMAGE, p256_signers[:1])
    key = [p256_signers[0].public_key()]
    assert sbv2.verify_image(signed, public_keys=key).block_index == 0
    assert _all_rejected(signed, range(len(signed)), key, xor) == []


def test_every_byte_of_three_block_p384_sector(p384_signers: list[FileSigner]) -> None:
    signed = sbv2.sign_image(IMAGE, p384_signers)
    keys = [s.public_key() for s in p384_signers]
    sector = len(signed) - sbv2.SECTOR_SIZE
    assert _all_rejected(signed, range(sector, len(signed)), keys, 0x01) == []
    # and a systematic sample of the signed region (every 7th byte, padding included)
    assert _all_rejected(signed, range(0, sector, 7), keys, 0x01) == []


def test_rsa_every_block_byte_and_sampled_image(rsa_signers: list[FileSigner]) -> None:
    signed = sbv2.sign_image(IMAGE, rsa_signers[:1])
    key = [rsa_signers[0].public_key()]
    sector = len(signed) - sbv2.SECTOR_SIZE
    assert _all_rejected(signed, range(sector, sector + sbv2.BLOCK_SIZE), key, 0x01) == []
    rest = list(range(sector + sbv2.BLOCK_SIZE, len(signed), 5)) + list(range(0, sector, 11)) + [sector - 1]
    assert _all_rejected(signed, rest, key, 0x01) == []
