"""Decision batch files (``medfw vuln decide SBOM --batch FILE``): YAML or CSV, one decision per entry.

Fields: ``cve`` (or ``vulnerability``), ``component`` (bom-ref), ``state``, ``detail``, and optionally
``justification``, ``responses`` (a YAML list, or ``;``-separated in CSV), ``author``, ``fixed_in``,
``applies_to``. YAML is a list of mappings (or a mapping with a ``decisions`` list); CSV has a header row.
Unknown fields are refused, so a typo never silently drops information.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

import yaml

from medfw.errors import InputError
from medfw.vuln.decisions import DecisionRequest

__all__ = ["read_batch"]

_FIELDS = {"cve", "vulnerability", "component", "state", "detail", "justification", "responses", "response"}
_FIELDS |= {"author", "fixed_in", "applies_to"}
_MAX = 10_000


def _rows(data: bytes, path: str) -> list[Any]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError("batch file is not UTF-8", path=path, offset=e.start) from e
    if path.lower().endswith(".csv"):
        return list(csv.DictReader(io.StringIO(text)))
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(f"batch file is not valid YAML: {str(e).splitlines()[0]}", path=path) from e
    if isinstance(doc, Mapping):
        doc = doc.get("decisions")
    if not isinstance(doc, list):
        raise InputError("a YAML batch is a list of decisions (or a mapping with a 'decisions' list)", path=path)
    return doc


def _text(entry: Mapping[str, Any], key: str, where: str, path: str, *, required: bool = False) -> str | None:
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InputError(f"{where} lacks {key}", path=path, field=f"{where}.{key}")
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise InputError(f"{where}.{key} must be text", path=path, field=f"{where}.{key}")
    return str(value).strip()


def _responses(entry: Mapping[str, Any], where: str, path: str) -> tuple[str, ...]:
    value = entry.get("responses", entry.get("response"))
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(r.strip() for r in value.split(";") if r.strip())
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return tuple(value)
    raise InputError(f"{where}.responses must be a list or ';'-separated text", path=path, field=f"{where}.responses")


def read_batch(data: bytes, path: str) -> list[DecisionRequest]:
    """Parse a batch file (``.csv`` by extension, else YAML) into decision requests.

    Raises:
        InputError: unreadable, empty, too many entries, an unknown field, or a required field missing.
    """
    rows = _rows(data, path)
    if not rows:
        raise InputError("batch file holds no decisions", path=path)
    if len(rows) > _MAX:
        raise InputError(f"batch file holds {len(rows)} decisions (at most {_MAX})", path=path)
    out: list[DecisionRequest] = []
    for i, entry in enumerate(rows):
        where = f"decisions[{i}]" if not path.lower().endswith(".csv") else f"line {i + 2}"
        if not isinstance(entry, Mapping):
            raise InputError(f"{where} is not a mapping", path=path, field=where)
        unknown = sorted(str(k) for k in entry if k is not None and str(k) not in _FIELDS)
        if unknown or None in entry:
            raise InputError(f"{where}: unknown field(s) {', '.join(unknown) or '(extra CSV column)'}", path=path)
        vuln = _text(entry, "cve", where, path) or _text(entry, "vulnerability", where, path, required=True)
        out.append(
            DecisionRequest(
                vuln_id=str(vuln),
                component_ref=str(_text(entry, "component", where, path, required=True)),
                state=str(_text(entry, "state", where, path, required=True)),
                detail=str(_text(entry, "detail", where, path, required=True)),
                justification=_text(entry, "justification", where, path),
                responses=_responses(entry, where, path),
                author=_text(entry, "author", where, path) or "",
                fixed_in=_text(entry, "fixed_in", where, path),
                applies_to=_text(entry, "applies_to", where, path),
            )
        )
    return out
