"""Kconfig values and the ``if:`` condition language of manifests."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import ManifestError
from medfw.sbom._gitmodules import parse_gitmodules
from medfw.sbom._kconfig import evaluate, parse_sdkconfig, values_from_json

SDKCONFIG = """\
# Espressif IoT Development Framework (ESP-IDF) 5.5.1 Project Configuration
CONFIG_IDF_TARGET="esp32"
CONFIG_LIBC_NEWLIB=y
# CONFIG_LIBC_PICOLIBC is not set
CONFIG_FREERTOS_HZ=1000
CONFIG_PARTITION_TABLE_OFFSET=0x8000
"""
VALUES = parse_sdkconfig(SDKCONFIG)


def test_parse_sdkconfig() -> None:
    assert VALUES == {
        "IDF_TARGET": "esp32",
        "LIBC_NEWLIB": True,
        "LIBC_PICOLIBC": False,
        "FREERTOS_HZ": 1000,
        "PARTITION_TABLE_OFFSET": 0x8000,
    }


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("LIBC_NEWLIB", True),
        ("LIBC_PICOLIBC", False),
        ("!LIBC_PICOLIBC", True),
        ("CONFIG_LIBC_NEWLIB", True),
        ("UNKNOWN_SYMBOL", False),
        ("LIBC_NEWLIB && LIBC_PICOLIBC", False),
        ("LIBC_NEWLIB || LIBC_PICOLIBC", True),
        ('IDF_TARGET = "esp32"', True),
        ('IDF_TARGET != "esp32"', False),
        ("FREERTOS_HZ >= 1000 && FREERTOS_HZ < 1001", True),
        ("PARTITION_TABLE_OFFSET = 0x8000", True),
        ('FREERTOS_HZ = "1000"', False),  # type mismatch is false
        ("!(LIBC_NEWLIB && (FREERTOS_HZ > 10))", False),
        ("true", True),
    ],
)
def test_evaluate(expr: str, expected: bool) -> None:
    assert evaluate(expr, VALUES) is expected


@pytest.mark.parametrize("expr", ["", "&&", "(A", "A B", "A = ", "A ~ B", "!"])
def test_invalid_condition_names_the_key(expr: str) -> None:
    with pytest.raises(ManifestError) as e:
        evaluate(expr, VALUES, path="sbom.yml")
    assert (e.value.path, e.value.field) == ("sbom.yml", "if")


def test_values_from_json_keeps_scalars() -> None:
    assert values_from_json({"A": True, "B": 3, "C": "x", "D": [1]}, path="p") == {"A": True, "B": 3, "C": "x"}
    with pytest.raises(ManifestError):
        values_from_json([1], path="p")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='AB()!&|=<>"0x1 ', max_size=40))
def test_random_conditions_only_raise_manifest_errors(expr: str) -> None:
    with contextlib.suppress(ManifestError):
        assert evaluate(expr, {"A": True, "B": 2}) in (True, False)


def test_gitmodules_parse_with_repeated_keys_and_comments() -> None:
    text = (
        '# comment\n[submodule "a/b"]\n\tpath = a/b\n\tsbom-cve-exclude-list = CVE-1 r1\n'
        '\tsbom-cve-exclude-list = CVE-2 "r 2" ; trailing\n[core]\n\tbare = false\n'
    )
    mods = parse_gitmodules(text, path=".gitmodules")
    assert mods == {"a/b": {"path": ["a/b"], "sbom-cve-exclude-list": ["CVE-1 r1", "CVE-2 r 2"]}}


def test_gitmodules_garbage_line_has_offset() -> None:
    with pytest.raises(ManifestError) as e:
        parse_gitmodules('[submodule "x"]\n\tpath = x\n= nope\n', path=".gitmodules")
    assert e.value.offset == len('[submodule "x"]\n\tpath = x\n')


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_gitmodules_only_raise_manifest_errors(text: str) -> None:
    with contextlib.suppress(ManifestError):
        parse_gitmodules(text, path=".gitmodules")
