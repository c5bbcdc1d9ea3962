"""``medfw.crypto`` depends on nothing above it, and the signer registry opens keys by URI scheme."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from medfw.crypto import registry
from medfw.crypto.keys import private_key_pem, public_key_fingerprint
from medfw.crypto.signer import FileSigner, Signer
from medfw.errors import KeyMaterialError, UsageError

CRYPTO = Path(__file__).resolve().parents[2] / "src" / "medfw" / "crypto"
ALLOWED = ("medfw.crypto", "medfw.errors", "medfw._io")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names.append("<importlib>")
    return names


@pytest.mark.parametrize("module", sorted(p.name for p in CRYPTO.glob("*.py")))
def test_crypto_imports_nothing_above_it(module: str) -> None:
    for name in _imports(CRYPTO / module):
        assert name != "<importlib>", f"{module}: hidden import through importlib"
        if name.startswith("medfw"):
            assert name.startswith(ALLOWED), f"{module} imports {name}"


def test_signer_and_pkcs11_do_not_import_the_registry() -> None:
    for module in ("signer.py", "pkcs11.py", "keys.py"):
        assert "medfw.crypto.registry" not in _imports(CRYPTO / module)


def test_registry_dispatches_by_scheme(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.pem").write_bytes(private_key_pem(key))
    for uri in (str(tmp_path / "k.pem"), f"file:{tmp_path / 'k.pem'}"):
        signer = registry.load_signer(uri)
        assert public_key_fingerprint(signer.public_key()) == public_key_fingerprint(key.public_key())
    with pytest.raises(KeyMaterialError, match="no signer backend"):
        registry.load_signer("vault:secret/k")
    assert {"file", "pkcs11"} <= set(registry.backends())


def test_register_backend(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    seen: list[str] = []

    def factory(uri: str) -> Signer:
        seen.append(uri)
        return FileSigner(key, key_id=uri)

    registry.register_backend("testkms", factory)
    try:
        assert registry.load_signer("testkms:alias/release").key_id == "testkms:alias/release"
        assert seen == ["testkms:alias/release"]
        with pytest.raises(UsageError, match="already registered"):
            registry.register_backend("testkms", factory)
        with pytest.raises(UsageError, match="invalid"):
            registry.register_backend("9bad", factory)
    finally:
        registry._BACKENDS.pop("testkms", None)


def test_fingerprint_is_sha256_of_spki() -> None:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public_key_fingerprint(pub) == hashlib.sha256(der).hexdigest()
