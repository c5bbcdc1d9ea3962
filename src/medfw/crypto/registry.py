"""The signer registry: which backend opens a key URI, keyed by URI scheme.

``load_signer("pkcs11:token=…;object=…")`` opens a key in a PKCS#11 token, ``load_signer("file:key.pem")`` or a
plain path opens a key file. A new backend registers a factory for its scheme with :func:`register_backend`;
nothing else in medfw branches on where a key lives. This module sits above :mod:`medfw.crypto.signer` and
:mod:`medfw.crypto.pkcs11` (neither imports it), so there is no import cycle; python-pkcs11 is imported only when
a ``pkcs11:`` URI is opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from medfw.crypto.signer import FileSigner, Signer
from medfw.errors import KeyMaterialError, UsageError

__all__ = ["SignerFactory", "backends", "load_signer", "register_backend"]

#: opens the signer a URI names (the whole URI, scheme included)
SignerFactory = Callable[[str], Signer]

_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)


def _file_signer(uri: str) -> Signer:
    return FileSigner.from_file(uri.removeprefix("file:"))


def _pkcs11_signer(uri: str) -> Signer:
    from medfw.crypto.pkcs11 import Pkcs11Signer  # noqa: PLC0415 - python-pkcs11 loads only when a token is used

    return Pkcs11Signer.from_uri(uri)


_BACKENDS: dict[str, SignerFactory] = {"file": _file_signer, "pkcs11": _pkcs11_signer}


def register_backend(scheme: str, factory: SignerFactory, *, replace: bool = False) -> None:
    """Register ``factory`` for key URIs ``scheme:…``.

    Raises:
        UsageError: the scheme is malformed, or already registered and ``replace`` is false.
    """
    name = scheme.lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", name):
        raise UsageError(f"invalid key URI scheme {scheme!r}", field="scheme")
    if name in _BACKENDS and not replace:
        raise UsageError(f"a signer backend for {name}: is already registered", field="scheme")
    _BACKENDS[name] = factory


def backends() -> list[str]:
    """The registered key URI schemes."""
    return sorted(_BACKENDS)


def load_signer(uri: str) -> Signer:
    """Open the signer a key URI names: ``scheme:…`` through its registered backend, a plain path as a key file.

    A one-letter "scheme" is a Windows drive (``C:\\keys\\k.pem``) and is read as a path.

    Raises:
        KeyMaterialError: the key cannot be used, or the URI's scheme has no backend.
        HSMError: the token cannot be opened (PKCS#11 only).
    """
    m = _SCHEME.match(uri)
    if m is None or len(m.group(1)) == 1:
        return _file_signer(uri)
    scheme = m.group(1).lower()
    factory = _BACKENDS.get(scheme)
    if factory is None:
        raise KeyMaterialError(
            f"no signer backend for key URI scheme {scheme!r}; known: {', '.join(backends())}", path=uri, field="scheme"
        )
    return factory(uri)
