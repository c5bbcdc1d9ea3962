"""RFC 9162 Merkle proofs: transparency-dev/merkle vectors and an all-proofs bit-flip property test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.audit import merkle as M  # noqa: N812
from medfw.errors import VerificationError

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "merkle" / "rfc9162_vectors.json").read_text())


def _h(xs: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in xs]


def _probe_id(p: dict[str, Any]) -> str:
    return str(p["file"]).removeprefix("testdata/")


def test_vector_counts() -> None:
    probes = VECTORS["inclusion_probes"] + VECTORS["consistency_probes"]
    assert len(VECTORS["inclusion_probes"]) == 98
    assert len(VECTORS["consistency_probes"]) == 98
    assert sum(p["want_error"] for p in probes) == 184


@pytest.mark.parametrize("probe", VECTORS["inclusion_probes"], ids=_probe_id)
def test_inclusion_probe(probe: dict[str, Any]) -> None:
    args = (probe["leaf_index"], probe["tree_size"], bytes.fromhex(probe["leaf_hash"]), _h(probe["proof"]))
    if probe["want_error"]:
        with pytest.raises(VerificationError):
            M.verify_inclusion(*args, bytes.fromhex(probe["root"]))
    else:
        M.verify_inclusion(*args, bytes.fromhex(probe["root"]))


@pytest.mark.parametrize("probe", VECTORS["consistency_probes"], ids=_probe_id)
def test_consistency_probe(probe: dict[str, Any]) -> None:
    args = (probe["size1"], probe["size2"], _h(probe["proof"]), bytes.fromhex(probe["root1"]))
    if probe["want_error"]:
        with pytest.raises(VerificationError):
            M.verify_consistency(*args, bytes.fromhex(probe["root2"]))
    else:
        M.verify_consistency(*args, bytes.fromhex(probe["root2"]))


def test_hasher_vectors() -> None:
    for v in VECTORS["hasher_vectors"]:
        if v["op"] == "empty_root":
            got = M.EMPTY_ROOT
        elif v["op"] == "leaf":
            got = M.leaf_hash(bytes.fromhex(v["input_hex"]))
        else:
            got = M.node_hash(bytes.fromhex(v["left_hex"]), bytes.fromhex(v["right_hex"]))
        assert got.hex() == v["want"], v["desc"]


REF_LEAVES = [M.leaf_hash(bytes.fromhex(x)) for x in VECTORS["reference_tree"]["leaf_inputs_hex"]]


def test_reference_tree_roots() -> None:
    tree = M.MerkleTree(REF_LEAVES)
    for size, root in VECTORS["reference_tree"]["root_by_tree_size"].items():
        n = int(size)
        assert tree.root(n).hex() == root
        assert M.root_of(REF_LEAVES[:n]).hex() == root
        cr = M.CompactRange()
        for leaf in REF_LEAVES[:n]:
            cr.append(leaf)
        assert cr.root().hex() == root


def test_generated_proofs_match_reference() -> None:
    tree = M.MerkleTree(REF_LEAVES)
    gen = VECTORS["generated_from_reference_tree"]
    for p in gen["inclusion"]:
        assert [x.hex() for x in tree.inclusion_proof(p["leaf_index"], p["tree_size"])] == p["proof"]
    for p in gen["consistency"]:
        assert [x.hex() for x in tree.consistency_proof(p["size1"], p["size2"])] == p["proof"]
    assert len(gen["inclusion"]) == 36
    assert len(gen["consistency"]) == 36


def _flipped(h: bytes) -> list[bytes]:
    """Every single-bit corruption of ``h``."""
    v = int.from_bytes(h, "big")
    return [(v ^ (1 << bit)).to_bytes(len(h), "big") for bit in range(len(h) * 8)]


# Split into groups so pytest-xdist spreads the work; together they cover every tree size 1..64.
GROUPS = [range(1, 40), range(40, 52), range(52, 60), range(60, 65)]
LEAVES = [M.leaf_hash(i.to_bytes(2, "big")) for i in range(64)]


@pytest.mark.slow
@pytest.mark.parametrize("sizes", GROUPS, ids=lambda r: f"{r.start}-{r.stop - 1}")
def test_all_inclusion_proofs_and_every_bit_flip(sizes: range) -> None:
    """Every inclusion proof of every tree up to 64 leaves verifies; every single-bit flip of any proof hash
    changes the computed root (so :func:`verify_inclusion` rejects it), and the raising verifier rejects one
    flip per hash too."""
    root_from = M.root_from_inclusion_proof
    flips = 0
    for n in sizes:
        tree = M.MerkleTree(LEAVES[:n])
        root = tree.root()
        for m in range(n):
            leaf = LEAVES[m]
            proof = tree.inclusion_proof(m, n)
            M.verify_inclusion(m, n, leaf, proof, root)
            for i, h in enumerate(proof):
                bad = list(proof)
                for corrupted in _flipped(h):
                    bad[i] = corrupted
                    assert root_from(m, n, leaf, bad) != root
                    flips += 1
                with pytest.raises(VerificationError):
                    M.verify_inclusion(m, n, leaf, bad, root)
            with pytest.raises(VerificationError):
                M.verify_inclusion(m, n, _flipped(leaf)[m], proof, root)
    assert flips > 0


@pytest.mark.slow
@pytest.mark.parametrize("sizes", GROUPS, ids=lambda r: f"{r.start}-{r.stop - 1}")
def test_all_consistency_proofs_and_every_bit_flip(sizes: range) -> None:
    """Every consistency proof between sizes 1 <= m <= n <= 64 verifies; every single-bit flip of any proof
    hash changes one of the two computed roots (so :func:`verify_consistency` rejects it)."""
    roots_from = M.consistency_roots
    for n in sizes:
        tree = M.MerkleTree(LEAVES[:n])
        root2 = tree.root()
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            root1 = tree.root(m)
            M.verify_consistency(m, n, proof, root1, root2)
            if m == n:
                assert proof == []
                continue
            for i, h in enumerate(proof):
                bad = list(proof)
                for corrupted in _flipped(h):
                    bad[i] = corrupted
                    assert roots_from(m, n, bad, root1) != (root1, root2)
                with pytest.raises(VerificationError):
                    M.verify_consistency(m, n, bad, root1, root2)
            with pytest.raises(VerificationError):
                M.verify_consistency(m, n, proof, _flipped(root1)[n], root2)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 200),
    data=st.data(),
)
def test_random_trees_roundtrip(n: int, data: st.DataObject) -> None:
    leaves = [M.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = M.MerkleTree(leaves)
    m = data.draw(st.integers(0, n - 1))
    assert M.root_from_inclusion_proof(m, n, leaves[m], tree.inclusion_proof(m)) == tree.root()
    size1 = data.draw(st.integers(1, n))
    M.verify_consistency(size1, n, tree.consistency_proof(size1), tree.root(size1), tree.root())
    assert M.root_of(leaves) == tree.root()


@settings(max_examples=80, deadline=None)
@given(
    index=st.integers(-3, 70),
    size=st.integers(-3, 70),
    proof=st.lists(st.binary(min_size=0, max_size=40), max_size=8),
    leaf=st.binary(min_size=0, max_size=40),
    root=st.binary(min_size=0, max_size=40),
)
def test_garbage_inclusion_proofs_rejected_cleanly(
    index: int, size: int, proof: list[bytes], leaf: bytes, root: bytes
) -> None:
    with pytest.raises(VerificationError):
        M.verify_inclusion(index, size, leaf, proof, root)


@settings(max_examples=80, deadline=None)
@given(
    size1=st.integers(-3, 70),
    size2=st.integers(-3, 70),
    proof=st.lists(st.binary(min_size=0, max_size=40), min_size=1, max_size=8),
    root1=st.binary(min_size=32, max_size=32),
    root2=st.binary(min_size=32, max_size=32),
)
def test_garbage_consistency_proofs_rejected_cleanly(
    size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes
) -> None:
    with pytest.raises(VerificationError):
        M.verify_consistency(size1, size2, proof, root1, root2)


def test_proof_generation_bounds() -> None:
    tree = M.MerkleTree(REF_LEAVES)
    with pytest.raises(ValueError):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError):
        tree.consistency_proof(0, 8)
    with pytest.raises(ValueError):
        tree.root(9)
    with pytest.raises(ValueError):
        M.CompactRange(3, [b"\x00" * 32])
    assert M.MerkleTree([]).root() == M.EMPTY_ROOT


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=5), st.integers(0, 5))
def test_tree_from_levels_hashed_in_aligned_parts(n: int, parts: int, bits: int) -> None:
    """Parts that start at multiples of 2**bits hash their own levels 0..bits; concatenated, they are the tree's."""
    leaves = [M.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    unit = 1 << bits
    per_part = (n + parts - 1) // parts
    step = (per_part + unit - 1) // unit * unit
    levels: list[list[bytes]] = [[] for _ in range(bits + 1)]
    for lo in range(0, n, step):
        for lv, nodes in zip(levels, M.MerkleTree(leaves[lo : lo + step]).levels[: bits + 1], strict=False):
            lv.extend(nodes)
    whole = M.MerkleTree(leaves)
    built = M.MerkleTree.from_levels(levels)
    assert built.levels == whole.levels
    assert built.root() == whole.root() and built.root(n // 2 or 1) == whole.root(n // 2 or 1)
