"""Read the one JSON envelope every ``--json`` command prints on stdout."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DOCS_JSON = Path(__file__).resolve().parents[2] / "docs" / "json"


@cache
def schema(name: str) -> dict[str, Any]:
    """A JSON Schema from ``docs/json/``."""
    doc: dict[str, Any] = json.loads((DOCS_JSON / name).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def envelope(out: str) -> dict[str, Any]:
    """Parse stdout as exactly one envelope and check its shape."""
    doc: dict[str, Any] = json.loads(out)
    assert isinstance(doc, dict), doc
    jsonschema.validate(doc, schema("envelope.schema.json"), cls=jsonschema.Draft202012Validator)
    assert doc["ok"] is (doc["exit_code"] == 0), doc
    if "error" in doc:
        assert set(doc) == {"ok", "exit_code", "error"}, doc
        assert doc["ok"] is False
        assert set(doc["error"]) == {"message", "path", "field", "offset"}, doc
    else:
        assert set(doc) == {"ok", "exit_code", "result"}, doc
    return doc


def result(out: str) -> Any:
    """The ``result`` of a command's envelope."""
    doc = envelope(out)
    assert "result" in doc, doc
    return doc["result"]


def error(out: str) -> dict[str, Any]:
    """The ``error`` of a failed command's envelope."""
    doc = envelope(out)
    assert "error" in doc, doc
    err: dict[str, Any] = doc["error"]
    return err
