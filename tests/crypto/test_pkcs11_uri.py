"""RFC 7512 PKCS#11 URI parsing, formatting and redaction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.crypto.uri import OBJECT_TYPES, Pkcs11Uri, redact_uri
from medfw.errors import KeyMaterialError


def test_rfc7512_examples() -> None:
    # Examples from RFC 7512 section 3.
    u = Pkcs11Uri.parse("pkcs11:object=my-pubkey;type=public")
    assert (u.object, u.type) == ("my-pubkey", "public")
    u = Pkcs11Uri.parse("pkcs11:object=my-key;type=private?pin-source=file:/etc/token")
    assert u.pin_source == "file:/etc/token"
    u = Pkcs11Uri.parse(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;"
        "object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
        "?pin-source=file:/etc/token_pin"
    )
    assert u.token == "The Software PKCS#11 Softtoken"
    assert u.manufacturer == "Snake Oil, Inc."
    assert u.id == bytes.fromhex("69953e5cf4bdec91")
    assert u.serial == ""
    u = Pkcs11Uri.parse(
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin"
    )
    assert u.pin_value == "the-pin"
    u = Pkcs11Uri.parse("pkcs11:slot-description=Sun%20Metaslot")
    assert u.slot_description == "Sun Metaslot"
    u = Pkcs11Uri.parse(
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23"
    )
    assert u.library_version == "1.23"
    u = Pkcs11Uri.parse("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert")
    assert u.token == "A name with a substring %;"
    u = Pkcs11Uri.parse(
        "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert"
    )
    assert u.token == "Name with a small A with acute: \u00e1"
    u = Pkcs11Uri.parse(
        "pkcs11:token=my-token;object=my-certificate;type=cert;x-aaa=value-a"
        "?pin-source=file:/etc/token_pin&x-bbb=value-b"
    )
    assert u.vendor_path == (("x-aaa", "value-a"),)
    assert u.vendor_query == (("x-bbb", "value-b"),)
    assert Pkcs11Uri.parse("pkcs11:") == Pkcs11Uri()
    assert Pkcs11Uri.parse("pkcs11:slot-id=3").slot_id == 3


def test_module_path_and_id() -> None:
    u = Pkcs11Uri.parse("pkcs11:token=release;object=fw;id=%01%ff?module-path=/usr/lib/softhsm/libsofthsm2.so")
    assert u.module_path == "/usr/lib/softhsm/libsofthsm2.so"
    assert u.id == b"\x01\xff"
    assert u.key_id() == "pkcs11:token=release;object=fw;id=%01%FF"
    assert u.object_name() == "object 'fw' id 01ff"
    assert u.token_name() == "token 'release'"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("file:/key.pem", "not a PKCS#11 URI"),
        ("pkcs11:token=a;token=b", "more than once"),
        ("pkcs11:object=a%2", "percent-encoding"),
        ("pkcs11:object=a%zz", "percent-encoding"),
        ("pkcs11:object=a b", "must be percent-encoded"),
        ("pkcs11:colour=red", "unknown PKCS#11 URI path attribute"),
        ("pkcs11:object=a?colour=red", "unknown PKCS#11 URI query attribute"),
        ("pkcs11:type=secret", "type"),
        ("pkcs11:slot-id=abc", "slot-id"),
        ("pkcs11:library-version=1.x", "library-version"),
        ("pkcs11:object", "expected name=value"),
        ("pkcs11:object=a#frag", "fragment"),
        ("pkcs11:object=%ff%fe", "not UTF-8"),
        ("pkcs11:token=" + "a" * 5000, "longer than"),
    ],
)
def test_malformed(text: str, needle: str) -> None:
    with pytest.raises(KeyMaterialError, match=needle):
        Pkcs11Uri.parse(text)


def test_pin_value_never_shown() -> None:
    secret = "s3cr3t-PIN"
    text = f"pkcs11:token=t;object=o?pin-value={secret}&module-path=/m.so"
    u = Pkcs11Uri.parse(text)
    assert secret not in repr(u)
    assert secret not in u.redacted()
    assert secret not in u.key_id()
    assert secret not in redact_uri(text)
    assert "pin-value=<redacted>" in redact_uri(text)
    assert secret in str(u)  # the full form is available to the code that must refuse it
    with pytest.raises(KeyMaterialError) as ei:
        Pkcs11Uri.parse(f"pkcs11:token=t;colour=red?pin-value={secret}")
    assert secret not in str(ei.value)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=150)
@given(
    token=st.none() | _text,
    obj=st.none() | _text,
    type_=st.none() | st.sampled_from(OBJECT_TYPES),
    id_=st.none() | st.binary(max_size=12),
    slot=st.none() | st.integers(min_value=0, max_value=2**32),
    module=st.none() | _text,
    pin_source=st.none() | _text,
)
def test_format_parse_round_trip(
    token: str | None,
    obj: str | None,
    type_: str | None,
    id_: bytes | None,
    slot: int | None,
    module: str | None,
    pin_source: str | None,
) -> None:
    u = Pkcs11Uri(token=token, object=obj, type=type_, id=id_, slot_id=slot, module_path=module, pin_source=pin_source)  # type: ignore[arg-type]
    assert Pkcs11Uri.parse(str(u)) == u
    assert Pkcs11Uri.parse(u.key_id()).module_path is None


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_parse_never_crashes(text: str) -> None:
    try:
        u = Pkcs11Uri.parse("pkcs11:" + text)
    except KeyMaterialError:
        return
    assert Pkcs11Uri.parse(str(u)) == u


def test_object_type_is_an_enum() -> None:
    from medfw.crypto.uri import ObjectType

    uri = Pkcs11Uri.parse("pkcs11:token=t;object=k;type=secret-key")
    assert uri.type is ObjectType.SECRET_KEY
    assert "type=secret-key" in str(uri)
    assert OBJECT_TYPES == ("public", "private", "cert", "secret-key", "data")
    with pytest.raises(KeyMaterialError, match="is not one of"):
        Pkcs11Uri.parse("pkcs11:token=t;type=secret")
    assert Pkcs11Uri(type="cert").type is ObjectType.CERT  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid ObjectType"):
        Pkcs11Uri(type="certificate")  # type: ignore[arg-type]
