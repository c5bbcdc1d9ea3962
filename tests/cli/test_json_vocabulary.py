"""One result vocabulary: in every ``--json`` result the verdict field is ``ok`` and a file reference is ``path``.

The test walks every schema in docs/json/ (properties at any depth, through items, ``$defs`` and combinators)
and fails on the names other commands once used for the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DOCS_JSON = Path(__file__).resolve().parents[2] / "docs" / "json"

#: verdicts are ``ok``; file references are ``path`` (``*_path`` / ``paths`` for several). A document's stored
#: name (``filename`` of a release document) is a name, not a reference to a file, and is not renamed.
RENAMED = {"valid": "ok", "passed": "ok", "file": "path", "filepath": "path", "file_path": "path"}
#: names that are fine as counts or data but not as a boolean verdict
NOT_A_VERDICT = {"success", "verified", "succeeded", "pass"}


def properties(node: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """(location, name, subschema) of every property a schema declares, at any depth."""
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield where, name, sub
            yield from properties(sub, f"{where}.{name}")
        for key in ("items", "additionalProperties", "prefixItems", "$defs", "definitions", "anyOf", "oneOf", "allOf"):
            sub = node.get(key)
            if isinstance(sub, dict) and key in ("$defs", "definitions"):
                for n, s in sub.items():
                    yield from properties(s, f"{where}#{n}")
            elif isinstance(sub, dict):
                yield from properties(sub, f"{where}[]")
            elif isinstance(sub, list):
                for s in sub:
                    yield from properties(s, where)


def _is_boolean(schema: Any) -> bool:
    t = schema.get("type") if isinstance(schema, dict) else None
    return t == "boolean" or (isinstance(t, list) and "boolean" in t)


def old_names(schema: Any) -> list[str]:
    """``location.name -> new`` for every property that uses an old name."""
    found = []
    for where, name, sub in properties(schema):
        if name in RENAMED:
            found.append(f"{where}.{name} -> {RENAMED[name]}")
        elif name in NOT_A_VERDICT and _is_boolean(sub):
            found.append(f"{where}.{name} -> ok")
    return found


def test_every_schema_uses_ok_and_path() -> None:
    schemas = sorted(DOCS_JSON.glob("*.schema.json"))
    assert len(schemas) > 50
    offenders = {p.name: hits for p in schemas if (hits := old_names(json.loads(p.read_text(encoding="utf-8"))))}
    assert offenders == {}


def test_the_walk_finds_old_names_at_any_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "passed": {"type": "boolean"},
            "rules": {"type": "array", "items": {"type": "object", "properties": {"file": {"type": "string"}}}},
            "verified": {"type": "integer"},
            "x": {"anyOf": [{"type": "object", "properties": {"success": {"type": ["boolean", "null"]}}}]},
        },
        "$defs": {"hash": {"type": "object", "properties": {"valid": {"type": "boolean"}}}},
    }
    assert sorted(old_names(schema)) == [
        "#hash.valid -> ok",
        ".passed -> ok",
        ".rules[].file -> path",
        ".x.success -> ok",
    ]
