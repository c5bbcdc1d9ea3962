"""``medfw sign``: sign firmware images (Secure Boot v2, MCUboot)."""

from __future__ import annotations

from typing import Any

from medfw.cli import _mcuboot, _sbv2
from medfw.cli._common import add_group


def register(sub: Any) -> None:
    """Register ``medfw sign sbv2|mcuboot``."""
    group = add_group(sub, "sign", "sign firmware images (ESP32 Secure Boot v2, MCUboot)")
    _sbv2.register_sign(group)
    _mcuboot.register_sign(group)
