"""Shared pieces of the key-lifecycle commands: the audit sink, key references, bounded JSON in and out."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditSink
from medfw.cli._common import audit_sink
from medfw.crypto.keys import PublicKey, load_public_key
from medfw.errors import InputError

__all__ = ["MAX_IMAGE", "MAX_JSON"]


MAX_JSON = 4 * 1024 * 1024
MAX_IMAGE = 64 * 1024 * 1024


@contextlib.contextmanager
def _sink(args: argparse.Namespace) -> Iterator[AuditSink]:
    """The audit sink of ``--audit-log``, closed afterwards when it is a log."""
    sink = audit_sink(args)
    try:
        yield sink
    finally:
        close = getattr(sink, "close", None)
        if callable(close):
            close()


def _public_key(ref: str) -> PublicKey:
    """A public key from a ``pkcs11:`` URI (no PIN needed for public objects) or a key file."""
    if ref.startswith("pkcs11:"):
        from medfw.crypto.pkcs11 import export_public  # noqa: PLC0415 - loads python-pkcs11 only when needed

        return export_public(ref)
    return load_public_key(ref.removeprefix("file:"))


def _key_label(ref: str) -> str:
    """A non-secret name for a key reference (URI path only, for pkcs11)."""
    if ref.startswith("pkcs11:"):
        from medfw.crypto.uri import Pkcs11Uri  # noqa: PLC0415

        return Pkcs11Uri.parse(ref).key_id()
    return ref


def _load_json(path: str, what: str) -> Any:
    raw = read_bytes(path, max_length=MAX_JSON, what=what)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        offset = getattr(e, "pos", None) if isinstance(e, json.JSONDecodeError) else getattr(e, "start", None)
        raise InputError(f"{what} is not JSON: {e}", path=path, offset=offset) from None


def _write_json(path: str, data: Any, *, force: bool) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), overwrite=force)


def _fingerprint(key: PublicKey) -> str:
    from medfw.crypto.keys import public_key_fingerprint  # noqa: PLC0415

    return public_key_fingerprint(key)


# ----------------------------------------------------------------------------------------------- export-public
