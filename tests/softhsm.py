"""SoftHSM2 test helper: a private token per test (own token directory and SOFTHSM2_CONF under tmp_path).

A test module wraps :func:`softhsm_token` in its own fixture (``yield from softhsm_token(tmp_path, monkeypatch)``)
and marks its tests ``@pytest.mark.softhsm``. It initialises a fresh token, points the PKCS#11 module at it (SoftHSM reads
``SOFTHSM2_CONF`` at ``C_Initialize``, so the already-loaded module is re-initialised), exports the PIN through
``MEDFW_PKCS11_PIN`` and removes the token afterwards. Tests skip when SoftHSM2 is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest

MODULE = os.environ.get("MEDFW_TEST_SOFTHSM_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
SOFTHSM_UTIL = shutil.which("softhsm2-util")


def available() -> bool:
    """True when SoftHSM2 (module and softhsm2-util) is installed."""
    return SOFTHSM_UTIL is not None and Path(MODULE).is_file()


@dataclass(frozen=True)
class SoftHsm:
    """One initialised SoftHSM2 token."""

    label: str
    pin: str
    so_pin: str
    module: str
    conf: Path
    tokendir: Path

    def uri(self, obj: str | None = None, *, key_id: bytes | None = None, query: str = "") -> str:
        """A key URI for an object in this token (``module-path`` included)."""
        parts = [f"token={self.label}"]
        if obj is not None:
            parts.append(f"object={obj}")
        if key_id is not None:
            parts.append("id=" + "".join(f"%{b:02X}" for b in key_id))
        q = f"module-path={self.module}" + (f"&{query}" if query else "")
        return "pkcs11:" + ";".join(parts) + "?" + q

    def init_token(self, label: str) -> None:
        """Initialise one more token (same PINs) in this SoftHSM instance, then make the module see it."""
        assert SOFTHSM_UTIL is not None
        subprocess.run(
            [SOFTHSM_UTIL, "--init-token", "--free", "--label", label, "--pin", self.pin, "--so-pin", self.so_pin],
            check=True,
            capture_output=True,
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
        )
        pkcs11.lib(self.module).reinitialize()


def softhsm_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    """A fresh SoftHSM2 token for one test; PIN exported as ``MEDFW_PKCS11_PIN``."""
    if not available():
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokendir = tmp_path / "softhsm-tokens"
    tokendir.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokendir}\nobjectstore.backend = file\nlog.level = ERROR\n")
    token = SoftHsm(
        label=f"medfw-{uuid.uuid4().hex[:8]}",
        pin="4711-test-pin-0815",
        so_pin="so-pin-5678",
        module=MODULE,
        conf=conf,
        tokendir=tokendir,
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    monkeypatch.setenv("MEDFW_PKCS11_PIN", token.pin)
    monkeypatch.setenv("MEDFW_PKCS11_MODULE", MODULE)
    monkeypatch.delenv("MEDFW_PKCS11_PIN_FILE", raising=False)
    token.init_token(token.label)
    try:
        yield token
    finally:
        pkcs11.lib(MODULE).finalize()
        shutil.rmtree(tokendir, ignore_errors=True)
