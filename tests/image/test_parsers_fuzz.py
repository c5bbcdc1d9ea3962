"""hypothesis fuzzing of every image parser: arbitrary bytes raise only medfw's own errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.crypto.signer import FileSigner
from medfw.errors import MedfwError
from medfw.image import sbv2
from medfw.image.esp import AppDesc, BootloaderDesc, EspImage, build_app_image

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

GOOD = build_app_image(version="1.0", secure_version=1, payload=b"\x11" * 200)


def _only_medfw_errors(fn: object, *args: object, **kwargs: object) -> None:
    with contextlib.suppress(MedfwError):
        fn(*args, **kwargs)  # type: ignore[operator]


@FUZZ
@given(st.binary(max_size=2048))
def test_esp_image_random_bytes(data: bytes) -> None:
    _only_medfw_errors(EspImage.from_bytes, data)
    _only_medfw_errors(EspImage.from_bytes, data, strict=False)


@FUZZ
@given(st.binary(max_size=600))
def test_esp_image_random_bytes_with_valid_header_start(data: bytes) -> None:
    _only_medfw_errors(EspImage.from_bytes, GOOD[:24] + data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_esp_image_mutations(changes: list[tuple[int, int]]) -> None:
    bad = bytearray(GOOD)
    for off, value in changes:
        bad[off] = value
    _only_medfw_errors(EspImage.from_bytes, bytes(bad))
    _only_medfw_errors(EspImage.from_bytes, bytes(bad), strict=False)


@FUZZ
@given(st.binary(min_size=256, max_size=256))
def test_app_desc_random(data: bytes) -> None:
    _only_medfw_errors(AppDesc.from_bytes, b"\x32\x54\xcd\xab" + data[4:])
    _only_medfw_errors(AppDesc.from_bytes, data)
    _only_medfw_errors(BootloaderDesc.from_bytes, b"\x50" + data[1:])
    _only_medfw_errors(BootloaderDesc.from_bytes, data[: data[0] % 100])


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([0x02, 0x03]), st.integers(0, 3))
def test_signature_sector_random(raw: bytes, version: int, sha_or_curve: int) -> None:
    data = raw + b"\xff" * (4096 - len(raw))
    _only_medfw_errors(sbv2.parse_signature_sector, raw)
    _only_medfw_errors(sbv2.parse_signature_sector, data)
    forced = bytearray(data)
    forced[0], forced[1], forced[2], forced[3] = 0xE7, version, sha_or_curve % 2, 0
    _only_medfw_errors(sbv2.parse_signature_sector, bytes(forced))


@FUZZ
@given(st.binary(max_size=9000))
def test_verify_random(data: bytes) -> None:
    _only_medfw_errors(sbv2.verify_image, data, trusted_digests=[b"\x00" * 32])
    _only_medfw_errors(sbv2.parse_signed_image, data)


@pytest.fixture(scope="module")
def signed(p256_signers: list[FileSigner]) -> bytes:
    return sbv2.sign_image(GOOD, p256_signers)


@FUZZ
@given(data=st.data())
def test_verify_mutated_sector(signed: bytes, data: st.DataObject) -> None:
    sector = len(signed) - 4096
    changes = data.draw(st.lists(st.tuples(st.integers(sector, len(signed) - 1), st.integers(0, 255)), max_size=6))
    bad = bytearray(signed)
    for off, value in changes:
        bad[off] = value
    _only_medfw_errors(sbv2.verify_image, bytes(bad), trusted_digests=[b"\x01" * 32])


@FUZZ
@given(st.binary(max_size=520), st.sampled_from([0, 1, 2]))
def test_assemble_block_random_signatures(
    p256_signers: list[FileSigner],
    p384_signers: list[FileSigner],
    rsa_signers: list[FileSigner],
    sig: bytes,
    which: int,
) -> None:
    signer = [p256_signers, p384_signers, rsa_signers][which][0]
    digest = b"\x00" * (48 if which == 1 else 32)
    _only_medfw_errors(sbv2.assemble_block, digest, sig, signer.public_key())
