"""Binary evidence scanning: real version-string formats of each library, ELF package notes, robustness."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import MalformedImageError, MedfwError
from medfw.sbom.binscan import SIGNATURES, read_package_notes, scan_binary

from ._elf import elf_with_notes

# Version strings exactly as the libraries compile them into binaries (source of each format in the comment).
REAL_STRINGS: dict[str, tuple[bytes, str]] = {
    # include/mbedtls/build_info.h: MBEDTLS_VERSION_STRING_FULL "Mbed TLS 3.6.2"
    "mbedtls": (b"Mbed TLS 3.6.2", "3.6.2"),
    # include/openssl/opensslv.h (1.1.1): OPENSSL_VERSION_TEXT "OpenSSL 1.1.1w  11 Sep 2023"
    "openssl": (b"OpenSSL 1.1.1w  11 Sep 2023", "1.1.1w"),
    # wolfssl/version.h LIBWOLFSSL_VERSION_STRING used in banners "wolfSSL 5.6.6"
    "wolfssl": (b"wolfSSL 5.6.6", "5.6.6"),
    # lib/version.c curl_version(): "libcurl/8.4.0"
    "curl": (b"libcurl/8.4.0 OpenSSL/3.0.13 zlib/1.3", "8.4.0"),
    # deflate.c: deflate_copyright[] = " deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler "
    "zlib": (b" deflate 1.3.1 Copyright 1995-2024 Jean-loup Gailly and Mark Adler ", "1.3.1"),
    # apps/http/httpd_structs.h: HTTPD_SERVER_AGENT "lwIP/" LWIP_VERSION_STRING " (http://savannah.nongnu.org/projects/lwip)"
    "lwip": (b"Server: lwIP/2.1.3 (http://savannah.nongnu.org/projects/lwip)", "2.1.3"),
    # task.h tskKERNEL_VERSION_NUMBER "V10.5.1" next to the kernel name
    "freertos": (b"FreeRTOS Kernel V10.5.1", "10.5.1"),
    # libbb/messages.c: bb_banner "BusyBox v1.36.1 (2023-05-19 11:12:13 UTC)"
    "busybox": (b"BusyBox v1.36.1 (2023-05-19 11:12:13 UTC)", "1.36.1"),
    # lib/xmlparse.c XML_ExpatVersion(): "expat_2.6.2"
    "expat": (b"expat_2.6.2", "2.6.2"),
    # png.h PNG_HEADER_VERSION_STRING " libpng version 1.6.43 - February 23, 2024\n"
    "libpng": (b" libpng version 1.6.43 - February 23, 2024\n", "1.6.43"),
    # sqlite3.c: SQLITE_FILE_HEADER "SQLite format 3", sqlite3_version[] = SQLITE_VERSION, SQLITE_SOURCE_ID
    "sqlite": (
        b"SQLite format 3\x00\x003.45.1\x00\x00\x002024-01-30 16:01:20 e876e51a0ed5c5b3126f52e532044363a014bc594cfefa87ffb5b82257cc467a",
        "3.45.1",
    ),
}


def _blob(parts: list[bytes], seed: int = 1, size: int = 64 * 1024) -> bytes:
    """Random-looking firmware with ``parts`` embedded as NUL-terminated strings at random places."""
    rnd = random.Random(seed)
    data = bytearray(rnd.randbytes(size))
    for part in parts:
        pos = rnd.randrange(16, size - len(part) - 16)
        data[pos - 1 : pos + len(part) + 1] = b"\x00" + part + b"\x00"
    return bytes(data)


@pytest.mark.parametrize("library", sorted(REAL_STRINGS))
def test_finds_each_library_alone(library: str) -> None:
    text, version = REAL_STRINGS[library]
    findings = scan_binary(_blob([text]), source="fw.bin")
    found = {(f.library, f.version) for f in findings}
    assert (library, version) in found
    f = next(f for f in findings if f.library == library)
    assert f.offset >= 0
    assert f.method == "binary-analysis"
    if f.cpe:
        assert version in f.cpe


def test_finds_all_libraries_together_and_nothing_else() -> None:
    blob = _blob([t for t, _v in REAL_STRINGS.values()], seed=7, size=256 * 1024)
    found = {(f.library, f.version) for f in scan_binary(blob)}
    # curl's string also names OpenSSL/3.0.13 and zlib/1.3, which are not the library's own version strings
    assert found == {(lib, v) for lib, (_t, v) in REAL_STRINGS.items()}


@pytest.mark.parametrize("library", sorted(REAL_STRINGS))
def test_absent_libraries_are_not_reported(library: str) -> None:
    others = [t for lib, (t, _v) in REAL_STRINGS.items() if lib != library]
    found = {f.library for f in scan_binary(_blob(others, seed=3, size=128 * 1024))}
    assert library not in found


def test_random_firmware_has_no_findings() -> None:
    assert scan_binary(_blob([], seed=11, size=512 * 1024)) == []


def test_two_versions_of_one_library_are_both_reported() -> None:
    found = {(f.library, f.version) for f in scan_binary(_blob([b"Mbed TLS 3.6.2", b"mbed TLS 2.28.8"]))}
    assert {("mbedtls", "3.6.2"), ("mbedtls", "2.28.8")} <= found


def test_signature_table_covers_required_libraries() -> None:
    assert {s.library for s in SIGNATURES} >= set(REAL_STRINGS)


def test_reads_elf_package_note() -> None:
    payload = json.dumps(
        {"type": "firmware", "name": "mbedtls", "version": "3.6.2", "purl": "pkg:github/Mbed-TLS/mbedtls@v3.6.2"}
    ).encode()
    elf = elf_with_notes([(b"GNU", 3, b"\x01" * 20), (b"FDO", 0xCAFE1A7E, payload)])
    notes = read_package_notes(elf, source="app.elf")
    assert len(notes) == 1
    n = notes[0]
    assert (n.name, n.version, n.purl, n.method) == (
        "mbedtls",
        "3.6.2",
        "pkg:github/Mbed-TLS/mbedtls@v3.6.2",
        "elf-package-note",
    )
    assert elf[n.offset : n.offset + 1] == b"{"
    assert scan_binary(elf, source="app.elf")[0] == n


def test_malformed_package_note_names_offset() -> None:
    elf = elf_with_notes([(b"FDO", 0xCAFE1A7E, b"{not json")])
    with pytest.raises(MalformedImageError) as e:
        read_package_notes(elf, source="app.elf")
    assert e.value.offset is not None


def test_non_elf_has_no_notes() -> None:
    assert read_package_notes(b"\xe9" + b"\x00" * 100) == []


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        for f in scan_binary(data):
            assert f.library
    except MedfwError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048))
def test_random_elf_like_bytes_only_raise_medfw_errors(data: bytes) -> None:
    with contextlib.suppress(MedfwError):
        scan_binary(b"\x7fELF" + data)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5000), st.binary(min_size=1, max_size=300))
def test_truncated_package_note_elf_only_raises_medfw_errors(cut: int, junk: bytes) -> None:
    elf = elf_with_notes([(b"FDO", 0xCAFE1A7E, b'{"name": "zlib", "version": "1.3.1"}')])
    mutated = elf[: min(cut, len(elf))] + junk
    with contextlib.suppress(MedfwError):
        read_package_notes(mutated)
