"""Helpers shared by the NVD and CVE 5 parsers: CVSS entries and configuration validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

from medfw.vuln.cpe import parse_cpe
from medfw.vuln.feeds import record_error

__all__ = ["check_configurations", "cvss_entry", "is_map"]

_BOUND_KEYS = ("versionStartIncluding", "versionStartExcluding", "versionEndIncluding", "versionEndExcluding")
_BOUND_SET = frozenset(_BOUND_KEYS)


def cvss_entry(version: str, vector: Any, source: str, primary: bool) -> dict[str, Any] | None:
    """Return a normalized CVSS entry, or None when the vector is missing."""
    if not isinstance(vector, str) or not vector:
        return None
    return {"version": version, "vector": vector, "source": source, "primary": primary}


def is_map(x: Any) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``x`` is a mapping (parsed JSON: the exact-type test is the fast path)."""
    return type(x) is dict or isinstance(x, Mapping)


def _check_match(m: Any, where: str, j: int) -> dict[str, Any]:
    if not is_map(m):
        raise record_error(f"{where}.cpeMatch[{j}] is not an object")
    criteria = m["criteria"] if "criteria" in m else m.get("cpe23Uri")
    if not isinstance(criteria, str):
        raise record_error(f"{where}.cpeMatch[{j}].criteria is missing")
    try:
        parse_cpe(criteria)
    except ValueError as e:
        raise record_error(f"{where}.cpeMatch[{j}].criteria: {e}") from e
    vulnerable = m.get("vulnerable")
    if vulnerable is not True and vulnerable is not False:
        raise record_error(f"{where}.cpeMatch[{j}].vulnerable must be true or false")
    out: dict[str, Any] = {"criteria": criteria, "vulnerable": vulnerable}
    if len(m) > 2 and not _BOUND_SET.isdisjoint(m):  # more than criteria and vulnerable: look for bounds
        for b in _BOUND_KEYS:
            v = m.get(b)
            if v is not None and v != "":
                if not isinstance(v, str):
                    raise record_error(f"{where}.cpeMatch[{j}].{b} is not a string")
                out[b] = v
    return out


def _check_node(node: Any, where: str) -> dict[str, Any]:
    if not is_map(node):
        raise record_error(f"{where} is not an object")
    matches = node["cpeMatch"] if "cpeMatch" in node else node.get("cpe_match", [])
    if not isinstance(matches, list):
        raise record_error(f"{where}.cpeMatch is not a list")
    out_matches = [_check_match(m, where, j) for j, m in enumerate(matches)]
    operator = node.get("operator", "OR")
    if operator != "OR":
        operator = str(operator).upper()
        if operator not in {"AND", "OR"}:
            raise record_error(f"{where}.operator must be AND or OR")
    # defaults (operator OR, negate false) are left out: stored records stay small
    result: dict[str, Any] = {"cpeMatch": out_matches}
    if operator == "AND":
        result["operator"] = "AND"
    if node.get("negate", False):
        result["negate"] = True
    children = node.get("children")
    if children:
        result["children"] = [_check_node(c, f"{where}.children[{k}]") for k, c in enumerate(children)]
    return result


def check_configurations(configs: Any, where: str = "configurations") -> list[dict[str, Any]]:
    """Validate and normalize an NVD API 2.0 ``configurations`` list.

    The result keeps the criteria, their bounds and ``vulnerable``, and ``operator``/``negate`` only where
    they differ from the defaults (``OR``, false); ``matchCriteriaId`` is dropped.

    Raises:
        RecordError: a node or criterion is malformed.
    """
    if not isinstance(configs, Sequence) or isinstance(configs, str):
        raise record_error(f"{where} is not a list")
    out: list[dict[str, Any]] = []
    for i, conf in enumerate(configs):
        if not is_map(conf) or not isinstance(conf.get("nodes"), list):
            raise record_error(f"{where}[{i}].nodes is missing")
        operator = str(conf.get("operator", "OR")).upper()
        if operator not in {"AND", "OR"}:
            raise record_error(f"{where}[{i}].operator must be AND or OR")
        entry: dict[str, Any] = {
            "nodes": [_check_node(n, f"{where}[{i}].nodes[{k}]") for k, n in enumerate(conf["nodes"])]
        }
        if operator == "AND":
            entry["operator"] = "AND"
        if conf.get("negate", False):
            entry["negate"] = True
        out.append(entry)
    return out
