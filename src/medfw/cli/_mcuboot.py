"""CLI commands for mcuboot signing and verification (registered by ``medfw.cli.sign`` and ``medfw.cli.verify``)."""

from __future__ import annotations

from typing import Any


def register_sign(sub: Any) -> None:
    """Register ``medfw sign mcuboot``."""


def register_verify(sub: Any) -> None:
    """Register ``medfw verify mcuboot``."""
