"""Verify an MCUboot image the way bootutil does, failing closed.

Order of checks (``bootutil_img_validate``): layout (:func:`parse_image`), exactly one hash TLV whose value
equals the hash of header + body + protected TLVs, then each signature TLV is paired with the KEYHASH (or
PUBKEY) TLV before it; a signature counts only if that key is one of the trusted keys. At least one trusted
signature must verify, and a trusted key's signature that does not verify is an error even if another one does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medfw.crypto.keys import KeyType, PublicKey, key_type_of
from medfw.crypto.signer import HashName
from medfw.errors import IntegrityError, SignatureError, UsageError, VerificationError
from medfw.image.mcuboot_format import ENCRYPTED_FLAGS, TLV_TYPES, McubootImage, Tlv, parse_image
from medfw.image.mcuboot_keys import HASH_TLV, SIG_TLV, allowed_hashes, key_hash, public_key_bytes, signature_valid

__all__ = ["McubootVerification", "SignedContent", "verify_image", "verify_parsed"]

_HASH_BY_TLV: dict[int, HashName] = {v: k for k, v in HASH_TLV.items()}
_SIG_TYPES = frozenset(TLV_TYPES[n] for n in ("RSA2048_PSS", "ECDSA224", "ECDSA_SIG", "RSA3072_PSS", "ED25519"))


@dataclass(frozen=True)
class McubootVerification:
    """The result of a successful verification.

    Attributes:
        image: the parsed image.
        hash_name: the image hash algorithm.
        digest: the verified image hash.
        key_hash: KEYHASH (with ``hash_name``) of the trusted key whose signature verified.
        key_type: that key's type.
        signature_tlv: the signature TLV that verified.
        pure: whether the signature covers the image itself (SIG_PURE) rather than its digest.
    """

    image: McubootImage
    hash_name: HashName
    digest: bytes
    key_hash: bytes
    key_type: KeyType
    signature_tlv: Tlv
    pure: bool

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (hex strings for bytes)."""
        img = self.image
        hdr = img.header
        return {
            "ok": True,
            "version": str(hdr.version),
            "security_counter": img.security_counter,
            "header": {
                "load_addr": hdr.load_addr,
                "hdr_size": hdr.hdr_size,
                "protect_tlv_size": hdr.protect_tlv_size,
                "img_size": hdr.img_size,
                "flags": list(hdr.flag_names),
            },
            "hash": {"algorithm": self.hash_name, "digest": self.digest.hex()},
            "key": {"type": str(self.key_type), "key_hash": self.key_hash.hex()},
            "signature": {"tlv": self.signature_tlv.name, "offset": self.signature_tlv.offset, "pure": self.pure},
            "tlvs": [
                {"type": t.name, "offset": t.offset, "length": len(t.value), "protected": t.protected}
                for t in (*img.protected_tlvs, *img.tlvs)
            ],
            "size": img.size,
            "trailer": None
            if img.trailer is None
            else {
                "offset": img.trailer.offset,
                "max_align": img.trailer.max_align,
                "image_ok": img.trailer.image_ok,
                "confirmed": img.trailer.confirmed,
            },
        }


def _hash_tlv(image: McubootImage) -> tuple[Tlv, HashName]:
    found = [t for t in image.tlvs if t.type in _HASH_BY_TLV]
    if not found:
        raise SignatureError("image carries no hash TLV", field="TLV area", offset=image.hashed_size)
    if len(found) > 1:
        raise IntegrityError("image carries more than one hash TLV", field=found[1].name, offset=found[1].offset)
    tlv = found[0]
    name = _HASH_BY_TLV[tlv.type]
    size = hashlib.new(name).digest_size
    if len(tlv.value) != size:
        raise IntegrityError(
            f"{tlv.name} TLV is {len(tlv.value)} bytes, expected {size}", field=tlv.name, offset=tlv.offset + 2
        )
    return tlv, name


#: computes the image hash with the named algorithm, and returns the signed bytes too when ``pure`` is asked
SignedContent = Callable[[HashName, bool], tuple[bytes, bytes | None]]


def verify_image(data: bytes | bytearray | memoryview, public_keys: Sequence[PublicKey]) -> McubootVerification:
    """Verify ``data`` as an MCUboot image signed by one of ``public_keys``.

    Returns:
        the verification details; every failure raises instead.

    Raises:
        UsageError: no trusted key was given.
        KeyMaterialError: a trusted key is of a type medfw does not support.
        MalformedImageError: not an MCUboot image (magic, header) (exit 2).
        IntegrityError: the sizes or TLV areas of the image are damaged (exit 1).
        VerificationError: the image hash does not match (exit 1).
        SignatureError: no trusted key signed the image, or a trusted key's signature is bad (exit 1).
    """
    if not public_keys:
        raise UsageError("no trusted public key given")
    view = memoryview(data).cast("B")
    image = parse_image(view)

    def content(hash_name: HashName, pure: bool) -> tuple[bytes, bytes | None]:
        signed = view[: image.hashed_size]
        return hashlib.new(hash_name, signed).digest(), bytes(signed) if pure else None

    return verify_parsed(image, content, public_keys)


def verify_parsed(image: McubootImage, content: SignedContent, public_keys: Sequence[PublicKey]) -> McubootVerification:
    """Verify an already parsed image whose signed bytes ``content`` hashes (see :func:`verify_image`).

    ``content(hash_name, pure)`` must hash exactly the bytes ``image`` was parsed from, ``image.hashed_size``
    of them; it is called once.
    """
    if not public_keys:
        raise UsageError("no trusted public key given")
    hash_tlv, hash_name = _hash_tlv(image)
    pure_tlvs = [t for t in image.tlvs if t.type == TLV_TYPES["SIG_PURE"]]
    if pure_tlvs and pure_tlvs[0].value != b"\x01":
        raise IntegrityError(
            "SIG_PURE TLV must hold the single byte 0x01", field="SIG_PURE", offset=pure_tlvs[0].offset
        )
    pure = bool(pure_tlvs)
    digest, message = content(hash_name, pure)
    if not hmac.compare_digest(digest, hash_tlv.value):
        encrypted = (
            "; the ENCRYPTED flag is set and MCUboot hashes the plaintext, so an encrypted payload verifies only "
            "after decryption (images signed with imgtool --clear carry it in plaintext and verify as they are)"
            if image.header.flags & ENCRYPTED_FLAGS
            else ""
        )
        raise VerificationError(
            f"image {hash_name} does not match its {hash_tlv.name} TLV (image modified or corrupt){encrypted}",
            field=hash_tlv.name,
            offset=hash_tlv.value_offset,
        )

    trusted: list[tuple[PublicKey, KeyType, bytes, bytes]] = []
    for pk in public_keys:
        kt = key_type_of(pk)
        if hash_name in allowed_hashes(kt):
            trusted.append((pk, kt, key_hash(pk, hash_name), public_key_bytes(pk)))

    current: tuple[PublicKey, KeyType, bytes, bytes] | None = None
    key_tlv_seen: Tlv | None = None
    sig_seen = False
    verified: tuple[tuple[PublicKey, KeyType, bytes, bytes], Tlv] | None = None
    for tlv in image.tlvs:
        if tlv.type == TLV_TYPES["KEYHASH"]:
            if len(tlv.value) != len(digest):
                raise IntegrityError(
                    f"KEYHASH TLV is {len(tlv.value)} bytes, expected {len(digest)} for {hash_name}",
                    field="KEYHASH",
                    offset=tlv.offset + 2,
                )
            key_tlv_seen = tlv
            current = next((k for k in trusted if hmac.compare_digest(k[2], tlv.value)), None)
        elif tlv.type == TLV_TYPES["PUBKEY"]:
            key_tlv_seen = tlv
            current = next(
                (k for k in trusted if len(k[3]) == len(tlv.value) and hmac.compare_digest(k[3], tlv.value)), None
            )
        elif tlv.type in _SIG_TYPES:
            sig_seen = True
            if current is None:
                continue
            pk, kt, _, _ = current
            if tlv.type != SIG_TLV[kt]:
                raise SignatureError(
                    f"signature TLV {tlv.name} does not fit the trusted {kt} key", field=tlv.name, offset=tlv.offset
                )
            if pure:
                assert message is not None
                ok = kt is KeyType.ED25519 and signature_valid(pk, tlv.value, message, hash_name)
            else:
                ok = signature_valid(pk, tlv.value, digest, hash_name)
            if not ok:
                raise SignatureError(
                    f"{tlv.name} signature does not verify with the trusted {kt} key",
                    field=tlv.name,
                    offset=tlv.value_offset,
                )
            if verified is None:
                verified = (current, tlv)

    if verified is None:
        if not sig_seen:
            raise SignatureError("image is not signed (no signature TLV)", field="TLV area", offset=image.hashed_size)
        if key_tlv_seen is None:
            raise SignatureError(
                "image names no signing key (no KEYHASH or PUBKEY TLV)", field="TLV area", offset=image.hashed_size
            )
        raise SignatureError(
            f"no trusted key signed this image: its {key_tlv_seen.name} matches none of the "
            f"{len(public_keys)} given key(s)",
            field=key_tlv_seen.name,
            offset=key_tlv_seen.value_offset,
        )
    (_pk, kt, khash, _), sig_tlv = verified
    return McubootVerification(
        image=image,
        hash_name=hash_name,
        digest=digest,
        key_hash=khash,
        key_type=kt,
        signature_tlv=sig_tlv,
        pure=pure,
    )


def describe_image(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Describe an MCUboot image without trusting a key (for ``medfw image info``).

    Reports the header, TLVs, trailer and whether the stored hash matches the image; signatures are not
    checked (that needs a trusted key: :func:`verify_image`).

    Raises:
        MalformedImageError: not an MCUboot image.
        IntegrityError: the sizes or TLV areas are damaged.
    """
    view = memoryview(data).cast("B")
    img = parse_image(view)
    hdr = img.header
    hash_info: dict[str, Any] | None = None
    found = [t for t in img.tlvs if t.type in _HASH_BY_TLV]
    if len(found) == 1:
        name = _HASH_BY_TLV[found[0].type]
        digest = hashlib.new(name, view[: img.hashed_size]).digest()
        hash_info = {"algorithm": name, "digest": digest.hex(), "ok": hmac.compare_digest(digest, found[0].value)}
    keyhash = next((t.value.hex() for t in img.tlvs if t.type == TLV_TYPES["KEYHASH"]), None)
    return {
        "format": "mcuboot",
        "version": str(hdr.version),
        "security_counter": img.security_counter,
        "header": {
            "load_addr": hdr.load_addr,
            "hdr_size": hdr.hdr_size,
            "protect_tlv_size": hdr.protect_tlv_size,
            "img_size": hdr.img_size,
            "flags": list(hdr.flag_names),
        },
        "encrypted_flag": bool(hdr.flags & ENCRYPTED_FLAGS),
        "hash": hash_info,
        "key_hash": keyhash,
        "signatures": [t.name for t in img.tlvs if t.type in _SIG_TYPES],
        "tlvs": [
            {"type": t.name, "offset": t.offset, "length": len(t.value), "protected": t.protected}
            for t in (*img.protected_tlvs, *img.tlvs)
        ],
        "size": img.size,
        "trailer": None
        if img.trailer is None
        else {
            "offset": img.trailer.offset,
            "max_align": img.trailer.max_align,
            "image_ok": img.trailer.image_ok,
            "confirmed": img.trailer.confirmed,
        },
    }
