"""PKCS#11 token plumbing for :mod:`medfw.crypto.pkcs11`: module and PIN resolution (never from argv), the token
a URI names, sessions, object search, key kinds and error translation that names the token and object."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pkcs11
from pkcs11 import Attribute, Mechanism, ObjectClass, TokenFlag
from pkcs11 import KeyType as P11KeyType

from medfw.crypto import pkcs11_keys
from medfw.crypto.keys import KeyType, PublicKey, key_type_of
from medfw.crypto.uri import Pkcs11Uri
from medfw.errors import HSMError, KeyMaterialError

ENV_MODULE: Final = "MEDFW_PKCS11_MODULE"
ENV_PIN: Final = "MEDFW_PKCS11_PIN"
ENV_PIN_FILE: Final = "MEDFW_PKCS11_PIN_FILE"
DEFAULT_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"
MAX_PIN_FILE: Final = 1024

_CLASS_NAMES: dict[int, str] = {
    ObjectClass.PUBLIC_KEY: "public key",
    ObjectClass.PRIVATE_KEY: "private key",
    ObjectClass.SECRET_KEY: "secret key",
    ObjectClass.CERTIFICATE: "certificate",
    ObjectClass.DATA: "data object",
}

__all__ = [
    "DEFAULT_MODULE",
    "ENV_MODULE",
    "ENV_PIN",
    "ENV_PIN_FILE",
    "MAX_PIN_FILE",
]


def _mech_name(mechanism: Mechanism) -> str:
    return f"CKM_{mechanism.name}"


class _Pin:
    """A PIN held in memory only; its ``repr``/``str`` never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    @property
    def value(self) -> str | None:
        return self._value

    def scrub(self, text: str) -> str:
        """Remove the PIN from ``text`` (defence in depth for messages that quote a library's error)."""
        if self._value:
            return text.replace(self._value, "<redacted>")
        return text

    def __repr__(self) -> str:
        return "_Pin(<redacted>)" if self._value else "_Pin(None)"

    __str__ = __repr__


@dataclass(frozen=True)
class _Target:
    """Where a key lives: the parsed URI, the module path and the PIN (for one or more operations)."""

    uri: Pkcs11Uri
    module: str
    pin: _Pin

    @property
    def key_id(self) -> str:
        return self.uri.key_id()

    def where(self, mechanism: Mechanism | None = None) -> str:
        """``token 't', object 'o'[, mechanism CKM_X]`` for error messages."""
        text = f"{self.uri.token_name()}, {self.uri.object_name()}"
        return f"{text}, mechanism {_mech_name(mechanism)}" if mechanism is not None else text

    def error(self, message: str, mechanism: Mechanism | None = None) -> HSMError:
        return HSMError(self.pin.scrub(f"{message} ({self.where(mechanism)})"), path=self.key_id)


def _resolve_module(uri: Pkcs11Uri) -> str:
    if uri.module_name is not None and uri.module_path is None:
        raise KeyMaterialError(
            "PKCS#11 URI module-name is not supported: give the library file with module-path or $MEDFW_PKCS11_MODULE",
            path=uri.key_id(),
            field="module-name",
        )
    return uri.module_path or os.environ.get(ENV_MODULE) or DEFAULT_MODULE


def _read_pin_file(path: str, *, key_id: str) -> str:
    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HSMError("PIN file is not a regular file", path=path)
        if st.st_mode & stat.S_IROTH:
            raise HSMError(
                f"PIN file is readable by all users (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 it", path=path
            )
        with p.open("rb") as fh:
            data = fh.read(MAX_PIN_FILE + 1)
    except FileNotFoundError:
        raise HSMError(f"PIN file not found (for {key_id})", path=path) from None
    except OSError as e:
        raise HSMError(f"cannot read PIN file: {e.strerror}", path=path) from None
    if len(data) > MAX_PIN_FILE:
        raise HSMError(f"PIN file is larger than {MAX_PIN_FILE} bytes", path=path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HSMError("PIN file is not UTF-8 text", path=path) from None
    pin = text.removesuffix("\n").removesuffix("\r")
    if not pin:
        raise HSMError("PIN file is empty", path=path)
    return pin


def _resolve_pin(uri: Pkcs11Uri) -> _Pin:
    """Find the PIN: ``pin-source`` in the URI, then ``$MEDFW_PKCS11_PIN_FILE``, then ``$MEDFW_PKCS11_PIN``.

    Returns a ``_Pin(None)`` when no source is configured (a token with a PIN pad, or a public-only operation).
    """
    if uri.pin_value is not None:
        raise KeyMaterialError(
            "a PIN in the key URI (pin-value) is refused: use pin-source=file:PATH, $MEDFW_PKCS11_PIN_FILE "
            "or $MEDFW_PKCS11_PIN",
            path=uri.key_id(),
            field="pin-value",
        )
    if uri.pin_source is not None:
        source = uri.pin_source
        if source.startswith("file://"):
            source = source.removeprefix("file://")
        elif source.startswith("file:"):
            source = source.removeprefix("file:")
        if not source.startswith("/"):
            raise KeyMaterialError(
                "pin-source must be file:/absolute/path or an absolute path", path=uri.key_id(), field="pin-source"
            )
        return _Pin(_read_pin_file(source, key_id=uri.key_id()))
    pin_file = os.environ.get(ENV_PIN_FILE)
    if pin_file:
        return _Pin(_read_pin_file(pin_file, key_id=uri.key_id()))
    pin = os.environ.get(ENV_PIN)
    return _Pin(pin if pin else None)


def _target(uri: str | Pkcs11Uri) -> _Target:
    parsed = uri if isinstance(uri, Pkcs11Uri) else Pkcs11Uri.parse(uri)
    return _Target(parsed, _resolve_module(parsed), _resolve_pin(parsed))


def _load_library(t: _Target) -> Any:
    if not Path(t.module).is_file():
        raise HSMError(
            f"PKCS#11 module {t.module} not found (set module-path in the URI or ${ENV_MODULE})", path=t.key_id
        )
    try:
        return pkcs11.lib(t.module)
    except pkcs11.PKCS11Error as e:
        raise HSMError(f"cannot load PKCS#11 module {t.module}: {type(e).__name__} {e}", path=t.key_id) from None


def _token_matches(uri: Pkcs11Uri, slot: Any, token: Any) -> bool:
    checks: tuple[tuple[str | int | None, Any], ...] = (
        (uri.token, lambda: token.label),
        (uri.serial, lambda: token.serial.decode("ascii", "replace").strip()),
        (uri.manufacturer, lambda: token.manufacturer_id),
        (uri.model, lambda: token.model),
        (uri.slot_id, lambda: slot.slot_id),
        (uri.slot_description, lambda: slot.slot_description),
        (uri.slot_manufacturer, lambda: slot.manufacturer_id),
    )
    return all(want is None or want == get() for want, get in checks)


def _library_matches(uri: Pkcs11Uri, lib: Any) -> bool:
    if uri.library_manufacturer is not None and lib.manufacturer_id != uri.library_manufacturer:
        return False
    if uri.library_description is not None and lib.library_description != uri.library_description:
        return False
    if uri.library_version is not None:
        major, _, minor = uri.library_version.partition(".")
        if lib.library_version != (int(major), int(minor or 0)):
            return False
    return True


def _find_token(t: _Target) -> Any:
    lib = _load_library(t)
    if not _library_matches(t.uri, lib):
        raise t.error(f"PKCS#11 module {t.module} does not match the URI's library attributes")
    try:
        found = [
            tok
            for slot in lib.get_slots(token_present=True)
            for tok in [slot.get_token()]
            if tok.flags & TokenFlag.TOKEN_INITIALIZED and _token_matches(t.uri, slot, tok)
        ]
    except pkcs11.PKCS11Error as e:
        raise t.error(f"cannot list the tokens of {t.module}: {type(e).__name__}") from None
    if not found:
        raise t.error(f"no such token in PKCS#11 module {t.module}")
    if len(found) > 1:
        raise t.error(f"{len(found)} tokens match; name one with token=, serial= or slot-id=")
    return found[0]


def _translate(t: _Target, e: pkcs11.PKCS11Error, op: str, mechanism: Mechanism | None = None) -> HSMError:
    """Map a python-pkcs11 exception to an HSMError naming the token, object and mechanism (never the PIN)."""
    name = type(e).__name__
    if isinstance(e, pkcs11.PinIncorrect):
        return t.error("wrong PIN (CKR_PIN_INCORRECT)")
    if isinstance(e, pkcs11.PinLocked):
        return t.error("the user PIN is locked (CKR_PIN_LOCKED)")
    if isinstance(e, pkcs11.PinExpired):
        return t.error("the user PIN has expired (CKR_PIN_EXPIRED)")
    if isinstance(e, pkcs11.PinLenRange | pkcs11.PinInvalid):
        return t.error("the PIN is not valid for this token (wrong length or characters)")
    if isinstance(e, pkcs11.UserPinNotInitialized):
        return t.error("the token's user PIN is not initialised")
    if isinstance(e, pkcs11.MechanismInvalid | pkcs11.FunctionNotSupported):
        return t.error(f"{op}: the token does not support the mechanism", mechanism)
    if isinstance(e, pkcs11.MechanismParamInvalid):
        return t.error(f"{op}: the token rejected the mechanism parameters", mechanism)
    if isinstance(e, pkcs11.TokenNotPresent | pkcs11.DeviceRemoved):
        return t.error(f"{op}: the token was removed")
    return t.error(f"{op} failed: {name}", mechanism)


@contextlib.contextmanager
def _session(t: _Target, token: Any, *, rw: bool = False, login: bool = True) -> Iterator[Any]:
    """Open a session on ``token`` (logged in as the user when ``login``), mapping every token error."""
    pin: object | None = None
    if login:
        if t.pin.value is not None:
            pin = t.pin.value
        elif token.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH:
            pin = pkcs11.PROTECTED_AUTH
        else:
            raise t.error(f"no PIN given: set ${ENV_PIN}, ${ENV_PIN_FILE} or pin-source=file:PATH in the URI")
    try:
        session = token.open(rw=rw, user_pin=pin)
    except pkcs11.PKCS11Error as e:
        raise _translate(t, e, "login") from None
    try:
        yield session
    except pkcs11.PKCS11Error as e:
        raise _translate(t, e, "token operation") from None
    finally:
        with contextlib.suppress(pkcs11.PKCS11Error):
            session.close()


def _search(session: Any, uri: Pkcs11Uri, object_class: ObjectClass | None, limit: int = 3) -> list[Any]:
    attrs: dict[Attribute, Any] = {}
    if object_class is not None:
        attrs[Attribute.CLASS] = object_class
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    found: list[Any] = []
    for obj in session.get_objects(attrs):
        found.append(obj)
        if len(found) >= limit:
            break
    return found


def _class_name(obj: Any) -> str:
    try:
        return _CLASS_NAMES.get(int(obj[Attribute.CLASS]), "object")
    except pkcs11.PKCS11Error:
        return "object"


def _find_one(t: _Target, session: Any, object_class: ObjectClass) -> Any:
    """Find exactly one object of ``object_class`` named by the URI, explaining near misses."""
    wanted = _CLASS_NAMES[object_class]
    found = _search(session, t.uri, object_class)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise t.error(f"several {wanted} objects match; name one with object= and/or id=")
    others = _search(session, t.uri, None)
    if others:
        kinds = sorted({_class_name(o) for o in others})
        raise t.error(f"the object is a {' / '.join(kinds)}, not a {wanted}")
    raise t.error(f"no {wanted} object with this label/id in the token")


def _check_type(t: _Target, want: str, allowed: tuple[str, ...]) -> None:
    if t.uri.type is not None and t.uri.type not in allowed:
        raise t.error(f"the URI names a {t.uri.type!r} object; {want} needs type={allowed[0]}")


def _key_kind(t: _Target, obj: Any) -> P11KeyType:
    try:
        kind = P11KeyType(int(obj[Attribute.KEY_TYPE]))
    except ValueError:
        raise t.error("the key has an unknown key type (CKA_KEY_TYPE)") from None
    if kind not in (P11KeyType.RSA, P11KeyType.EC, P11KeyType.EC_EDWARDS):
        raise t.error(f"the key is of type CKK_{kind.name}; RSA-3072, ECDSA P-256/P-384 or Ed25519 is required")
    return kind


def _public_from_objects(t: _Target, session: Any, private: Any | None) -> PublicKey:
    """Read the public key: from the public-key object, or (RSA only) from the private key's public attributes."""
    public_objs = _search(session, t.uri, ObjectClass.PUBLIC_KEY)
    if len(public_objs) > 1:
        raise t.error("several public key objects match; name one with object= and/or id=")
    source = public_objs[0] if public_objs else private
    if source is None:
        raise t.error("no public key object with this label/id in the token")
    kind = _key_kind(t, source)
    try:
        if kind is P11KeyType.RSA:
            return pkcs11_keys.rsa_public_key(source[Attribute.MODULUS], source[Attribute.PUBLIC_EXPONENT])
        if not public_objs:
            raise t.error("the token holds no public key object for this EC key (CKA_EC_POINT is on the public key)")
        params = source[Attribute.EC_PARAMS]
        point = source[Attribute.EC_POINT]
        if kind is P11KeyType.EC:
            return pkcs11_keys.ec_public_key(params, point)
        return pkcs11_keys.ed25519_public_key(params, point)
    except KeyMaterialError as e:
        raise t.error(f"wrong key: {e.message}") from None


def _check_private(t: _Target, private: Any, public: PublicKey) -> None:
    """Check the private key object agrees with the public key and may sign."""
    kind = _key_kind(t, private)
    kinds = {KeyType.RSA3072: P11KeyType.RSA, KeyType.ED25519: P11KeyType.EC_EDWARDS}
    want = kinds.get(key_type_of(public), P11KeyType.EC)
    if kind is not want:
        raise t.error(f"the private key is CKK_{kind.name} but its public key is CKK_{want.name}")
    if kind is not P11KeyType.RSA:
        try:
            pkcs11_keys.curve_from_params(private[Attribute.EC_PARAMS])
        except KeyMaterialError as e:
            raise t.error(f"wrong key: {e.message}") from None
    with contextlib.suppress(pkcs11.AttributeTypeInvalid):
        if private[Attribute.SIGN] is False:
            raise t.error("the private key may not sign (CKA_SIGN is false)")


def _require_mechanism(t: _Target, token: Any, mechanism: Mechanism) -> None:
    try:
        mechanisms = token.slot.get_mechanisms()
    except pkcs11.PKCS11Error as e:
        raise _translate(t, e, "list mechanisms", mechanism) from None
    if mechanism not in mechanisms:
        raise t.error("the token does not offer the mechanism this key needs", mechanism)
