"""Bounded, safe loading of YAML/JSON build inputs with errors that name the file and byte offset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from medfw._io import read_bytes
from medfw.errors import InputError, ManifestError

__all__ = ["MAX_INPUT", "load_json_file", "load_yaml_bytes", "load_yaml_file"]

#: Upper bound for any single manifest, lock file or project description.
MAX_INPUT = 16 * 1024 * 1024


_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _Loader(_SafeBase):  # type: ignore[valid-type,misc]
    """Safe loader that keeps floats and timestamps as strings: ``version: 2.10`` must stay ``"2.10"``."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _byte_offset(text: str, index: int) -> int:
    return len(text[: max(0, index)].encode("utf-8"))


def load_yaml_bytes(data: bytes, *, path: str) -> Any:
    """Parse YAML ``data`` with the safe loader (floats and dates stay strings).

    Raises:
        ManifestError: not UTF-8 or not YAML (with the byte offset of the problem when known).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError("manifest is not UTF-8 text", path=path, offset=e.start) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        offset = _byte_offset(text, mark.index) if mark is not None else None
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ManifestError(f"invalid YAML: {e.problem or e.context}{where}", path=path, offset=offset) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as e:
        raise ManifestError(f"invalid YAML: {e}", path=path) from None


def load_yaml_file(path: Path) -> Any:
    """Read (bounded) and parse a YAML file."""
    try:
        data = read_bytes(path, max_length=MAX_INPUT, what="manifest")
    except InputError as e:
        raise ManifestError(e.message, path=str(path)) from None
    return load_yaml_bytes(data, path=str(path))


def load_json_file(path: Path, *, what: str) -> Any:
    """Read (bounded) and parse a JSON file."""
    try:
        data = read_bytes(path, max_length=MAX_INPUT, what=what)
    except InputError as e:
        raise ManifestError(e.message, path=str(path)) from None
    try:
        text = data.decode("utf-8")
        return json.loads(text)
    except UnicodeDecodeError as e:
        raise ManifestError(f"{what} is not UTF-8 text", path=str(path), offset=e.start) from None
    except json.JSONDecodeError as e:
        offset = _byte_offset(e.doc, e.pos)
        raise ManifestError(f"{what} is not valid JSON: {e.msg}", path=str(path), offset=offset) from None
    except RecursionError:
        raise ManifestError(f"{what} is nested too deeply", path=str(path)) from None
