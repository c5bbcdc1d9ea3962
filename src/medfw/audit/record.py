"""The canonical bytes of one log entry (RFC 8785 JSON Canonicalization Scheme) and their strict parser.

An entry's record is the JCS serialisation of ``{"body": {...}, "epoch": E, "prev": "<hex>", "seq": N}``.
JCS sorts member names, so ``body`` always comes first and the chain fields always form the fixed tail
``,"epoch":E,"prev":"<64 hex>","seq":N}``. A verifier can therefore check the chain fields of a record by
comparing that tail byte for byte (:func:`chain_suffix`), without parsing or re-canonicalising the body:

* in a valid JSON text a double quote that is not preceded by a backslash cannot be inside a string, so the
  tail's ``"seq"``, ``"prev"`` and ``"epoch"`` are member names of the object closed by the final ``}``,
  which is the top-level object; with the fixed prefix ``{"body":{`` that object is the record itself;
* the record's hash is covered by the HMAC tag of the epoch key, so only a holder of that key can produce a
  record that passes, and the writer only produces records with :func:`encode_record`.

:func:`parse_record` is the strict, slow path used when the fields themselves are needed (show, export,
classification of a failure): it rejects duplicate members, unknown top-level members, wrong types and any
record whose bytes are not exactly the JCS form of what they parse to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from medfw.audit.merkle import leaf_hash
from medfw.errors import AuditError

__all__ = [
    "CHAIN_TAIL",
    "GENESIS_PREV",
    "RECORD_PREFIX",
    "RECORD_VERSION",
    "Record",
    "chain_suffix",
    "encode_record",
    "entry_hash",
    "parse_record",
]

RECORD_VERSION = 1
GENESIS_PREV = "0" * 64
RECORD_PREFIX = b'{"body":{'
#: the tail every record ends with, formatted with ``(epoch, prev hex, seq)``: see :func:`chain_suffix`
CHAIN_TAIL = b',"epoch":%d,"prev":"%b","seq":%d}'
_TOP_LEVEL = frozenset({"body", "epoch", "prev", "seq"})
_HEX = frozenset("0123456789abcdef")


class Record(NamedTuple):
    """A parsed entry record (a named tuple: the verifier's modules stay clear of :mod:`dataclasses`).

    Attributes:
        seq: the entry's sequence number (0 for the first entry of a log).
        epoch: the sealing-key epoch the entry claims.
        prev: hex SHA-256 of the previous entry's record (64 zeros for the first entry).
        body: the event fields (``type``, ``outcome``, ``ts``, ``mono_ns``, ``boot_id``, …).
        raw: the canonical bytes the record was parsed from.
    """

    seq: int
    epoch: int
    prev: str
    body: Mapping[str, Any]
    raw: bytes

    @property
    def type(self) -> str:
        """The event type."""
        return str(self.body.get("type", ""))

    @property
    def ts(self) -> str:
        """The UTC timestamp (RFC 3339)."""
        return str(self.body.get("ts", ""))


def entry_hash(raw: bytes) -> bytes:
    """Return the entry hash: ``SHA-256(0x00 || record)``, which is also the record's RFC 9162 Merkle leaf hash.

    Using the leaf hash as the chain hash means the hash chain, the HMAC tags and the Merkle tree all commit
    to the same 32 bytes per entry, and verification hashes each record once.
    """
    return leaf_hash(raw)


def chain_suffix(epoch: int, prev_hex: bytes, seq: int) -> bytes:
    """Return the exact tail every record with these chain fields ends with (see the module docstring)."""
    return CHAIN_TAIL % (epoch, prev_hex, seq)


def encode_record(body: Mapping[str, Any], *, seq: int, epoch: int, prev: str) -> bytes:
    """Return the canonical bytes of a record.

    Raises:
        AuditError: the body holds something JSON cannot carry exactly (non-string keys, NaN, integers
            beyond ±2^53, bytes, …).
    """
    import rfc8785  # noqa: PLC0415 - writers and the slow path only: the verifier's scan compares bytes

    try:
        raw: bytes = rfc8785.dumps({"body": dict(body), "epoch": epoch, "prev": prev, "seq": seq})
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise AuditError(f"event cannot be canonicalised as JSON: {e}", field="data") from e
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate member {k!r}")
        out[k] = v
    return out


def parse_record(raw: bytes) -> Record:
    """Parse and strictly validate a record.

    Raises:
        AuditError: the bytes are not a canonical medfw audit record.
    """
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise AuditError(f"record is not valid JSON: {e}", field="record") from e
    if not isinstance(obj, dict) or set(obj) != _TOP_LEVEL:
        raise AuditError("record does not have exactly the members body, epoch, prev, seq", field="record")
    body, epoch, prev, seq = obj["body"], obj["epoch"], obj["prev"], obj["seq"]
    if not isinstance(body, dict):
        raise AuditError("record body is not an object", field="body")
    for name, value in (("epoch", epoch), ("seq", seq)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AuditError(f"record {name} is not a non-negative integer", field=name)
    if not isinstance(prev, str) or len(prev) != 64 or not set(prev) <= _HEX:
        raise AuditError("record prev is not 64 lowercase hex digits", field="prev")
    import rfc8785  # noqa: PLC0415 - see encode_record

    try:
        canonical = rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as e:
        raise AuditError(f"record cannot be canonicalised: {e}", field="record") from e
    if canonical != raw:
        raise AuditError("record bytes are not in RFC 8785 canonical form", field="record")
    return Record(seq=seq, epoch=epoch, prev=prev, body=body, raw=raw)
