"""CLI commands for sbv2 signing and verification (registered by ``medfw.cli.sign`` and ``medfw.cli.verify``)."""

from __future__ import annotations

from typing import Any


def register_sign(sub: Any) -> None:
    """Register ``medfw sign sbv2``."""


def register_verify(sub: Any) -> None:
    """Register ``medfw verify sbv2``."""
