"""Secure Boot v2 signing and verification: medfw vs espsecure, and hashing vs raw hashlib SHA-256.

Run standalone (``python benchmarks/bench_sign.py``) or through ``benchmarks/run.py sign``. For 1 MiB and 16 MiB
app images it times, side by side in one process:

* sign, file to file (RSA-3072 and ECDSA P-256): key load + read + ``sbv2.sign_image`` + atomic write, vs
  espsecure's ``sign_secure_boot_v2`` (its ``sign-data --version 2``)
* verify, file: public key load + read + ``sbv2.verify_image``, vs espsecure's ``verify_signature_v2``
* verify of bytes already in memory, and raw ``hashlib.sha256`` over the signed region (the floor any
  verifier has to pay)

and prints the best of several runs with ratios (medfw / espsecure, medfw verify / raw SHA-256).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from medfw._io import atomic_write
from medfw.cli.image import read_image
from medfw.crypto.keys import load_public_key, private_key_pem, public_key_pem
from medfw.crypto.registry import load_signer
from medfw.image import sbv2
from medfw.image.esp import build_app_image

SIZES = {"1 MiB": 1 << 20, "16 MiB": 16 << 20}
REPEATS = {"1 MiB": 9, "16 MiB": 7}


def _best(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` timed runs after one warm-up (the least disturbed by other load on the machine)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _quiet(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return fn()

    return run


def main() -> None:
    """Run the benchmark and print the table."""
    import espsecure

    keys = {
        "rsa3072": rsa.generate_private_key(public_exponent=65537, key_size=3072),
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
    }
    rows: list[tuple[str, str, str, float, float | None, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, size in SIZES.items():
            image = build_app_image(version="1.0.0", secure_version=1, payload=b"\x5a" * 4096, size=size)
            unsigned = work / "app.bin"
            unsigned.write_bytes(image)
            repeats = REPEATS[label]
            t_hash = 0.0
            for kname, key in keys.items():
                key_file = work / f"{kname}.pem"
                key_file.write_bytes(private_key_pem(key))
                pub_file = work / f"{kname}.pub"
                pub_file.write_bytes(public_key_pem(key.public_key()))
                out = work / f"{kname}-out.bin"

                # file to file, as the CLIs do: load the key, read the image, sign, write the output
                def medfw_sign(key_file: Path = key_file, out: Path = out, src: Path = unsigned) -> None:
                    signer = load_signer(str(key_file))
                    atomic_write(out, sbv2.sign_image(read_image(str(src)), [signer]))

                def esp_sign(key_file: Path = key_file, out: Path = out, src: Path = unsigned) -> None:
                    with key_file.open("rb") as kf, src.open("rb") as df:
                        espsecure.sign_secure_boot_v2([kf], str(out), False, False, None, [], [], df)

                t_sign = _best(medfw_sign, repeats)
                t_esp_sign = _best(_quiet(esp_sign), repeats)
                rows.append((label, kname, "sign (file to file)", t_sign, t_esp_sign, "medfw fsyncs its output"))
                mem_signer = load_signer(str(key_file))
                t_sign_mem = _best(lambda s=mem_signer, img=image: sbv2.sign_image(img, [s]), repeats)
                rows.append((label, kname, "sign (bytes in memory)", t_sign_mem, None, "key already loaded"))

                signed_path = work / f"{kname}-signed.bin"
                medfw_sign(out=signed_path)

                def medfw_verify(path: Path = signed_path, pub_file: Path = pub_file) -> None:
                    sbv2.verify_image(read_image(str(path)), public_keys=[load_public_key(pub_file)])

                def esp_verify(path: Path = signed_path, pub_file: Path = pub_file) -> None:
                    with pub_file.open("rb") as kf, path.open("rb") as df:
                        espsecure.verify_signature_v2(False, None, kf, df)

                signed = signed_path.read_bytes()
                region = memoryview(signed)[: len(signed) - sbv2.SECTOR_SIZE]
                public = key.public_key()
                t_verify = _best(medfw_verify, repeats)
                t_esp_verify = _best(_quiet(esp_verify), repeats)
                t_hash = _best(lambda region=region: hashlib.sha256(region).digest(), repeats)
                t_mem = _best(
                    lambda signed=signed, public=public: sbv2.verify_image(signed, public_keys=[public]), repeats
                )
                rows.append(
                    (label, kname, "verify (file)", t_verify, t_esp_verify, f"{t_verify / t_hash:.2f}x raw SHA-256")
                )
                rows.append(
                    (label, kname, "verify (bytes in memory)", t_mem, None, f"{t_mem / t_hash:.2f}x raw SHA-256")
                )
            rows.append((label, "-", "raw hashlib.sha256", t_hash, None, "signed region only"))

    print(f"{'size':<8} {'key':<11} {'operation':<26} {'medfw ms':>9} {'espsecure ms':>13} {'medfw/esp':>10}  note")
    for label, kname, op, t_medfw, t_esp, note in rows:
        esp_ms = f"{t_esp * 1000:13.1f}" if t_esp is not None else f"{'-':>13}"
        ratio = f"{t_medfw / t_esp:10.2f}" if t_esp else f"{'-':>10}"
        print(f"{label:<8} {kname:<11} {op:<26} {t_medfw * 1000:9.1f} {esp_ms} {ratio}  {note}")


if __name__ == "__main__":
    main()
