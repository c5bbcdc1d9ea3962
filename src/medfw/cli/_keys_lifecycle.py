"""CLI commands for HSM keys and the key lifecycle (registered by ``medfw.cli.keys``)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Register ``medfw keys export-public|rotate|...``."""
