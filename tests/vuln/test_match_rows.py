"""Matching on rows prepared at import decides exactly what evaluating the stored configurations decides."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert

from medfw.vuln.configuration import Target, evaluate
from medfw.vuln.cpe import parse_cpe
from medfw.vuln.index import VulnIndex
from medfw.vuln.match_rows import RowKind, match_rows, row_matches, target_key
from medfw.vuln.match_store import fetch_rows
from medfw.vuln.schema import metadata, vuln_match
from medfw.vuln.version import version_key

_VERSIONS = ["0.9", "1.0", "1.0.0", "1.0.1", "1.1.1", "1.1.1w", "2.0rc1", "2.0", "3", "10.2.1", "1.0.2zj"]
_KEYS = ["acme:lib", "acme:tool", "other:lib"]
_version = st.sampled_from(_VERSIONS)
_bound_value = st.one_of(_version, st.just("not a version!"))


@st.composite
def _criterion(draw: st.DrawFn) -> dict[str, Any]:
    vendor, product = draw(st.sampled_from(_KEYS)).split(":")
    part = draw(st.sampled_from(["a", "o", "*"]))
    version = draw(st.sampled_from(["*", "*", "*", "-", "1.0", "1.1.1w", "2.0rc1", "1.0.0"]))
    update = draw(st.sampled_from(["*", "*", "*", "-", "p1"]))
    m: dict[str, Any] = {
        "criteria": f"cpe:2.3:{part}:{vendor}:{product}:{version}:{update}:*:*:*:*:*:*",
        "vulnerable": draw(st.booleans()),
    }
    lo = draw(st.sampled_from([None, "versionStartIncluding", "versionStartExcluding"]))
    hi = draw(st.sampled_from([None, "versionEndIncluding", "versionEndExcluding"]))
    for name in (lo, hi):
        if name:
            m[name] = draw(_bound_value)
    return m


@st.composite
def _configurations(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 2))):
        nodes = []
        for _ in range(draw(st.integers(1, 2))):
            node: dict[str, Any] = {"cpeMatch": draw(st.lists(_criterion(), min_size=1, max_size=3))}
            if draw(st.integers(0, 5)) == 0:
                node["operator"] = "AND"
            if draw(st.integers(0, 9)) == 0:
                node["negate"] = True
            nodes.append(node)
        conf: dict[str, Any] = {"nodes": nodes}
        if draw(st.integers(0, 4)) == 0:
            conf["operator"] = "AND"
        out.append(conf)
    return out


@st.composite
def _targets(draw: st.DrawFn) -> dict[str, list[Target]]:
    by_key: dict[str, list[Target]] = {}
    for i in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(_KEYS))
        part = draw(st.sampled_from(["a", "o"]))
        version = draw(st.one_of(_version, st.sampled_from(["*", "-", "abc"])))
        update = draw(st.sampled_from(["*", "*", "p1", "-"]))
        vendor, product = key.split(":")
        cpe = parse_cpe(f"cpe:2.3:{part}:{vendor}:{product}:{version}:{update}:*:*:*:*:*:*")
        by_key.setdefault(key, []).append(Target(f"c{i}", cpe, f"id{i}"))
    return by_key


@pytest.fixture(scope="module")
def memory_index() -> Iterator[VulnIndex]:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    yield VulnIndex(engine, "sqlite://")
    engine.dispose()


def _row_hits(index: VulnIndex, configs: list[dict[str, Any]], by_key: dict[str, list[Target]]) -> list[Any] | None:
    rows, tree = match_rows({"configurations": configs})
    if tree:
        return None
    with index.transaction() as conn:
        conn.execute(vuln_match.delete())
        if rows:
            conn.execute(
                insert(vuln_match), [{**r, "rid": "nvd|CVE-1", "vuln_id": "CVE-1", "source": "nvd"} for r in rows]
            )
    keyed = {k: [(t, target_key(t.cpe)) for t in ts] for k, ts in by_key.items()}
    lookup = {f"cpe:{k}": {tk.key or b"" for _, tk in ts} for k, ts in keyed.items()}
    fetched, found = fetch_rows(index, lookup)
    assert found == {r["key"] for r in rows} & set(lookup)
    hits = []
    for r in fetched:
        assert r.kind == RowKind.CRITERION
        for t, tk in keyed[r.key.removeprefix("cpe:")]:
            if row_matches(r.test, tk):
                hits.append((t.ref, r.criterion, r.bound, t.identity))
    return hits


@settings(max_examples=300, deadline=None)
@given(_configurations(), _targets())
def test_rows_decide_as_the_configuration_tree(
    memory_index: VulnIndex, configs: list[dict[str, Any]], by_key: dict[str, list[Target]]
) -> None:
    got = _row_hits(memory_index, configs, by_key)
    if got is None:  # evaluated as a whole at scan time: nothing to compare
        return
    expected = [(h.ref, h.criterion, h.bound, h.identity) for h in evaluate(configs, by_key)]
    assert got == expected


def test_platform_configurations_are_evaluated_as_a_tree() -> None:
    app = {"criteria": "cpe:2.3:a:acme:lib:*:*:*:*:*:*:*:*", "vulnerable": True}
    platform = {"criteria": "cpe:2.3:o:acme:rtos:-:*:*:*:*:*:*:*", "vulnerable": False}
    configs = [{"operator": "AND", "nodes": [{"cpeMatch": [app]}, {"cpeMatch": [platform]}]}]
    rows, tree = match_rows({"configurations": configs})
    assert tree and [(r["key"], r["kind"]) for r in rows] == [("cpe:acme:lib", RowKind.TREE)]
    assert match_rows({"configurations": configs, "rejected": True}) == ([], False)


def test_bounds_are_stored_as_version_keys() -> None:
    m = {"criteria": "cpe:2.3:a:acme:lib:*:*:*:*:*:*:*:*", "vulnerable": True, "versionStartIncluding": "1.0"}
    m["versionEndExcluding"] = "1.1.1w"
    rows, tree = match_rows({"configurations": [{"nodes": [{"cpeMatch": [m]}]}]})
    assert not tree
    (row,) = rows
    assert (row["lo"], row["lo_incl"], row["hi"], row["hi_incl"]) == (
        version_key("1.0"),
        True,
        version_key("1.1.1w"),
        False,
    )
    assert row["bound"] == "1.0 <= v < 1.1.1w"
    dead = {**m, "versionEndExcluding": "not a version!"}
    assert match_rows({"configurations": [{"nodes": [{"cpeMatch": [dead]}]}]})[0][0]["kind"] == RowKind.DEAD
