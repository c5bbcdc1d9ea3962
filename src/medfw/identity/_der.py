"""Just enough DER to re-assemble an X.509 structure signed by an external key (a PKCS#11 token).

pyca/cryptography builds and signs certificates only with in-memory private keys. A CA key that lives in a token is
used this way: the structure is built and signed once with a throw-away key of the same algorithm (so that the
``signatureAlgorithm`` inside the to-be-signed part is right), then the to-be-signed bytes are signed by the real
key and the outer ``SEQUENCE { tbs, signatureAlgorithm, BIT STRING signature }`` is written again.
"""

from __future__ import annotations

from medfw.identity.errors import IdentityError

__all__ = ["outer_parts", "reassemble"]

_SEQUENCE = 0x30
_BIT_STRING = 0x03


def _read_tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Return (tag, start of content, end of content) of the TLV at ``pos``."""
    if pos + 2 > len(data):
        raise IdentityError("truncated DER", field=offset_hint(pos))
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise IdentityError("bad DER length", field=offset_hint(pos))
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise IdentityError("DER value runs past the end", field=offset_hint(pos))
    return tag, pos, pos + length


def offset_hint(pos: int) -> str:
    """The field text naming a DER offset."""
    return f"der@{pos}"


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def outer_parts(der: bytes) -> tuple[bytes, bytes]:
    """Split a signed structure into (tbs TLV, signatureAlgorithm TLV)."""
    tag, start, end = _read_tlv(der, 0)
    if tag != _SEQUENCE or end != len(der):
        raise IdentityError("not a DER SEQUENCE")
    t1, _s1, e1 = _read_tlv(der, start)
    t2, _s2, e2 = _read_tlv(der, e1)
    if t1 != _SEQUENCE or t2 != _SEQUENCE:
        raise IdentityError("signed structure does not start with two SEQUENCEs")
    return der[start:e1], der[e1:e2]


def reassemble(tbs: bytes, algorithm: bytes, signature: bytes) -> bytes:
    """``SEQUENCE { tbs, algorithm, BIT STRING (0 unused bits) signature }``."""
    return _tlv(_SEQUENCE, tbs + algorithm + _tlv(_BIT_STRING, b"\x00" + signature))
