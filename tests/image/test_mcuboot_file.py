"""Streaming verification of MCUboot image files: same results as in memory, bounded, robust to changing files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from imgtool.main import imgtool

from medfw.crypto.keys import PublicKey, load_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import InputError, MalformedImageError, MedfwError, SignatureError, VerificationError
from medfw.image import mcuboot_file
from medfw.image.mcuboot import McubootImage, parse_image, sign_image, verify_file, verify_image

GOLDEN = [
    ("ed25519-sc7.bin", "ed25519"),
    ("ecdsa-p256-confirm.bin", "ecdsa-p256"),
    ("ecdsa-p384.bin", "ecdsa-p384"),
    ("rsa-3072-pad.bin", "rsa-3072"),
]


def _pub(vectors: Path, kt: str) -> PublicKey:
    return load_private_key(vectors / "mcuboot" / f"key-{kt}.pem").public_key()


@pytest.mark.parametrize(("name", "kt"), GOLDEN)
@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_same_result_as_in_memory(vectors: Path, name: str, kt: str, chunk: int) -> None:
    path = vectors / "mcuboot" / name
    streamed = verify_file(path, [_pub(vectors, kt)], chunk_size=chunk)
    assert streamed == verify_image(path.read_bytes(), [_pub(vectors, kt)])


def test_flips_are_rejected_with_small_chunks(vectors: Path, tmp_path: Path) -> None:
    signer = FileSigner.from_file(str(vectors / "mcuboot" / "key-ecdsa-p256.pem"))
    image = sign_image(bytes(range(40)), signer, version="1.0.0", header_size=32, pad_header=True, security_counter=2)
    path = tmp_path / "img.bin"
    for pos in range(len(image)):
        tampered = bytearray(image)
        tampered[pos] ^= 0x10
        path.write_bytes(bytes(tampered))
        with pytest.raises(MedfwError):
            verify_file(path, [signer.public_key()], chunk_size=5)


def test_pure_ed25519_file(vectors: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "in.bin", tmp_path / "pure.bin"
    src.write_bytes(b"z" * 5000)
    key = vectors / "mcuboot" / "key-ed25519.pem"
    result = CliRunner().invoke(
        imgtool,
        [
            "sign",
            "-k",
            str(key),
            "-H",
            "0x20",
            "--pad-header",
            "-v",
            "1.0.0",
            "-S",
            "0x8000",
            "--pure",
            str(src),
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert verify_file(out, [_pub(vectors, "ed25519")], chunk_size=1000).pure


def test_wrong_key_and_tamper_errors_carry_the_path(vectors: Path, tmp_path: Path) -> None:
    data = bytearray((vectors / "mcuboot" / "ecdsa-p384.bin").read_bytes())
    path = tmp_path / "x.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(SignatureError) as info:
        verify_file(path, [_pub(vectors, "ed25519")])
    assert info.value.path == str(path)
    data[0x250] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationError) as vinfo:
        verify_file(path, [_pub(vectors, "ecdsa-p384")])
    assert vinfo.value.path == str(path)


def test_missing_directory_and_size_limit(vectors: Path, tmp_path: Path) -> None:
    pub = [_pub(vectors, "ed25519")]
    with pytest.raises(InputError, match="not found"):
        verify_file(tmp_path / "none.bin", pub)
    with pytest.raises(InputError, match="directory"):
        verify_file(tmp_path, pub)
    with pytest.raises(InputError, match="limit"):
        verify_file(vectors / "mcuboot" / "ed25519-sc7.bin", pub, max_size=100)


def test_fifo_is_refused(vectors: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keep a writer so opening for reading does not block
    try:
        with pytest.raises(InputError, match="regular file"):
            verify_file(fifo, [_pub(vectors, "ed25519")])
    finally:
        os.close(fd)


def _change_after_parse(monkeypatch: pytest.MonkeyPatch, path: Path, mutate: object) -> None:
    real = mcuboot_file.parse_with_reader

    def parse_then_change(read: object, size: int) -> McubootImage:
        image = real(read, size)  # type: ignore[arg-type]
        path.write_bytes(mutate(path.read_bytes()))  # type: ignore[operator]
        return image

    monkeypatch.setattr(mcuboot_file, "parse_with_reader", parse_then_change)


def test_counter_swapped_between_passes_is_detected(
    vectors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parsed (reported) security counter must be the one that was hashed."""
    signer = FileSigner.from_file(str(vectors / "mcuboot" / "key-ed25519.pem"))
    forged = sign_image(b"app" * 100, signer, version="1.0.0", header_size=32, pad_header=True, security_counter=99)
    genuine = sign_image(b"app" * 100, signer, version="1.0.0", header_size=32, pad_header=True, security_counter=1)
    assert len(forged) == len(genuine)
    path = tmp_path / "img.bin"
    # the first pass sees an unsigned counter 99 (signature bytes from elsewhere), the second pass the genuine image
    path.write_bytes(forged[: parse_image(forged).hashed_size] + genuine[parse_image(genuine).hashed_size :])
    _change_after_parse(monkeypatch, path, lambda _old: genuine)
    with pytest.raises(MalformedImageError, match="changed"):
        verify_file(path, [signer.public_key()])


def test_file_shrinking_between_passes_is_detected(
    vectors: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "img.bin"
    path.write_bytes((vectors / "mcuboot" / "ed25519-sc7.bin").read_bytes())
    _change_after_parse(monkeypatch, path, lambda old: old[:100])
    with pytest.raises(MalformedImageError, match="shorter"):
        verify_file(path, [_pub(vectors, "ed25519")])
