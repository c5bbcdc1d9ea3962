"""Fixtures for the image tests: espsecure's vectors and signers for each Secure Boot v2 scheme."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from medfw.crypto.signer import FileSigner

ESP_VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "esp"


@pytest.fixture(scope="session")
def esp_vectors() -> Path:
    """tests/vectors/esp."""
    return ESP_VECTORS


@pytest.fixture(scope="session")
def rsa_signers() -> list[FileSigner]:
    """Three RSA-3072 signers (espsecure's test keys: generating RSA keys is slow)."""
    names = ["rsa_secure_boot_signing_key.pem", "rsa_secure_boot_signing_key2.pem", "rsa_secure_boot_signing_key3.pem"]
    return [FileSigner.from_file(str(ESP_VECTORS / "espsecure" / n)) for n in names]


@pytest.fixture(scope="session")
def p256_signers() -> list[FileSigner]:
    """Three fresh ECDSA P-256 signers."""
    return [FileSigner(ec.generate_private_key(ec.SECP256R1()), key_id=f"p256-{i}") for i in range(3)]


@pytest.fixture(scope="session")
def p384_signers() -> list[FileSigner]:
    """Three fresh ECDSA P-384 signers."""
    return [FileSigner(ec.generate_private_key(ec.SECP384R1()), key_id=f"p384-{i}") for i in range(3)]
