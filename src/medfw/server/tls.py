"""TLS for ``medfw ota serve``: TLS 1.2 or newer, and a private key no other user can read."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medfw._io import check_private
from medfw.errors import KeyMaterialError, UsageError

__all__ = ["check_server_files", "server_context_factory"]


def check_server_files(cert: str, key: str) -> None:
    """Refuse a missing certificate or a key file others can read; load both once to fail early.

    Raises:
        UsageError: a file is missing.
        KeyMaterialError: the key is readable by other users, or the pair does not load.
    """
    for path, flag in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not Path(path).is_file():
            raise UsageError(f"no such file: {path}", path=path, field=flag)
    check_private(key, what="TLS key", field="--tls-key")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise KeyMaterialError(f"TLS certificate and key do not load: {e}", path=cert, field="--tls-cert") from None


def server_context_factory(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's context with TLS 1.2 as the floor (whatever the OpenSSL configuration says)."""
    ctx = default()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
