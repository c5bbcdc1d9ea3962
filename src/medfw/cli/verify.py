"""``medfw verify``: verify signed firmware images (Secure Boot v2, MCUboot)."""

from __future__ import annotations

from typing import Any

from medfw.cli import _mcuboot, _sbv2
from medfw.cli._common import add_group


def register(sub: Any) -> None:
    """Register ``medfw verify sbv2|mcuboot``."""
    group = add_group(sub, "verify", "verify signed firmware images as the bootloader does")
    _sbv2.register_verify(group)
    _mcuboot.register_verify(group)
