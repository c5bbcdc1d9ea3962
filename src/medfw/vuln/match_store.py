"""Set-based reads of the ``vuln_match`` table for a scan: every row of the SBOM's keys in a few queries.

* :func:`fetch_rows` — the rows of the lookup keys, in chunks of keys inside one transaction, CRITERION rows with
  their pre-normalised bounds (:mod:`medfw.vuln.match_rows`), ordered by record and position;
* :func:`candidates` — every record naming any of some keys (no version filter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from medfw.vuln.dbio import Plain, driver_rows, driver_rows_in, placeholder, quote
from medfw.vuln.match_rows import RowKind
from medfw.vuln.scan_reads import ScanReads
from medfw.vuln.scan_sql import COLUMNS, MATCH_KEYS_SQL, Table

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from medfw.vuln.index import VulnIndex

__all__ = ["CONFIG_TIERS", "MatchRow", "candidates", "fetch_rows"]

#: configuration tiers: the first tier with configurations for a CVE is used (its records together)
CONFIG_TIERS: Mapping[str, int] = {"nvd-override": 0, "nvd": 1, "cve5-cna": 2, "cve5-adp": 2, "vendor": 3}
_KEYS_PER_QUERY = 400


class MatchRow(NamedTuple):
    """One ``vuln_match`` row as a scan reads it (``test`` is what :func:`match_rows.row_matches` takes)."""

    key: str
    rid: str
    vuln_id: str
    source: str
    ord: int
    kind: int
    criterion: str | None
    bound: str | None
    test: tuple[object, ...]


def _may_match() -> str:
    """The rows a target version ``t.column2`` (empty when it has none) can match: TREE rows, fixed-version rows of
    equal key, unbounded rows, and bounded rows whose bounds hold (the exact decision is :func:`row_matches`)."""
    tv = "t.column2"
    lo_ok = f"(m.lo IS NULL OR m.lo < {tv} OR (m.lo = {tv} AND m.lo_incl))"
    hi_ok = f"(m.hi IS NULL OR {tv} < m.hi OR ({tv} = m.hi AND m.hi_incl))"
    bounded = f"(length({tv}) > 0 AND {lo_ok} AND {hi_ok})"
    free = "(m.lo IS NULL AND m.hi IS NULL)"
    crit = f"m.kind = {int(RowKind.CRITERION)}"
    fixed = f"(m.exact_key IS NULL OR m.exact_key = {tv})"
    return (
        f"(m.kind = {int(RowKind.TREE)} OR ({crit} AND m.exact IS NOT NULL AND {fixed})"
        f" OR ({crit} AND m.exact IS NULL AND ({free} OR {bounded})))"
    )


#: the row as read: :class:`MatchRow`'s columns, then the version test's (``part`` … ``attrs``)
_READ = COLUMNS[Table.MATCH]


def _rows_sql(conn: Connection | Plain, n: int) -> str:
    mark = placeholder(conn)
    cols = ", ".join(f"m.{quote(conn, c)}" for c in _READ)
    pairs = ", ".join([f"({mark}, {mark})"] * n)
    join = f"JOIN (VALUES {pairs}) AS t ON m.{quote(conn, 'key')} = t.column1"
    return f"SELECT {cols} FROM {quote(conn, Table.MATCH)} AS m {join} WHERE {_may_match()}"  # noqa: S608 - no input


def fetch_rows(index: ScanReads, targets: Mapping[str, Iterable[bytes]]) -> tuple[list[MatchRow], set[str]]:
    """The rows that can match the targets (key → target version keys, b"" for none), ordered by (rid, ord, key),
    and every key that has any row at all (what the coverage check needs).

    The version bounds are compared by the database on the stored keys, joined with the targets as a VALUES list
    (plain SQL on the driver's cursor, :func:`medfw.vuln.dbio.driver_rows`).
    """
    pairs = sorted({(k, v) for k, vs in targets.items() for v in vs})
    seen: set[tuple[str, int, str]] = set()
    out: list[MatchRow] = []
    with index.transaction() as conn:
        found = {r[0] for r in driver_rows_in(conn, MATCH_KEYS_SQL, targets, _KEYS_PER_QUERY)}
        queries = []
        for i in range(0, len(pairs), _KEYS_PER_QUERY):
            chunk = pairs[i : i + _KEYS_PER_QUERY]
            queries.append((_rows_sql(conn, len(chunk)), [x for pair in chunk for x in pair]))
        for r in driver_rows(conn, queries):
            ident = (r[1], r[4], r[0])
            if ident not in seen:
                seen.add(ident)
                out.append(MatchRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(r[8:])))
    out.sort(key=lambda m: (m.rid, m.ord, m.key))
    return out, found


def candidates(index: VulnIndex, keys: Iterable[str]) -> dict[str, set[str]]:
    """Return rid → the lookup keys it is found by, for every record naming any of ``keys`` (no version filter)."""
    from sqlalchemy import select  # noqa: PLC0415 - not a scan's read

    from medfw.vuln.schema import vuln_match  # noqa: PLC0415

    c = vuln_match.c
    out: dict[str, set[str]] = {}
    wanted = sorted(set(keys))
    with index.transaction() as conn:
        for i in range(0, len(wanted), _KEYS_PER_QUERY):
            q = select(c.rid, c.key).where(c.key.in_(wanted[i : i + _KEYS_PER_QUERY])).distinct()
            for rid, key in conn.execute(q):
                out.setdefault(rid, set()).add(key)
    return out
