"""Set-based reads of the ``vuln_match`` table for a scan: every row of the SBOM's keys in a few queries.

* :func:`fetch_rows` — the rows of the lookup keys, in chunks of keys inside one transaction, CRITERION rows with
  their pre-normalised bounds (:mod:`medfw.vuln.match_rows`), ordered by record and position;
* :func:`config_tiers` — per vulnerability, the most authoritative configuration tier among *all* its records
  (an override or NVD record naming other products still outranks a CVE 5 record naming this one), asked only
  for the sources that could outrank what the candidates carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import ColumnElement, LargeBinary, String, and_, column, or_, select, values

from medfw.vuln.index import VulnIndex
from medfw.vuln.match_rows import RowKind
from medfw.vuln.schema import vuln_match, vuln_record

__all__ = ["CONFIG_TIERS", "MatchRow", "candidates", "config_tiers", "fetch_rows"]

#: configuration tiers: the first tier with configurations for a CVE is used (its records together)
CONFIG_TIERS: Mapping[str, int] = {"nvd-override": 0, "nvd": 1, "cve5-cna": 2, "cve5-adp": 2, "vendor": 3}
_KEYS_PER_QUERY = 400
_IDS_PER_QUERY = 900


@dataclass(frozen=True, slots=True)
class MatchRow:
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


def _may_match(tv: ColumnElement[bytes]) -> ColumnElement[bool]:
    """The rows a target version ``tv`` (b"" when it has none) can match: TREE rows, fixed-version rows of equal
    key, unbounded rows, and bounded rows whose bounds hold (the exact decision is :func:`row_matches`)."""
    c = vuln_match.c
    lo_ok = or_(c.lo.is_(None), c.lo < tv, and_(c.lo == tv, c.lo_incl.is_(True)))
    hi_ok = or_(c.hi.is_(None), tv < c.hi, and_(tv == c.hi, c.hi_incl.is_(True)))
    bounded = and_(tv != b"", lo_ok, hi_ok)
    free = and_(c.lo.is_(None), c.hi.is_(None))
    return or_(
        c.kind == int(RowKind.TREE),
        and_(c.kind == int(RowKind.CRITERION), c.exact.is_not(None), or_(c.exact_key.is_(None), c.exact_key == tv)),
        and_(c.kind == int(RowKind.CRITERION), c.exact.is_(None), or_(free, bounded)),
    )


def fetch_rows(index: VulnIndex, targets: Mapping[str, Iterable[bytes]]) -> tuple[list[MatchRow], set[str]]:
    """The rows that can match the targets (key → target version keys, b"" for none), ordered by (rid, ord, key),
    and every key that has any row at all (what the coverage check needs).

    The version bounds are compared by the database on the stored keys, joined with the targets as a VALUES list.
    """
    c = vuln_match.c
    pairs = sorted({(k, v) for k, vs in targets.items() for v in vs})
    keys = sorted(targets)
    cols = (c.key, c.rid, c.vuln_id, c.source, c.ord, c.kind, c.criterion, c.bound)
    tests = (c.part, c.exact, c.exact_key, c.lo, c.lo_incl, c.hi, c.hi_incl, c.attrs)
    found: set[str] = set()
    seen: set[tuple[str, int, str]] = set()
    out: list[MatchRow] = []
    with index.transaction() as conn:
        for i in range(0, len(keys), _KEYS_PER_QUERY):
            chunk = keys[i : i + _KEYS_PER_QUERY]
            found.update(conn.execute(select(c.key).where(c.key.in_(chunk)).distinct()).scalars())
        for i in range(0, len(pairs), _KEYS_PER_QUERY):
            rows = pairs[i : i + _KEYS_PER_QUERY]
            t = values(column("tkey", String), column("tv", LargeBinary), name="t").data(rows).cte("t")
            q = select(*cols, *tests).select_from(vuln_match.join(t, c.key == t.c.tkey)).where(_may_match(t.c.tv))
            for r in conn.execute(q):
                ident = (r[1], r[4], r[0])
                if ident not in seen:
                    seen.add(ident)
                    out.append(MatchRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(r[8:])))
    out.sort(key=lambda m: (m.rid, m.ord, m.key))
    return out, found


def config_tiers(index: VulnIndex, best: Mapping[str, int]) -> dict[str, int]:
    """Per vulnerability id, the lowest tier of its configuration-bearing records (``best``: the candidates' own)."""
    out = dict(best)
    by_bound: dict[int, list[str]] = {}
    for vuln_id, tier in best.items():
        if tier > 0:
            by_bound.setdefault(tier, []).append(vuln_id)
    c = vuln_record.c
    with index.transaction() as conn:
        for tier, ids in sorted(by_bound.items()):
            sources = sorted(s for s, t in CONFIG_TIERS.items() if t < tier)
            q = select(c.vuln_id, c.source).where(c.has_config.is_(True), c.source.in_(sources))
            ids.sort()
            for i in range(0, len(ids), _IDS_PER_QUERY):
                for r in conn.execute(q.where(c.vuln_id.in_(ids[i : i + _IDS_PER_QUERY]))):
                    out[r.vuln_id] = min(out[r.vuln_id], CONFIG_TIERS[r.source])
    return out


def candidates(index: VulnIndex, keys: Iterable[str]) -> dict[str, set[str]]:
    """Return rid → the lookup keys it is found by, for every record naming any of ``keys`` (no version filter)."""
    c = vuln_match.c
    out: dict[str, set[str]] = {}
    wanted = sorted(set(keys))
    with index.transaction() as conn:
        for i in range(0, len(wanted), _KEYS_PER_QUERY):
            q = select(c.rid, c.key).where(c.key.in_(wanted[i : i + _KEYS_PER_QUERY])).distinct()
            for rid, key in conn.execute(q):
                out.setdefault(rid, set()).add(key)
    return out
