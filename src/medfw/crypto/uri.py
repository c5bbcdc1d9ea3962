"""PKCS#11 URIs (RFC 7512): parse, format and redact ``pkcs11:token=…;object=…?module-path=…``.

Contract:

* :meth:`Pkcs11Uri.parse` is the only way from text to a URI object. It is strict and fails closed: unknown
  attributes (other than vendor ``x-`` ones), repeated attributes, bad percent-encoding, an unknown ``type``,
  a non-numeric ``slot-id`` and a malformed ``library-version`` are all :class:`~medfw.errors.KeyMaterialError`.
* Attribute values are percent-decoded: text attributes as UTF-8, ``id`` as raw bytes (``id=%01%02``).
* ``pin-value`` is parsed (so that it can be refused by callers with a clear message) but never shown:
  it is excluded from ``repr()``, from :meth:`Pkcs11Uri.key_id` and from :meth:`Pkcs11Uri.redacted`, and
  every error raised here names the URI only through :func:`redact_uri`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import quote

from medfw.errors import KeyMaterialError

__all__ = ["OBJECT_TYPES", "ObjectType", "Pkcs11Uri", "redact_uri"]


class ObjectType(enum.StrEnum):
    """The ``type`` path attribute of a PKCS#11 URI (RFC 7512 §2.3)."""

    PUBLIC = "public"
    PRIVATE = "private"
    CERT = "cert"
    SECRET_KEY = "secret-key"  # noqa: S105 - the PKCS#11 object class, not a secret
    DATA = "data"


#: the values of :class:`ObjectType`, in order (for messages)
OBJECT_TYPES: tuple[str, ...] = tuple(ObjectType)

SCHEME = "pkcs11:"
MAX_URI_LENGTH = 4096

# path attribute name -> dataclass field (RFC 7512 §2.3, plus the slot attributes of RFC 7512 erratum/p11-kit)
_PATH_ATTRS: dict[str, str] = {
    "token": "token",
    "manufacturer": "manufacturer",
    "serial": "serial",
    "model": "model",
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "object": "object",
    "type": "type",
    "id": "id",
    "slot-description": "slot_description",
    "slot-manufacturer": "slot_manufacturer",
    "slot-id": "slot_id",
}
_QUERY_ATTRS: dict[str, str] = {
    "pin-source": "pin_source",
    "pin-value": "pin_value",
    "module-name": "module_name",
    "module-path": "module_path",
}
# RFC 3986 pchar minus the characters RFC 7512 reserves as separators (";" in the path, "&" in the query),
# plus "/" and "?" which are allowed in query values.
_SAFE_PATH = "-._~!$'()*+,=:@"
_SAFE_QUERY = "-._~!$'()*+,=:@/?;"
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_PIN_VALUE = re.compile(r"(pin-value=)[^&;#]*", re.IGNORECASE)
_ATTR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VERSION = re.compile(r"\d+(\.\d+)?")


def redact_uri(text: str) -> str:
    """Return ``text`` with any ``pin-value=…`` replaced by ``pin-value=<redacted>`` (safe for errors and logs)."""
    return _PIN_VALUE.sub(r"\1<redacted>", text)


def _pct_decode(raw: str, *, name: str, uri: str) -> bytes:
    """Percent-decode one attribute value to bytes; reject stray ``%`` and non-ASCII literal characters."""
    out = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "%":
            m = _PCT.match(raw, i)
            if m is None:
                raise KeyMaterialError(
                    f"bad percent-encoding in PKCS#11 URI attribute {name!r}", path=redact_uri(uri), field=name
                )
            out.append(int(m.group(1), 16))
            i += 3
            continue
        if ord(ch) < 0x21 or ord(ch) > 0x7E:
            raise KeyMaterialError(
                f"character {ch!r} must be percent-encoded in PKCS#11 URI attribute {name!r}",
                path=redact_uri(uri),
                field=name,
            )
        out.append(ord(ch))
        i += 1
    return bytes(out)


def _text(value: bytes, *, name: str, uri: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyMaterialError(
            f"PKCS#11 URI attribute {name!r} is not UTF-8", path=redact_uri(uri), field=name
        ) from None


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed RFC 7512 PKCS#11 URI. All attributes are optional; ``None`` means "not given".

    Build one with :meth:`parse`; :meth:`__str__` formats it back (attributes in RFC order, values
    percent-encoded where needed), so ``Pkcs11Uri.parse(str(u)) == u``.
    """

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    object: str | None = None
    type: ObjectType | None = None
    id: bytes | None = None
    slot_description: str | None = None
    slot_manufacturer: str | None = None
    slot_id: int | None = None
    pin_source: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    module_name: str | None = None
    module_path: str | None = None
    vendor_path: tuple[tuple[str, str], ...] = ()
    vendor_query: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.type is not None:
            object.__setattr__(self, "type", ObjectType(self.type))

    @classmethod
    def parse(cls, text: str) -> Pkcs11Uri:
        """Parse a ``pkcs11:`` URI.

        Raises:
            KeyMaterialError: not a PKCS#11 URI, or malformed (the message names the attribute; a PIN in the
                URI is never echoed).
        """
        if len(text) > MAX_URI_LENGTH:
            raise KeyMaterialError(f"PKCS#11 URI is longer than {MAX_URI_LENGTH} characters")
        if text[: len(SCHEME)].lower() != SCHEME:
            raise KeyMaterialError("not a PKCS#11 URI (expected 'pkcs11:')", path=redact_uri(text))
        body = text[len(SCHEME) :]
        if "#" in body:
            raise KeyMaterialError("a PKCS#11 URI has no fragment ('#')", path=redact_uri(text))
        path, _, query = body.partition("?")
        values: dict[str, object] = {}
        vendor_path: list[tuple[str, str]] = []
        vendor_query: list[tuple[str, str]] = []
        seen: set[str] = set()
        for part, sep, known, vendor in (
            (path, ";", _PATH_ATTRS, vendor_path),
            (query, "&", _QUERY_ATTRS, vendor_query),
        ):
            if not part:
                continue
            for item in part.split(sep):
                name, eq, raw = item.partition("=")
                if not eq or not _ATTR_NAME.fullmatch(name):
                    raise KeyMaterialError(
                        f"malformed PKCS#11 URI attribute {name[:40]!r} (expected name=value)", path=redact_uri(text)
                    )
                if name in seen:
                    raise KeyMaterialError(
                        f"PKCS#11 URI attribute {name!r} appears more than once", path=redact_uri(text), field=name
                    )
                seen.add(name)
                decoded = _pct_decode(raw, name=name, uri=text)
                if name.startswith("x-"):
                    vendor.append((name, _text(decoded, name=name, uri=text)))
                    continue
                if name not in known:
                    where = "path" if sep == ";" else "query"
                    raise KeyMaterialError(
                        f"unknown PKCS#11 URI {where} attribute {name!r}", path=redact_uri(text), field=name
                    )
                values[known[name]] = decoded if name == "id" else _text(decoded, name=name, uri=text)
        type_ = values.get("type")
        if type_ is not None and type_ not in OBJECT_TYPES:
            raise KeyMaterialError(
                f"PKCS#11 URI type {type_!r} is not one of {', '.join(OBJECT_TYPES)}",
                path=redact_uri(text),
                field="type",
            )
        slot = values.pop("slot_id", None)
        if slot is not None:
            if not isinstance(slot, str) or not slot.isdigit() or not slot.isascii():
                raise KeyMaterialError(
                    "PKCS#11 URI slot-id must be a decimal number", path=redact_uri(text), field="slot-id"
                )
            values["slot_id"] = int(slot)
        version = values.get("library_version")
        if version is not None and not _VERSION.fullmatch(str(version)):
            raise KeyMaterialError(
                "PKCS#11 URI library-version must be M or M.N", path=redact_uri(text), field="library-version"
            )
        return cls(
            token=cast("str | None", values.get("token")),
            manufacturer=cast("str | None", values.get("manufacturer")),
            serial=cast("str | None", values.get("serial")),
            model=cast("str | None", values.get("model")),
            library_manufacturer=cast("str | None", values.get("library_manufacturer")),
            library_description=cast("str | None", values.get("library_description")),
            library_version=cast("str | None", version),
            object=cast("str | None", values.get("object")),
            type=ObjectType(str(type_)) if type_ is not None else None,
            id=cast("bytes | None", values.get("id")),
            slot_description=cast("str | None", values.get("slot_description")),
            slot_manufacturer=cast("str | None", values.get("slot_manufacturer")),
            slot_id=cast("int | None", values.get("slot_id")),
            pin_source=cast("str | None", values.get("pin_source")),
            pin_value=cast("str | None", values.get("pin_value")),
            module_name=cast("str | None", values.get("module_name")),
            module_path=cast("str | None", values.get("module_path")),
            vendor_path=tuple(vendor_path),
            vendor_query=tuple(vendor_query),
        )

    def _path_items(self) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for name, attr in _PATH_ATTRS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if name == "id":
                items.append((name, "".join(f"%{b:02X}" for b in value)))
            else:
                items.append((name, quote(str(value), safe=_SAFE_PATH)))
        items.extend((name, quote(value, safe=_SAFE_PATH)) for name, value in self.vendor_path)
        return items

    def _query_items(self, *, with_pin: bool) -> list[tuple[str, str]]:
        items: list[tuple[str, str]] = []
        for name, attr in _QUERY_ATTRS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if name == "pin-value" and not with_pin:
                value = "<redacted>"
                items.append((name, value))
                continue
            items.append((name, quote(value, safe=_SAFE_QUERY)))
        items.extend((name, quote(value, safe=_SAFE_QUERY)) for name, value in self.vendor_query)
        return items

    def _format(self, *, with_pin: bool, with_query: bool = True) -> str:
        path = ";".join(f"{k}={v}" for k, v in self._path_items())
        query = "&".join(f"{k}={v}" for k, v in self._query_items(with_pin=with_pin)) if with_query else ""
        return f"{SCHEME}{path}" + (f"?{query}" if query else "")

    def __str__(self) -> str:
        """The full URI, including a ``pin-value`` if one was given (do not log this; use :meth:`redacted`)."""
        return self._format(with_pin=True)

    def redacted(self) -> str:
        """The full URI with any ``pin-value`` replaced by ``<redacted>``."""
        return self._format(with_pin=False)

    def key_id(self) -> str:
        """The path part only (which token and object): a stable, non-secret name for logs and audit records."""
        return self._format(with_pin=False, with_query=False)

    def object_name(self) -> str:
        """Describe the object for error messages: ``object 'label' id 01ab`` (or ``<any object>``)."""
        parts: list[str] = []
        if self.object is not None:
            parts.append(f"object {self.object!r}")
        if self.id is not None:
            parts.append(f"id {self.id.hex()}")
        return " ".join(parts) if parts else "<any object>"

    def token_name(self) -> str:
        """Describe the token for error messages: ``token 'label'`` (or by serial / slot)."""
        if self.token is not None:
            return f"token {self.token!r}"
        if self.serial is not None:
            return f"token serial {self.serial!r}"
        if self.slot_id is not None:
            return f"token in slot {self.slot_id}"
        return "<any token>"
