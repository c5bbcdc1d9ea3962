"""File I/O at the edges: bounded reads and atomic writes (temp file in the same directory, fsync, rename)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from medfw.errors import InputError, StorageError

__all__ = ["DEFAULT_MAX_READ", "atomic_write", "atomic_write_text", "read_bytes"]

DEFAULT_MAX_READ = 256 * 1024 * 1024


def read_bytes(path: str | os.PathLike[str], *, max_length: int = DEFAULT_MAX_READ, what: str = "file") -> bytes:
    """Read a whole file, refusing files larger than ``max_length``.

    Raises:
        InputError: the file is missing, unreadable, or too large.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            # Read what the file holds (plus one byte, to notice growth past the limit), not max_length:
            # asking read() for hundreds of MiB makes it allocate that much up front.
            size = os.fstat(fh.fileno()).st_size
            data = fh.read(min(size, max_length) + 1)
            while len(data) <= max_length and (more := fh.read(1 << 20)):
                data += more
    except FileNotFoundError:
        raise InputError(f"{what} not found", path=str(p)) from None
    except IsADirectoryError:
        raise InputError(f"{what} is a directory, expected a file", path=str(p)) from None
    except OSError as e:
        raise InputError(f"cannot read {what}: {e.strerror}", path=str(p)) from e
    if len(data) > max_length:
        raise InputError(f"{what} is larger than the limit of {max_length} bytes", path=str(p))
    return data


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: nothing half-written is ever visible at ``path``.

    The data goes to a temp file in the same directory, created with ``mode`` from the start (so a key is
    never readable by others, even briefly), is fsynced, then renamed over ``path``; the directory is
    fsynced so the rename survives power loss.

    Raises:
        InputError: ``overwrite`` is false and ``path`` exists.
        StorageError: the write failed (the temp file is removed).
    """
    p = Path(path)
    if not overwrite and p.exists():
        raise InputError("output file exists (use --force to overwrite)", path=str(p))
    directory = p.parent if str(p.parent) else Path()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        import tempfile  # noqa: PLC0415 - only writers need it (and it pulls in shutil, random, bz2, lzma)

        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise StorageError(f"cannot create output: {e.strerror}", path=str(p)) from e
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite and p.exists():
            raise InputError("output file exists (use --force to overwrite)", path=str(p))
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise StorageError(f"cannot write output: {e.strerror}", path=str(p)) from e
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, mode: int = 0o644, overwrite: bool = True) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write`)."""
    atomic_write(path, text.encode("utf-8"), mode=mode, overwrite=overwrite)
