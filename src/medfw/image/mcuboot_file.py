"""Verify an MCUboot image file without loading it: the I/O edge of :mod:`medfw.image.mcuboot_verify`.

The file is read twice. The first pass reads only the header, the TLV areas and the trailer end, and parses them.
The second pass streams the signed region (header + body + protected TLVs) through the hash in fixed-size
chunks, so memory use does not grow with the image.

Threat model: the file may change while it is being read (another process, a network share). Every byte that
was parsed *and* is covered by the hash (the 32-byte header, the protected TLV area) is compared with the
bytes the second pass hashes, so the reported header fields and security counter are always the signed ones. A
file that shrinks or changes between the passes is rejected. The unprotected TLVs are read once and are not
covered by the hash anyway.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from medfw._io import DEFAULT_MAX_READ
from medfw.crypto.keys import PublicKey
from medfw.crypto.signer import HashName
from medfw.errors import InputError, MalformedImageError, MedfwError
from medfw.image.mcuboot_format import parse_with_reader
from medfw.image.mcuboot_verify import McubootVerification, verify_parsed

__all__ = ["CHUNK_SIZE", "verify_file"]

#: bytes hashed per read
CHUNK_SIZE = 1 << 20


def verify_file(
    path: str | os.PathLike[str],
    public_keys: Sequence[PublicKey],
    *,
    max_size: int = DEFAULT_MAX_READ,
    chunk_size: int = CHUNK_SIZE,
) -> McubootVerification:
    """Verify the MCUboot image in the file at ``path`` (same checks and errors as ``verify_image``).

    Raises:
        InputError: the file is missing, unreadable, not a regular file, or larger than ``max_size``.
        MalformedImageError: the image is malformed or the file changed while it was being read.
        VerificationError, SignatureError: the image does not verify.
    """
    p = Path(path)
    try:
        fh = p.open("rb")
    except FileNotFoundError:
        raise InputError("image not found", path=str(p)) from None
    except IsADirectoryError:
        raise InputError("image is a directory, expected a file", path=str(p)) from None
    except OSError as e:
        raise InputError(f"cannot read image: {e.strerror}", path=str(p)) from e
    try:
        with fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise InputError("image is not a regular file", path=str(p))
            if st.st_size > max_size:
                raise InputError(f"image is larger than the limit of {max_size} bytes", path=str(p))
            return _verify_open(fh, st.st_size, public_keys, chunk_size)
    except MedfwError as e:
        raise e.with_path(str(p)) from None
    except OSError as e:
        raise InputError(f"cannot read image: {e.strerror}", path=str(p)) from e


def _verify_open(
    fh: io.BufferedReader, size: int, public_keys: Sequence[PublicKey], chunk_size: int
) -> McubootVerification:
    parsed_regions: list[tuple[int, bytes]] = []

    def read(off: int, n: int) -> bytes:
        fh.seek(off)
        data = fh.read(n)
        if len(data) != n:
            raise MalformedImageError("the file changed while it was being read", offset=off)
        parsed_regions.append((off, data))
        return data

    image = parse_with_reader(read, size)
    signed_end = image.hashed_size

    def content(hash_name: HashName, pure: bool) -> tuple[bytes, bytes | None]:
        hasher = hashlib.new(hash_name)
        keep = bytearray() if pure else None
        checks = [(off, data) for off, data in parsed_regions if off < signed_end]
        buf = memoryview(bytearray(max(1, min(chunk_size, signed_end))))
        fh.seek(0)
        pos = 0
        while pos < signed_end:
            n = fh.readinto(buf[: min(len(buf), signed_end - pos)])
            if not n:
                raise MalformedImageError("the file changed while it was being read (now shorter)", offset=pos)
            chunk = buf[:n]
            hasher.update(chunk)
            if keep is not None:
                keep += chunk
            for off, data in checks:
                lo, hi = max(off, pos), min(off + len(data), pos + n)
                if lo < hi and chunk[lo - pos : hi - pos] != data[lo - off : hi - off]:
                    raise MalformedImageError("the file changed while it was being read", offset=lo)
            pos += n
        return hasher.digest(), bytes(keep) if keep is not None else None

    return verify_parsed(image, content, public_keys)
