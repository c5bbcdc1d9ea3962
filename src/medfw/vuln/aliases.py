"""The curated alias map of CPE vendor:product names and purls (data file ``aliases.json`` next to this module).

CPE vendor names drift (``arm:mbed_tls`` vs ``mbed:mbedtls``, ``haxx:curl`` vs ``curl:libcurl``). The map groups
names of one piece of software; :meth:`AliasMap.keys_for` expands a key to its whole group. Unknown keys expand
to themselves only: medfw never guesses a vendor from a product name.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AliasMap", "default_aliases"]


@dataclass(frozen=True)
class AliasMap:
    """vendor:product and purl aliases.

    Attributes:
        groups: group name → its ``vendor:product`` keys.
        by_key: ``vendor:product`` → group name.
        by_purl: ``pkg:type/namespace/name`` (lower case, no version) → group name.
    """

    groups: Mapping[str, tuple[str, ...]]
    by_key: Mapping[str, str]
    by_purl: Mapping[str, str]

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AliasMap:
        """Build the map from the ``aliases.json`` document.

        Raises:
            ValueError: a key or purl is listed in two groups, or the document is malformed.
        """
        groups: dict[str, tuple[str, ...]] = {}
        by_key: dict[str, str] = {}
        by_purl: dict[str, str] = {}
        for g in doc.get("groups", []):
            name = str(g["name"])
            keys = tuple(str(k).lower() for k in g["cpes"])
            for k in keys:
                if k in by_key or k.count(":") != 1:
                    raise ValueError(f"alias key {k!r} is malformed or in two groups")
                by_key[k] = name
            for raw in g.get("purls", []):
                p = str(raw).lower()
                if p in by_purl:
                    raise ValueError(f"purl {p!r} is in two groups")
                by_purl[p] = name
            groups[name] = keys
        return cls(groups, by_key, by_purl)

    def keys_for(self, key: str) -> tuple[str, ...]:
        """Return every ``vendor:product`` key naming the same software as ``key`` (``key`` first)."""
        group = self.by_key.get(key.lower())
        if group is None:
            return (key.lower(),)
        return (key.lower(), *(k for k in self.groups[group] if k != key.lower()))

    def keys_for_purl(self, purl_base: str) -> tuple[str, ...]:
        """Return the ``vendor:product`` keys for a purl base (``pkg:type/ns/name``), empty if not curated."""
        group = self.by_purl.get(purl_base.lower())
        return self.groups[group] if group else ()

    def all_keys(self, keys: Iterable[str]) -> set[str]:
        """Return the union of :meth:`keys_for` over ``keys``."""
        out: set[str] = set()
        for k in keys:
            out.update(self.keys_for(k))
        return out


@functools.cache
def default_aliases() -> AliasMap:
    """Return the alias map shipped with medfw (package data next to this module, read by path: importlib.resources
    would load tempfile and shutil into every scan process)."""
    text = (Path(__file__).parent / "aliases.json").read_text(encoding="utf-8")
    return AliasMap.from_json(json.loads(text))
