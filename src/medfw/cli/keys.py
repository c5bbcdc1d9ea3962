"""``medfw keys``: generate keys and print the digests that go into eFuses and bootloaders."""

from __future__ import annotations

from typing import Any

from medfw.cli import _keys_lifecycle
from medfw.cli._common import add_group


def register(sub: Any) -> None:
    """Register ``medfw keys ...``."""
    group = add_group(sub, "keys", "generate keys, print key digests, manage the key lifecycle")
    _keys_lifecycle.register(group)
