"""MCUboot signing benchmark: medfw vs imgtool (CLI and Python API) vs raw hashlib SHA-256.

Signs and verifies 1 MiB and 16 MiB images with an ECDSA P-256 key (SHA-256 image hash) and an Ed25519 key, and
prints the best-of-N wall time of each variant and the ratio to the reference (medfw / reference; below 1 means
medfw is faster). Each pair is run alternately so that both see the same machine load. Run standalone
(``python benchmarks/bench_mcuboot.py``) or through ``benchmarks/run.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from medfw._io import read_bytes
from medfw.crypto.keys import KeyType, generate_private_key, load_public_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.image.mcuboot import sign_image, verify_file, verify_image

BIN = Path(sys.executable).parent
SIZES = {"1 MiB": 1 << 20, "16 MiB": 16 << 20}
SLOT = 32 << 20

Row = tuple[str, str, float, str, float]


def pair(ours: Callable[[], object], reference: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall times of two variants, run alternately so that both see the same machine load."""
    t_ours: list[float] = []
    t_ref: list[float] = []
    for _ in range(repeat):
        for fn, times in ((ours, t_ours), (reference, t_ref)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(t_ours), min(t_ref)


def sha256_file(path: Path) -> bytes:
    """Raw SHA-256 of a file, read in 1 MiB chunks (the floor for any verifier)."""
    h = hashlib.sha256()
    buf = memoryview(bytearray(1 << 20))
    with path.open("rb") as fh:
        while n := fh.readinto(buf):
            h.update(buf[:n])
    return h.digest()


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def imgtool_api_sign(key_path: Path, src: Path, dst: Path) -> None:
    from imgtool import image, keys
    from imgtool.version import decode_version

    with contextlib.redirect_stdout(io.StringIO()):
        img = image.Image(version=decode_version("1.2.3"), header_size=0x200, pad_header=True, slot_size=SLOT)
        img.load(str(src))
        img.create(keys.load(str(key_path)), "hash", None)
        img.save(str(dst))


def imgtool_api_verify(key_path: Path, path: Path) -> None:
    from imgtool import image, keys

    result, *_ = image.Image.verify(str(path), keys.load(str(key_path)))
    assert result == image.VerifyResult.OK, result


def bench_case(d: Path, key_name: str, key_path: Path, size_name: str, size: int) -> list[Row]:
    """Time every variant for one key and image size."""
    signer = FileSigner.from_file(str(key_path))
    pub = load_public_key(key_path)
    repeat = 15 if size <= 1 << 20 else 11
    payload = os.urandom(size)
    src = d / f"app-{size}.bin"
    src.write_bytes(payload)
    ours_path = d / f"ours-{key_name}-{size}.bin"
    theirs_path = d / f"theirs-{key_name}-{size}.bin"
    image = sign_image(payload, signer, version="1.2.3", header_size=0x200, pad_header=True, slot_size=SLOT)
    ours_path.write_bytes(image)
    imgtool_api_sign(key_path, src, theirs_path)
    label = f"{key_name} {size_name}"

    def medfw_sign() -> None:
        signed = sign_image(
            read_bytes(src), signer, version="1.2.3", header_size=0x200, pad_header=True, slot_size=SLOT
        )
        (d / "api.bin").write_bytes(signed)

    t_verify, t_sha = pair(lambda: verify_image(image, [pub]), lambda: hashlib.sha256(image).digest(), repeat)
    t_verify_file, t_file_sha = pair(lambda: verify_file(ours_path, [pub]), lambda: sha256_file(ours_path), repeat)
    t_verify_file2, t_it_verify = pair(
        lambda: verify_file(ours_path, [pub]), lambda: imgtool_api_verify(key_path, ours_path), repeat
    )
    t_sign, t_it_sign = pair(medfw_sign, lambda: imgtool_api_sign(key_path, src, theirs_path), repeat)

    medfw_cli_sign = [
        str(BIN / "medfw"), "sign", "mcuboot", "--key", str(key_path), "--version", "1.2.3",
        "--header-size", "0x200", "--pad-header", "--slot-size", str(SLOT), str(src), str(d / "cli.bin"),
    ]  # fmt: skip
    imgtool_cli_sign = [
        str(BIN / "imgtool"), "sign", "-k", str(key_path), "-v", "1.2.3", "-H", "0x200", "--pad-header",
        "-S", str(SLOT), str(src), str(d / "cli-it.bin"),
    ]  # fmt: skip
    medfw_cli_verify = [str(BIN / "medfw"), "verify", "mcuboot", "--key", str(key_path), str(ours_path)]
    imgtool_cli_verify = [str(BIN / "imgtool"), "verify", "-k", str(key_path), str(ours_path)]
    t_cli_sign, t_cli_it_sign = pair(lambda: run(medfw_cli_sign), lambda: run(imgtool_cli_sign), 5)
    t_cli_verify, t_cli_it_verify = pair(lambda: run(medfw_cli_verify), lambda: run(imgtool_cli_verify), 5)
    return [
        (label, "verify (in memory) vs raw sha256", t_verify, "hashlib.sha256", t_sha),
        (label, "verify_file vs streamed sha256", t_verify_file, "hashlib.sha256 file", t_file_sha),
        (label, "verify file (Python API)", t_verify_file2, "imgtool", t_it_verify),
        (label, "sign file to file (Python API)", t_sign, "imgtool", t_it_sign),
        (label, "sign (CLI process)", t_cli_sign, "imgtool", t_cli_it_sign),
        (label, "verify (CLI process)", t_cli_verify, "imgtool", t_cli_it_verify),
    ]


def main() -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for key_name, key_type in (("ecdsa-p256", KeyType.ECDSA_P256), ("ed25519", KeyType.ED25519)):
            key_path = d / f"{key_name}.pem"
            write_private_key(generate_private_key(key_type), key_path)
            for size_name, size in SIZES.items():
                rows += bench_case(d, key_name, key_path, size_name, size)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    header = f"{'image':<18} {'operation':<34} {'medfw ms':>10} {'reference':<20} {'ref ms':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for label, op, t_ours, ref, t_ref in rows:
        print(f"{label:<18} {op:<34} {t_ours * 1000:>10.1f} {ref:<20} {t_ref * 1000:>10.1f} {t_ours / t_ref:>6.2f}x")


if __name__ == "__main__":
    main()
