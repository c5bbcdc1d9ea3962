"""Keys and signers: key generation/loading and the :class:`Signer` interface (key file or PKCS#11)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medfw.crypto.keys import (
        KeyType,
        PrivateKey,
        PublicKey,
        generate_private_key,
        load_private_key,
        load_public_key,
    )
    from medfw.crypto.registry import load_signer
    from medfw.crypto.signer import FileSigner, Signer

__all__ = [
    "FileSigner",
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "Signer",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
    "load_signer",
]

# Each name is imported on first use: code that needs only keys (a key fingerprint, say) does not load the signers.
_KEYS = frozenset({"KeyType", "PrivateKey", "PublicKey", "generate_private_key", "load_private_key", "load_public_key"})


def __getattr__(name: str) -> Any:
    if name in _KEYS:
        from medfw.crypto import keys  # noqa: PLC0415 - see _KEYS

        value = getattr(keys, name)
    elif name == "load_signer":
        from medfw.crypto import registry  # noqa: PLC0415

        value = registry.load_signer
    elif name in {"FileSigner", "Signer"}:
        from medfw.crypto import signer  # noqa: PLC0415

        value = getattr(signer, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
