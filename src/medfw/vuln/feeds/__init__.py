"""Feed parsers: bytes of one feed file in, normalized records and reported skips out (pure).

Every parser raises :class:`medfw.errors.FeedError` when the file as a whole is of the wrong format or
truncated, and returns a :class:`Skip` (never silently drops) for a single record that violates its format.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from medfw.errors import FeedError

__all__ = ["CVE_ID", "FeedRecord", "ParseResult", "Skip", "load_json", "maybe_gunzip", "record_error"]

CVE_ID = re.compile(r"^CVE-\d{4}-\d{4,19}$")
_MAX_DECOMPRESSED = 1024 * 1024 * 1024


@dataclass(frozen=True)
class FeedRecord:
    """One normalized record of one source.

    Attributes:
        source: ``nvd``, ``nvd-override``, ``cve5``, ``osv``.
        record_id: id inside the source (CVE or OSV id).
        vuln_id: the vulnerability id findings carry (the CVE for an OSV record with one CVE alias).
        modified: last-modified timestamp from the feed ('' if none).
        data: normalized JSON-ready content (see :mod:`medfw.vuln.index`).
    """

    source: str
    record_id: str
    vuln_id: str
    modified: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Skip:
    """A record that was not imported, and why."""

    record_id: str
    reason: str
    path: str = ""


@dataclass
class ParseResult:
    """What one feed file yielded."""

    records: list[FeedRecord] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)


class RecordError(ValueError):
    """A single record violates its format (the record is skipped, with this message)."""


def record_error(message: str) -> RecordError:
    """Return a :class:`RecordError` (parsers raise it inside a record, the caller turns it into a skip)."""
    return RecordError(message)


def maybe_gunzip(data: bytes, path: str, source: str = "feed") -> bytes:
    """Decompress gzip data (by magic bytes), bounded; return other data unchanged.

    Raises:
        FeedError: the gzip stream is truncated or corrupt, or decompresses beyond 1 GiB (the message names
            ``source``).
    """
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        out = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise FeedError(f"{source}: gzip stream is corrupt or truncated: {e}", path=path) from e
    if len(out) > _MAX_DECOMPRESSED:
        raise FeedError(f"{source}: decompressed feed is larger than 1 GiB", path=path)
    return out


def load_json(data: bytes, path: str, source: str = "feed") -> Any:
    """Parse JSON, naming the byte offset of a syntax error (a truncated file shows up here).

    Raises:
        FeedError: not UTF-8 JSON (the message names ``source``).
    """
    try:  # the fast path; the slow one below finds the offset of what is wrong
        return orjson.loads(data[3:] if data[:3] == b"\xef\xbb\xbf" else data)
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise FeedError(f"{source} is not UTF-8 text", path=path, offset=e.start) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        offset = len(text[: e.pos].encode("utf-8"))
        raise FeedError(f"{source} is not valid JSON (truncated?): {e.msg}", path=path, offset=offset) from e
