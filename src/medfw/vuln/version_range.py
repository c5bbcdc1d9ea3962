"""Version ranges for decisions and supplier statements (pure), ordered by :mod:`medfw.vuln.version`.

Accepted spellings: a single version (``3.6.4``: exactly it); constraints separated by ``,`` or ``|`` with the
operators ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (``>=3.5.0,<3.6.0``: all must hold); the package-URL
``vers:`` form (``vers:generic/>=2.0|<2.5|>=3.0|<3.1``), evaluated as its specification says: ``=`` / ``!=``
first, then the sorted bounds as a union of intervals; and ``*`` / ``vers:generic/*`` (every version).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

from medfw.vuln.version import compare_versions, is_version

__all__ = ["VersionRange", "parse_range"]

_OP = re.compile(r"^(>=|<=|!=|>|<|=)?\s*(.+)$")


@dataclass(frozen=True)
class VersionRange:
    """A conjunction of (operator, version) constraints; empty means every version."""

    text: str
    constraints: tuple[tuple[str, str], ...]
    vers: bool = False

    def contains(self, version: str) -> bool:
        """Whether ``version`` is in the range (an unparsable version is in no bounded range)."""
        if not self.constraints:
            return True
        if not is_version(version):
            return False
        if not self.vers:
            return all(_holds(version, op, bound) for op, bound in self.constraints)
        return _vers_contains(version, self.constraints)


def _holds(version: str, op: str, bound: str) -> bool:
    c = compare_versions(version, bound)
    return {"=": c == 0, "!=": c != 0, "<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0}[op]


def _vers_contains(version: str, constraints: tuple[tuple[str, str], ...]) -> bool:
    for op, bound in constraints:
        if op == "=" and _holds(version, "=", bound):
            return True
        if op == "!=" and _holds(version, "=", bound):
            return False

    def order(x: tuple[str, str], y: tuple[str, str]) -> int:
        return compare_versions(x[1], y[1])

    bounds = sorted(((op, b) for op, b in constraints if op not in ("=", "!=")), key=functools.cmp_to_key(order))
    if not bounds:
        return not any(op == "=" for op, _ in constraints)
    if bounds[0][0] in ("<", "<=") and _holds(version, *bounds[0]):
        return True
    if bounds[-1][0] in (">", ">=") and _holds(version, *bounds[-1]):
        return True
    return any(
        lo[0] in (">", ">=") and hi[0] in ("<", "<=") and _holds(version, *lo) and _holds(version, *hi)
        for lo, hi in itertools.pairwise(bounds)
    )


def parse_range(text: str) -> VersionRange:
    """Parse a range in one of the spellings of the module docstring.

    Raises:
        ValueError: empty, a constraint without a version, or a bound that is not a version.
    """
    body = text.strip()
    vers = body.startswith("vers:")
    if vers:
        _, _, body = body[5:].partition("/")
    if not body:
        raise ValueError(f"empty version range {text!r}")
    if body == "*":
        return VersionRange(text, ())
    out: list[tuple[str, str]] = []
    for part in re.split(r"[,|]", body):
        m = _OP.match(part.strip())
        if m is None or not m.group(2).strip():
            raise ValueError(f"constraint {part!r} of {text!r} has no version")
        op, bound = m.group(1) or "=", m.group(2).strip()
        if not is_version(bound):
            raise ValueError(f"{bound!r} in {text!r} is not a version")
        out.append((op, bound))
    return VersionRange(text, tuple(out), vers)
