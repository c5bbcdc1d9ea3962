"""Version ordering for embedded C components (pure).

Generic version libraries order C releases wrongly (OpenSSL ``1.1.1w`` below ``1.1.1``, ``1.2.12.1`` not above
``1.2.12``, ``1.10`` below ``1.9``). This comparator follows the libversion model:

* a version is split into numeric and alphabetic runs; ``.``, ``-``, ``_``, ``+`` and ``~`` separate them;
* a leading tag prefix (``v``, ``V``, ``R``, ``curl-``, ``release-``) is dropped: ``v5.6.0`` = ``5.6.0``,
  ``R0.16`` = ``0.16``, ``curl-7_88_1`` = ``7.88.1``;
* a single letter run glued to a number and not followed by a number is a *letter release* that sorts after the
  number: ``1.1.1 < 1.1.1a < 1.1.1w < 1.1.1za < 1.1.2``, ``9 < 9e``;
* other alphabetic runs are pre-releases (``1.0rc1 < 1.0``), except post-release words (``p``, ``pl``, ``patch``,
  ``post``) which sort after, and neutral words (``stable``, ``release``, ``final``, ``ga``) which are ignored;
* ``x`` as a whole part (``3.x``) is a wildcard, not a version, and is rejected;
* missing trailing parts count as zero: ``7.7 == 7.7.0``, while ``1.2.12.1 > 1.2.12``.

Each part gets a rank: pre-release < zero < post-release < non-zero number. ``*`` (ANY) and ``-`` (NA) are not
versions: :func:`parse_version` rejects them.

:func:`version_key` turns a version into bytes that sort (bytewise, as SQLite and PostgreSQL compare BLOB/bytea
values) exactly as :func:`compare_versions` orders the versions, so bounds can be stored pre-normalised at import.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Version", "compare_versions", "is_version", "parse_version", "version_key"]

_PRE, _ZERO, _POST, _NONZERO = 0, 1, 2, 3
_PRE_WORDS = frozenset({"alpha", "a", "beta", "b", "pre", "rc", "dev", "snapshot", "cvs", "preview", "test"})
_POST_WORDS = frozenset({"p", "pl", "patch", "post", "errata"})
_NEUTRAL_WORDS = frozenset({"stable", "release", "final", "ga"})
_PREFIX = re.compile(r"^(?:[a-z]+[-_]?)(?=\d)")
_TOKEN = re.compile(r"\d+|[a-z]+")
_VALID = re.compile(r"^[0-9a-z.\-_+~]+$")
_MAX_LEN = 128

Part = tuple[int, int, str]


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A parsed version; compares with ``<``/``==`` by the rules in the module docstring.

    Attributes:
        text: the original string.
        parts: the ranked parts ``(rank, number, letters)``, trailing zeros removed.
    """

    text: str
    parts: tuple[Part, ...]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __lt__(self, other: Version) -> bool:
        return _cmp_parts(self.parts, other.parts) < 0

    def __str__(self) -> str:
        return self.text


def _cmp_parts(a: tuple[Part, ...], b: tuple[Part, ...]) -> int:
    filler: Part = (_ZERO, 0, "")
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else filler
        y = b[i] if i < len(b) else filler
        if x != y:
            return -1 if x < y else 1
    return 0


def parse_version(text: str) -> Version:
    """Parse ``text`` into a :class:`Version`.

    Raises:
        ValueError: ``text`` is empty, too long, ``*``/``-``, or holds characters no version has.
    """
    return _parse_cached(text)


@functools.lru_cache(maxsize=65536)
def _parse_cached(text: str) -> Version:
    raw = text.strip().lower()
    if raw in {"", "*", "-"} or len(raw) > _MAX_LEN or not _VALID.match(raw):
        raise ValueError(f"not a version: {text!r}")
    raw = _PREFIX.sub("", raw, count=1)
    if not raw or not raw[0].isdigit():
        raise ValueError(f"not a version: {text!r}")
    parts: list[Part] = []
    for m in _TOKEN.finditer(raw):
        tok = m.group(0)
        if tok.isdigit():
            n = int(tok)
            parts.append((_NONZERO, n, "") if n else (_ZERO, 0, ""))
            continue
        glued = m.start() > 0 and raw[m.start() - 1].isdigit()
        followed_by_digit = m.end() < len(raw) and raw[m.end()].isdigit()
        if tok in _NEUTRAL_WORDS:
            continue
        if tok == "x" and not glued:
            raise ValueError(f"not a version (wildcard part): {text!r}")
        if tok in _POST_WORDS:
            parts.append((_POST, 0, tok))
        elif glued and not followed_by_digit and (len(tok) <= 2 or tok not in _PRE_WORDS):
            # OpenSSL/libjpeg letter releases: 1.1.1w, 1.0.2zj, 9e
            parts.append((_POST, 0, tok))
        else:
            parts.append((_PRE, 0, tok))
    while parts and parts[-1] == (_ZERO, 0, ""):
        parts.pop()
    return Version(text, tuple(parts))


def is_version(text: str) -> bool:
    """Return whether ``text`` parses as a version."""
    try:
        parse_version(text)
    except ValueError:
        return False
    return True


def compare_versions(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` sorts before, equal to or after ``b``.

    Raises:
        ValueError: either string is not a version.
    """
    return _cmp_parts(parse_version(a).parts, parse_version(b).parts)


# version_key: one code per part, chosen so bytewise order = _cmp_parts order. A zero part compares with the
# implicit zero padding of a shorter version only through the first non-zero part after it, so it is coded by
# that part's side of zero (below or above); the end of the version codes the padding itself.
_K_PRE, _K_ZERO_BELOW, _K_END, _K_ZERO_ABOVE, _K_POST, _K_NUM = b"\x01", b"\x02", b"\x03", b"\x04", b"\x05", b"\x06"


def _key_bytes(parts: tuple[Part, ...]) -> bytes:
    out: list[bytes] = []
    above = True  # the side of zero of the next non-zero part (none after the last part: trailing zeros are cut)
    for rank, number, letters in reversed(parts):
        if rank == _ZERO:
            out.append(_K_ZERO_ABOVE if above else _K_ZERO_BELOW)
            continue
        above = rank != _PRE
        if rank == _NONZERO:
            digits = number.to_bytes((number.bit_length() + 7) // 8, "big")
            out.append(_K_NUM + bytes([len(digits)]) + digits)
        else:
            out.append((_K_PRE if rank == _PRE else _K_POST) + letters.encode("ascii") + b"\x00")
    out.reverse()
    out.append(_K_END)
    return b"".join(out)


@functools.lru_cache(maxsize=65536)
def version_key(text: str) -> bytes:
    """Return bytes whose bytewise order is the order of :func:`compare_versions` (equal bytes = equal versions).

    Raises:
        ValueError: ``text`` is not a version.
    """
    return _key_bytes(parse_version(text).parts)
