"""Pkcs11Signer, generate_key and export_public against a real SoftHSM2 token."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, public_key_fingerprint, public_key_pem
from medfw.crypto.pkcs11 import Pkcs11Signer, export_public
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import HashName
from medfw.crypto.uri import Pkcs11Uri
from medfw.errors import HSMError, KeyMaterialError, MedfwError
from medfw.keys.guard import GuardedSigner
from medfw.keys.hsm import generate_key
from softhsm import SoftHsm, softhsm_token

pytestmark = pytest.mark.softhsm


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


def _raw_session(token: SoftHsm) -> pkcs11.Session:
    lib = pkcs11.lib(token.module)
    return lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin)


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA3072])
def test_generate_sign_verify_digest(softhsm: SoftHsm, key_type: KeyType) -> None:
    sink = MemorySink()
    uri = softhsm.uri(f"k-{key_type}", key_id=b"\x02")
    pub = generate_key(uri, key_type, audit=sink)
    signer = load_signer(uri)
    assert isinstance(signer, Pkcs11Signer)
    assert signer.key_type is key_type
    assert signer.public_key() == pub
    assert export_public(uri) == pub
    for name in ("sha256", "sha384", "sha512"):
        alg = HASHES[name]
        digest = hashlib.new(name, b"firmware image").digest()
        hn: HashName = name  # type: ignore[assignment]
        sig = signer.sign_digest(digest, hn)
        if isinstance(pub, rsa.RSAPublicKey):
            assert len(sig) == 384
            pub.verify(sig, digest, padding.PSS(mgf=padding.MGF1(alg), salt_length=alg.digest_size), Prehashed(alg))
        else:
            assert isinstance(pub, ec.EllipticCurvePublicKey)
            pub.verify(sig, digest, ec.ECDSA(Prehashed(alg)))
    msg_sig = signer.sign_message(b"metadata", "sha256")
    if isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(msg_sig, b"metadata", ec.ECDSA(hashes.SHA256()))
    [event] = sink.of_type("key.generate")
    assert event.outcome == "success"
    assert event.objects["key_fingerprint"] == public_key_fingerprint(pub)
    assert event.objects["key_uri"] == Pkcs11Uri.parse(uri).key_id()


def test_ed25519_signs_messages(softhsm: SoftHsm) -> None:
    uri = softhsm.uri("ed")
    pub = generate_key(uri, KeyType.ED25519)
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    signer = load_signer(uri)
    sig = signer.sign_message(b"\x00" * 32)
    pub.verify(sig, b"\x00" * 32)
    with pytest.raises(MedfwError, match="Ed25519"):
        signer.sign_digest(hashlib.sha256().digest(), "sha256")


def test_sign_events_are_audited_without_secrets(softhsm: SoftHsm) -> None:
    uri = softhsm.uri("audited")
    generate_key(uri, KeyType.ECDSA_P256)
    sink = MemorySink()
    signer = GuardedSigner(Pkcs11Signer.from_uri(uri), sink)
    digest = hashlib.sha256(b"x").digest()
    signer.sign_digest(digest, "sha256")
    [event] = sink.of_type("key.sign")
    assert event.outcome == "success"
    assert event.objects["digest"] == digest.hex()
    assert event.actor == Pkcs11Uri.parse(uri).key_id()
    dumped = json.dumps([asdict(e) for e in sink.events], default=str)
    assert softhsm.pin not in dumped
    assert softhsm.pin not in repr(signer)
    assert "PRIVATE" not in dumped


def test_private_key_is_not_extractable(softhsm: SoftHsm) -> None:
    generate_key(softhsm.uri("ec"), KeyType.ECDSA_P256)
    generate_key(softhsm.uri("rsa"), KeyType.RSA3072)
    with _raw_session(softhsm) as session:
        ec_priv = session.get_key(ObjectClass.PRIVATE_KEY, label="ec")
        rsa_priv = session.get_key(ObjectClass.PRIVATE_KEY, label="rsa")
        for priv in (ec_priv, rsa_priv):
            assert priv[Attribute.SENSITIVE] is True
            assert priv[Attribute.EXTRACTABLE] is False
            assert priv[Attribute.NEVER_EXTRACTABLE] is True
            assert priv[Attribute.TOKEN] is True
        with pytest.raises(pkcs11.AttributeSensitive):
            ec_priv[Attribute.VALUE]
        with pytest.raises(pkcs11.AttributeSensitive):
            rsa_priv[Attribute.PRIVATE_EXPONENT]
        with pytest.raises(pkcs11.AttributeSensitive):
            rsa_priv[Attribute.PRIME_1]
        # Wrapping it out under a key we control is refused too.
        wrapper = session.generate_key(
            P11KeyType.AES, 256, label="wrap", store=False, capabilities=pkcs11.MechanismFlag.WRAP
        )
        with pytest.raises(pkcs11.KeyUnextractable):
            wrapper.wrap_key(ec_priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        # And the flag cannot be switched back on.
        with pytest.raises(pkcs11.PKCS11Error):
            ec_priv[Attribute.EXTRACTABLE] = True
        assert ec_priv[Attribute.EXTRACTABLE] is False


def test_generate_refuses_to_overwrite(softhsm: SoftHsm) -> None:
    uri = softhsm.uri("dup", key_id=b"\x07")
    generate_key(uri, KeyType.ECDSA_P256)
    with pytest.raises(HSMError, match="already exists"):
        generate_key(uri, KeyType.ECDSA_P256)
    with pytest.raises(HSMError, match="already exists"):
        generate_key(softhsm.uri("other", key_id=b"\x07"), KeyType.ECDSA_P256)
    with pytest.raises(KeyMaterialError, match="object=NAME"):
        generate_key(softhsm.uri(None), KeyType.ECDSA_P256)


def test_export_public_pem_matches_and_needs_no_pin(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = softhsm.uri("pub")
    pub = generate_key(uri, KeyType.ECDSA_P384)
    monkeypatch.delenv("MEDFW_PKCS11_PIN")
    exported = export_public(uri)
    assert public_key_pem(exported) == public_key_pem(pub)
    typed = f"pkcs11:token={softhsm.label};object=pub;type=public?module-path={softhsm.module}"
    assert export_public(typed) == pub
    with pytest.raises(HSMError, match="type=private"):
        load_signer(typed)


def test_pin_from_file(softhsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = softhsm.uri("pf")
    generate_key(uri, KeyType.ECDSA_P256)
    monkeypatch.delenv("MEDFW_PKCS11_PIN")
    pin_file = tmp_path / "pin"
    fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (softhsm.pin + "\n").encode())
    os.close(fd)
    # pin-source in the URI
    signer = load_signer(softhsm.uri("pf", query=f"pin-source=file:{pin_file}"))
    assert signer.sign_digest(hashlib.sha256().digest(), "sha256")
    # $MEDFW_PKCS11_PIN_FILE
    monkeypatch.setenv("MEDFW_PKCS11_PIN_FILE", str(pin_file))
    assert load_signer(uri).sign_digest(hashlib.sha256().digest(), "sha256")
    # A world-readable PIN file is refused.
    pin_file.chmod(0o644)
    with pytest.raises(HSMError, match="readable by all users"):
        load_signer(uri)
    monkeypatch.setenv("MEDFW_PKCS11_PIN_FILE", str(tmp_path / "missing"))
    with pytest.raises(HSMError, match="PIN file not found"):
        load_signer(uri)
    monkeypatch.delenv("MEDFW_PKCS11_PIN_FILE")
    with pytest.raises(HSMError, match="no PIN given"):
        load_signer(uri)
    with pytest.raises(KeyMaterialError, match="pin-source"):
        load_signer(softhsm.uri("pf", query="pin-source=relative/pin"))


def test_errors_name_token_object_and_never_the_pin(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    generate_key(softhsm.uri("good"), KeyType.ECDSA_P256)
    messages: list[str] = []

    def expect(exc: type[MedfwError], uri: str, *needles: str) -> None:
        with pytest.raises(exc) as ei:
            load_signer(uri)
        text = ei.value.diagnostics()
        for needle in needles:
            assert needle in text, text
        messages.append(text)

    expect(HSMError, softhsm.uri("absent"), "no private key object", f"token '{softhsm.label}'", "object 'absent'")
    expect(HSMError, softhsm.uri("good").replace(softhsm.label, "no-such-token"), "no such token", "no-such-token")
    expect(KeyMaterialError, softhsm.uri("good", query=f"pin-value={softhsm.pin}"), "pin-value")
    expect(HSMError, softhsm.uri("good").replace(softhsm.module, "/nonexistent/libp11.so"), "/nonexistent/libp11.so")
    expect(HSMError, softhsm.uri("good").replace("object=good", "object=good;type=public"), "type=private")
    wrong_pin = "wrong-pin-31337"
    monkeypatch.setenv("MEDFW_PKCS11_PIN", wrong_pin)
    expect(HSMError, softhsm.uri("good"), "wrong PIN", "CKR_PIN_INCORRECT", "object 'good'")
    for text in messages:
        assert softhsm.pin not in text
        assert wrong_pin not in text


def test_wrong_curve_size_and_class_refused(softhsm: SoftHsm) -> None:
    with _raw_session(softhsm) as session:
        session.generate_keypair(
            P11KeyType.EC,
            label="p521",
            store=True,
            public_template={Attribute.EC_PARAMS: bytes.fromhex("06052b81040023")},
        )
        session.generate_keypair(P11KeyType.RSA, 2048, label="rsa2048", store=True)
        session.generate_key(P11KeyType.AES, 128, label="aes", store=True)
    with pytest.raises(HSMError, match="curve P-521") as ei:
        load_signer(softhsm.uri("p521"))
    assert "object 'p521'" in str(ei.value)
    with pytest.raises(HSMError, match="RSA-2048 key: RSA-3072 is required"):
        load_signer(softhsm.uri("rsa2048"))
    with pytest.raises(HSMError, match="is a secret key, not a private key"):
        load_signer(softhsm.uri("aes"))
    with pytest.raises(HSMError, match="curve P-521"):
        export_public(softhsm.uri("p521"))


def test_ambiguous_objects_and_tokens(softhsm: SoftHsm) -> None:
    generate_key(softhsm.uri("a", key_id=b"\x01"), KeyType.ECDSA_P256)
    generate_key(softhsm.uri("b", key_id=b"\x02"), KeyType.ECDSA_P256)
    with pytest.raises(HSMError, match="several private key objects match"):
        load_signer(softhsm.uri(None))
    signer = load_signer(softhsm.uri(None, key_id=b"\x02"))
    assert signer.public_key() == export_public(softhsm.uri("b"))
    softhsm.init_token(softhsm.label + "-2")
    with pytest.raises(HSMError, match="2 tokens match"):
        load_signer(f"pkcs11:object=a?module-path={softhsm.module}")


def test_missing_mechanism_is_named(softhsm: SoftHsm, monkeypatch: pytest.MonkeyPatch) -> None:
    import medfw.crypto.pkcs11 as mod

    uri = softhsm.uri("m")
    generate_key(uri, KeyType.RSA3072)
    real_find = mod._find_token

    def find_without_pss(t: object) -> object:
        token = real_find(t)  # type: ignore[arg-type]
        mechanisms = token.slot.get_mechanisms() - {Mechanism.RSA_PKCS_PSS}
        slot = SimpleNamespace(get_mechanisms=lambda: mechanisms)
        return SimpleNamespace(slot=slot, flags=token.flags, label=token.label, open=token.open)

    monkeypatch.setattr(mod, "_find_token", find_without_pss)
    with pytest.raises(HSMError) as ei:
        load_signer(uri)
    text = str(ei.value)
    assert "CKM_RSA_PKCS_PSS" in text
    assert f"token '{softhsm.label}'" in text
    assert "object 'm'" in text


def test_espsecure_accepts_hsm_signatures(softhsm: SoftHsm, tmp_path: Path) -> None:
    """espsecure builds SBv2 blocks from our pre-computed signatures and verifies them (RSA-3072, P-256, P-384)."""
    image = bytes(range(256)) * 16  # 4 KiB, sector aligned as espsecure requires for external signatures
    src = tmp_path / "app.bin"
    src.write_bytes(image)
    for key_type, hash_name in (
        (KeyType.RSA3072, "sha256"),
        (KeyType.ECDSA_P256, "sha256"),
        (KeyType.ECDSA_P384, "sha384"),
    ):
        uri = softhsm.uri(f"esp-{key_type}")
        pub = generate_key(uri, key_type)
        signer = load_signer(uri)
        hn: HashName = hash_name  # type: ignore[assignment]
        sig = signer.sign_digest(hashlib.new(hash_name, image).digest(), hn)
        pub_pem = tmp_path / f"{key_type}.pub.pem"
        pub_pem.write_bytes(
            pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        sig_file = tmp_path / f"{key_type}.sig"
        sig_file.write_bytes(sig)
        out = tmp_path / f"{key_type}.signed.bin"
        esp = [sys.executable, "-m", "espsecure"]
        subprocess.run(
            [
                *esp,
                "sign-data",
                "--version",
                "2",
                "--pub-key",
                str(pub_pem),
                "--signature",
                str(sig_file),
                "--output",
                str(out),
                str(src),
            ],
            check=True,
            capture_output=True,
        )
        verify = subprocess.run(
            [*esp, "verify-signature", "--version", "2", "--keyfile", str(pub_pem), str(out)],
            check=False,
            capture_output=True,
            text=True,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


def test_token_selected_by_serial_slot_and_library(softhsm: SoftHsm) -> None:
    generate_key(softhsm.uri("sel"), KeyType.ECDSA_P256)
    lib = pkcs11.lib(softhsm.module)
    slot = next(s for s in lib.get_slots(token_present=True) if s.get_token().label == softhsm.label)
    serial = slot.get_token().serial.decode().strip()
    q = f"?module-path={softhsm.module}"
    for uri in (
        f"pkcs11:serial={serial};object=sel{q}",
        f"pkcs11:slot-id={slot.slot_id};object=sel{q}",
        f"pkcs11:library-manufacturer=SoftHSM;token={softhsm.label};object=sel;type=private{q}",
    ):
        assert load_signer(uri).sign_digest(hashlib.sha256().digest(), "sha256")
    with pytest.raises(HSMError, match="does not match the URI's library attributes"):
        load_signer(f"pkcs11:library-manufacturer=Other%20Vendor;token={softhsm.label};object=sel{q}")
    with pytest.raises(HSMError, match="token serial 'ffff'"):
        load_signer(f"pkcs11:serial=ffff;object=sel{q}")
