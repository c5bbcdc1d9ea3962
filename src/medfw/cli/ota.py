"""``medfw ota``: command group (commands are added by the mechanism that owns them)."""

from __future__ import annotations

from typing import Any

from medfw.cli._common import add_group


def register(sub: Any) -> None:
    """Register the ``ota`` command group."""
    add_group(sub, "ota", "ota commands")
