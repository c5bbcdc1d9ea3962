"""Binary evidence: find embedded libraries and their versions in firmware images and ELF files.

Two methods:

* **String signatures** (technique ``binary-analysis``): each library embeds a version string in a known
  format (``Mbed TLS 3.5.1``, ``OpenSSL 3.0.13 30 Jan 2024``, ``deflate 1.3.1 Copyright …``). A regular
  expression per format finds it; the CPE and purl of the library are filled with the found version.
* **ELF package notes** (technique ``elf-package-note``): a ``.note.package`` section (systemd package-notes
  spec: owner ``FDO``, type ``0xcafe1a7e``, JSON payload with ``name``, ``version``, ``purl``, ``cpe``, ``license``).

The scanner works on bytes and never executes anything. It reports each (library, version) once, at its first
offset; a library with several different versions in one binary is reported once per version.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from medfw.errors import MalformedImageError
from medfw.sbom.model import Finding

__all__ = ["SIGNATURES", "Signature", "read_package_notes", "scan_binary"]

_NOTE_TYPE_FDO_PACKAGING_METADATA = 0xCAFE1A7E
_MAX_NOTE = 64 * 1024
_V3 = rb"(\d{1,3}\.\d{1,3}\.\d{1,3})"


@dataclass(frozen=True)
class Signature:
    """How to recognise one library.

    Attributes:
        library: short key (``mbedtls``).
        name: component name to report.
        patterns: byte regexes; group 1 is the version. Each starts with a literal, which lets the regex engine
            search fast (a leading ``\\b`` or alternation makes a 16 MiB scan several times slower).
        cpe: CPE template with ``{}`` for the version (``None`` when NVD has no entry).
        purl: purl template with ``{}`` for the version.
        confidence: how sure a match is (0..1).
        fallbacks: weaker patterns, tried only when no pattern matched.
        requires: a byte regex that must also occur (weak patterns such as a bare ``\\0V10.5.1\\0`` count only then).
    """

    library: str
    name: str
    patterns: tuple[bytes, ...]
    cpe: str | None
    purl: str | None
    confidence: float = 0.8
    requires: bytes | None = None
    fallbacks: tuple[bytes, ...] = ()


SIGNATURES: tuple[Signature, ...] = (
    Signature(
        "mbedtls",
        "mbedtls",
        (rb"Mbed TLS " + _V3, rb"mbed TLS " + _V3, rb"MbedTLS " + _V3),
        "cpe:2.3:a:arm:mbed_tls:{}:*:*:*:*:*:*:*",
        "pkg:github/Mbed-TLS/mbedtls@v{}",
    ),
    Signature(
        "openssl",
        "openssl",
        (rb"OpenSSL (\d\.\d{1,2}\.\d{1,2}[a-z]{0,2})(?:-[a-z]+)?(?:-fips)? {1,2}\d{1,2} [A-Z][a-z]{2} \d{4}",),
        "cpe:2.3:a:openssl:openssl:{}:*:*:*:*:*:*:*",
        "pkg:generic/openssl@{}",
        0.9,
        fallbacks=(rb"\x00OpenSSL (\d\.\d{1,2}\.\d{1,2}[a-z]{0,2})\x00",),
    ),
    Signature(
        "wolfssl",
        "wolfssl",
        (rb"wolfSSL v?" + _V3, rb"LIBWOLFSSL_VERSION_STRING[^0-9]{0,8}" + _V3),
        "cpe:2.3:a:wolfssl:wolfssl:{}:*:*:*:*:*:*:*",
        "pkg:github/wolfSSL/wolfssl@v{}-stable",
    ),
    Signature(
        "curl",
        "curl",
        (rb"libcurl/" + _V3, rb"curl " + _V3 + rb" \("),
        "cpe:2.3:a:haxx:libcurl:{}:*:*:*:*:*:*:*",
        "pkg:generic/curl@{}",
    ),
    Signature(
        "zlib",
        "zlib",
        (
            rb"deflate (\d\.\d{1,2}\.\d{1,2}(?:\.\d{1,2})?) Copyright 19\d\d-\d{4} ",
            rb"inflate (\d\.\d{1,2}\.\d{1,2}(?:\.\d{1,2})?) Copyright 19\d\d-\d{4} ",
        ),
        "cpe:2.3:a:zlib:zlib:{}:*:*:*:*:*:*:*",
        "pkg:github/madler/zlib@v{}",
        0.9,
    ),
    Signature(
        "lwip",
        "lwip",
        (rb"lwIP/" + _V3,),
        "cpe:2.3:a:lwip_project:lwip:{}:*:*:*:*:*:*:*",
        "pkg:generic/lwip@{}",
    ),
    Signature(
        "freertos",
        "freertos",
        (rb"FreeRTOS Kernel V" + _V3, rb"FreeRTOS V" + _V3),
        "cpe:2.3:o:amazon:freertos:{}:*:*:*:*:*:*:*",
        "pkg:github/FreeRTOS/FreeRTOS-Kernel@V{}",
        0.7,
        requires=b"FreeRTOS",
        fallbacks=(rb"\x00V(\d{1,2}\.\d{1,2}\.\d{1,2})\x00",),
    ),
    Signature(
        "busybox",
        "busybox",
        (rb"BusyBox v" + _V3,),
        "cpe:2.3:a:busybox:busybox:{}:*:*:*:*:*:*:*",
        "pkg:generic/busybox@{}",
        0.9,
    ),
    Signature(
        "expat",
        "expat",
        (rb"expat_" + _V3,),
        "cpe:2.3:a:libexpat_project:libexpat:{}:*:*:*:*:*:*:*",
        "pkg:generic/expat@{}",
    ),
    Signature(
        "libpng",
        "libpng",
        (rb"libpng version " + _V3,),
        "cpe:2.3:a:libpng:libpng:{}:*:*:*:*:*:*:*",
        "pkg:generic/libpng@{}",
        0.9,
    ),
    Signature(
        "sqlite",
        "sqlite",
        (rb"SQLite version " + _V3,),
        "cpe:2.3:a:sqlite:sqlite:{}:*:*:*:*:*:*:*",
        "pkg:generic/sqlite@{}",
        0.7,
        requires=rb"SQLite format 3\x00",
        fallbacks=(rb"\x00(3\.\d{1,2}\.\d{1,2})\x00",),
    ),
)

_Compiled = tuple[Signature, tuple[re.Pattern[bytes], ...], tuple[re.Pattern[bytes], ...], re.Pattern[bytes] | None]
_COMPILED: tuple[_Compiled, ...] = tuple(
    (
        s,
        tuple(re.compile(p) for p in s.patterns),
        tuple(re.compile(p) for p in s.fallbacks),
        re.compile(s.requires) if s.requires is not None else None,
    )
    for s in SIGNATURES
)


def _fill(template: str | None, version: str) -> str | None:
    if template is None:
        return None
    return template.replace("{}", version)


def _scan_signatures(data: bytes, source: str, signatures: Iterable[str] | None) -> list[Finding]:
    wanted = set(signatures) if signatures is not None else None
    found: dict[tuple[str, str], Finding] = {}
    for sig, patterns, fallbacks, requires in _COMPILED:
        if wanted is not None and sig.library not in wanted:
            continue
        if requires is not None and requires.search(data) is None:
            continue
        for group in (patterns, fallbacks):
            if any(k[0] == sig.library for k in found):
                break  # a stronger pattern matched: skip the weak fallbacks
            for pattern in group:
                for m in pattern.finditer(data):
                    version = m.group(1).decode("ascii", "replace")
                    key = (sig.library, version)
                    if key in found and found[key].offset <= m.start():
                        continue
                    found[key] = Finding(
                        library=sig.library,
                        name=sig.name,
                        version=version,
                        source=source,
                        offset=m.start(),
                        text=m.group(0).decode("latin-1").strip("\x00").strip(),
                        method="binary-analysis",
                        confidence=sig.confidence,
                        cpe=_fill(sig.cpe, version),
                        purl=_fill(sig.purl, version),
                    )
    return sorted(found.values(), key=lambda f: (f.library, f.offset, f.version or ""))


def _parse_notes(blob: bytes, little: bool, section_offset: int, source: str) -> list[Finding]:
    end = "<" if little else ">"
    out: list[Finding] = []
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from(end + "III", blob, pos)
        name_start = pos + 12
        desc_start = name_start + ((namesz + 3) & ~3)
        nxt = desc_start + ((descsz + 3) & ~3)
        if namesz > len(blob) or descsz > _MAX_NOTE or desc_start + descsz > len(blob):
            raise MalformedImageError("truncated ELF note", path=source, offset=section_offset + pos)
        owner = blob[name_start : name_start + namesz].rstrip(b"\x00")
        if owner == b"FDO" and ntype == _NOTE_TYPE_FDO_PACKAGING_METADATA:
            payload = blob[desc_start : desc_start + descsz].rstrip(b"\x00")
            try:
                meta: Any = json.loads(payload.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise MalformedImageError(
                    "package note is not JSON", path=source, offset=section_offset + desc_start
                ) from None
            if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
                raise MalformedImageError("package note has no 'name'", path=source, offset=section_offset + desc_start)
            version = meta.get("version")
            out.append(
                Finding(
                    library=meta["name"],
                    name=meta["name"],
                    version=version if isinstance(version, str) else None,
                    source=source,
                    offset=section_offset + desc_start,
                    text=payload.decode("utf-8")[:200],
                    method="elf-package-note",
                    confidence=1.0,
                    cpe=meta["cpe"] if isinstance(meta.get("cpe"), str) else None,
                    purl=meta["purl"] if isinstance(meta.get("purl"), str) else None,
                    license=meta["license"] if isinstance(meta.get("license"), str) else None,
                )
            )
        pos = nxt
    return out


def read_package_notes(data: bytes, *, source: str = "<bytes>") -> list[Finding]:
    """Return the ``.note.package`` entries of an ELF file (empty for non-ELF data).

    Raises:
        MalformedImageError: the ELF or its note section is malformed (with the byte offset).
    """
    if not data.startswith(b"\x7fELF"):
        return []
    from elftools.common.exceptions import ELFError  # noqa: PLC0415 - only needed for ELF input
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    out: list[Finding] = []
    try:
        elf = ELFFile(BytesIO(data))
        for section in elf.iter_sections():
            if section.name != ".note.package":
                continue
            offset = int(section["sh_offset"])
            size = int(section["sh_size"])
            if offset + size > len(data):
                raise MalformedImageError("note section lies outside the file", path=source, offset=offset)
            out.extend(_parse_notes(data[offset : offset + size], elf.little_endian, offset, source))
    except MalformedImageError:
        raise
    except (ELFError, struct.error, ValueError, KeyError, AttributeError, AssertionError, TypeError) as e:
        raise MalformedImageError(f"malformed ELF file: {e}", path=source) from None
    return out


def scan_binary(data: bytes, *, source: str = "<bytes>", signatures: Iterable[str] | None = None) -> list[Finding]:
    """Scan a firmware image or ELF file for embedded libraries.

    Args:
        data: the whole file.
        source: the name to report (file name).
        signatures: restrict to these library keys (default: all of :data:`SIGNATURES`).

    Returns:
        findings sorted by library then offset; package-note findings first.

    Raises:
        MalformedImageError: an ELF file whose package notes are malformed.
    """
    notes = read_package_notes(data, source=source)
    return notes + _scan_signatures(data, source, signatures)
