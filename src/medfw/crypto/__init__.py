"""Keys and signers: key generation/loading and the :class:`Signer` interface (key file or PKCS#11)."""

from medfw.crypto.keys import KeyType, PrivateKey, PublicKey, generate_private_key, load_private_key, load_public_key
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
