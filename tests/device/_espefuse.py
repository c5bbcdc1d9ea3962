"""Drive espefuse (a pinned test dependency) on virtual chips to produce real ``summary --format json`` output."""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Which locks exist per chip, and the espefuse arguments that set each one.
LOCKS: dict[str, dict[str, list[str]]] = {
    "esp32": {
        "secure_boot_enabled": ["ABS_DONE_1", "1"],
        "jtag_disabled": ["JTAG_DISABLE", "1"],
        "download_mode_restricted": ["UART_DOWNLOAD_DIS", "1"],
        "flash_encryption_enabled": ["FLASH_CRYPT_CNT", "1"],
        "anti_rollback_enabled": ["SECURE_VERSION", "1"],
    },
    "key_purpose": {
        "secure_boot_enabled": ["SECURE_BOOT_EN", "1"],
        "unused_digest_slots_locked": ["SECURE_BOOT_KEY_REVOKE1", "1", "SECURE_BOOT_KEY_REVOKE2", "1"],
        "jtag_disabled": ["DIS_PAD_JTAG", "1", "DIS_USB_JTAG", "1"],
        "download_mode_restricted": ["DIS_DOWNLOAD_MODE", "1"],
        "flash_encryption_enabled": ["SPI_BOOT_CRYPT_CNT", "1"],
        "anti_rollback_enabled": ["SECURE_VERSION", "1"],
    },
}
KEY_LOCK = "key_digest_burned"


def espefuse_exe() -> str:
    """The espefuse console script next to this interpreter (or on PATH)."""
    here = Path(sys.executable).parent / "espefuse"
    if here.exists():
        return str(here)
    found = shutil.which("espefuse")
    if found is None:
        raise RuntimeError("espefuse is not installed (pip install esptool)")
    return found


def lock_names(chip: str) -> list[str]:
    """All locks of ``chip`` (the key digest included)."""
    return [KEY_LOCK, *LOCKS["esp32" if chip == "esp32" else "key_purpose"]]


def write_key(directory: Path, chip: str) -> Path:
    """A fresh signing key of the scheme the chip uses (RSA-3072 for ESP32, P-256 otherwise)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    key = rsa.generate_private_key(65537, 3072) if chip == "esp32" else ec.generate_private_key(ec.SECP256R1())
    path = directory / f"{chip}-key.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _run(chip: str, efuse_file: Path, *args: str) -> None:
    cmd = [espefuse_exe(), "--virt", "--chip", chip, "--path-efuse-file", str(efuse_file), "--do-not-confirm", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"espefuse failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")


def _burns(chip: str, locks: set[str]) -> list[str]:
    family = "esp32" if chip == "esp32" else "key_purpose"
    burns: list[str] = []
    if chip == "esp32":
        burns += ["CHIP_VER_REV1", "1", "CHIP_VER_REV2", "1"]  # Secure Boot v2 needs ESP32 rev 3
    for lock in sorted(locks - {KEY_LOCK}):
        burns += LOCKS[family][lock]
    return burns


def make_summary(directory: Path, chip: str, locks: set[str], key: Path, name: str) -> dict[str, dict[str, object]]:
    """Burn ``locks`` on a fresh virtual ``chip`` with the espefuse command line and return its JSON summary."""
    efuse_file = directory / f"{name}.efuse.bin"
    out = directory / f"{name}.json"
    burns = _burns(chip, locks)
    if burns:
        _run(chip, efuse_file, "burn-efuse", *burns)
    if KEY_LOCK in locks:
        if chip == "esp32":
            _run(chip, efuse_file, "burn-key-digest", str(key))
        else:
            _run(chip, efuse_file, "burn-key-digest", "BLOCK_KEY0", str(key), "SECURE_BOOT_DIGEST0")
    _run(chip, efuse_file, "summary", "--format", "json", "--file", str(out))
    data: dict[str, dict[str, object]] = json.loads(out.read_text())
    return data


class _CachedYaml:
    """Stands in for the ``yaml`` module inside espefuse's field tables: same data, parsed once with libyaml.

    espefuse parses its eFuse field YAML with the pure-Python loader on every start; that dominates the run
    time of the in-process path, so the parsed tables are memoised (and deep-copied on each use).
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def safe_load(self, stream: Any) -> Any:
        text = stream.read() if hasattr(stream, "read") else stream
        if text not in self._cache:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            self._cache[text] = yaml.load(text, Loader=loader)
        return copy.deepcopy(self._cache[text])


_YAML = _CachedYaml()


def _commands(chip: str, efuse_file: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # espefuse imports click's deprecated parser
        import espefuse

    module = importlib.import_module(f"espefuse.efuse.{chip}.mem_definition")
    module.yaml = _YAML  # type: ignore[attr-defined]
    return espefuse.init_commands(chip=chip, virt=True, virt_efuse_file=str(efuse_file), do_not_confirm=True)


def make_summary_inprocess(
    directory: Path, chip: str, locks: set[str], key: Path, name: str
) -> dict[str, dict[str, object]]:
    """As :func:`make_summary`, through espefuse's Python API (``espefuse.init_commands``) in this process."""
    efuse_file = directory / f"{name}.efuse.bin"
    out = directory / f"{name}.json"
    burns = _burns(chip, locks)
    with contextlib.redirect_stdout(io.StringIO()):
        cmds = _commands(chip, efuse_file)
        if burns:
            cmds.burn_efuse(dict(zip(burns[::2], burns[1::2], strict=True)))
        if KEY_LOCK in locks:
            cmds = _commands(chip, efuse_file)  # re-read: the ESP32 revision check needs the burned REV bits
            with key.open("rb") as fh:
                if chip == "esp32":
                    cmds.burn_key_digest(fh)
                else:
                    cmds.burn_key_digest(["BLOCK_KEY0"], [fh], ["SECURE_BOOT_DIGEST0"])
        with out.open("w") as fh:
            cmds.summary(format="json", file=fh)
    data: dict[str, dict[str, object]] = json.loads(out.read_text())
    return data
