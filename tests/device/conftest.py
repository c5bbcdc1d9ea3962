"""Fixtures for the device model: keys, signed bootloader and app images, provisioned units."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from _pytest.terminal import TerminalReporter

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image


@dataclass(frozen=True)
class Kit:
    """Keys and signed images shared by the device tests (P-256 for speed)."""

    key: PrivateKey
    key2: PrivateKey
    stranger: PrivateKey
    bootloader: bytes
    bootloader_both: bytes

    @property
    def digest(self) -> bytes:
        return public_key_digest(self.key.public_key())

    @property
    def digest2(self) -> bytes:
        return public_key_digest(self.key2.public_key())

    def app(
        self,
        version: str,
        secure_version: int,
        *,
        keys: tuple[PrivateKey, ...] | None = None,
        chip: str = "esp32c6",
        size: int | None = None,
    ) -> bytes:
        unsigned = build_app_image(chip=chip, version=version, secure_version=secure_version, size=size)
        signers = [FileSigner(k) for k in (keys if keys is not None else (self.key,))]
        return sign_image(unsigned, signers) if signers else unsigned


@pytest.fixture(scope="session")
def kit() -> Kit:
    key = generate_private_key(KeyType.ECDSA_P256)
    key2 = generate_private_key(KeyType.ECDSA_P256)
    stranger = generate_private_key(KeyType.ECDSA_P256)
    unsigned = build_app_image(chip="esp32c6", version="bootloader", secure_version=0, project_name="bootloader")
    return Kit(
        key=key,
        key2=key2,
        stranger=stranger,
        bootloader=sign_image(unsigned, [FileSigner(key)]),
        bootloader_both=sign_image(unsigned, [FileSigner(key), FileSigner(key2)]),
    )


@pytest.fixture(scope="session")
def rsa_key() -> PrivateKey:
    """An RSA-3072 key, the only Secure Boot v2 scheme ESP32, ESP32-C3 and ESP32-S3 verify."""
    return generate_private_key(KeyType.RSA3072)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def booted(kit: Kit, sink: MemorySink) -> Callable[..., Device]:
    """Factory: an in-memory esp32c6 unit flashed with app 1.0 (secure_version 1) and booted once."""

    def make(*, app: bytes | None = None, digests: list[bytes] | None = None, revoke_unused: bool = True) -> Device:
        device = Device.in_memory(
            chip="esp32c6", key_digests=digests or [kit.digest], audit=sink, revoke_unused_slots=revoke_unused
        )
        device.flash(kit.bootloader, app if app is not None else kit.app("1.0.0", 1))
        device.boot()
        return device

    return make


_CUT_POINTS: list[int] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the power-cut counts recorded by test_power_cut.py (also from xdist workers)."""
    if report.when == "call":
        _CUT_POINTS.extend(int(v) for k, v in report.user_properties if k == "power_cut_points")  # type: ignore[call-overload]


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Report how many power-cut points the exhaustive test tried."""
    if _CUT_POINTS:
        terminalreporter.write_line(f"device power-cut test: {sum(_CUT_POINTS)} cut points tried, every one rebooted")
