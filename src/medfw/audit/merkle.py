"""RFC 9162 Merkle tree hashing, inclusion proofs and consistency proofs (pure functions, no I/O).

Hashing (RFC 9162 §2.1.1, unchanged from RFC 6962 §2.1): ``MTH({}) = SHA-256("")``,
``leaf = SHA-256(0x00 || d)``, ``node = SHA-256(0x01 || left || right)``, where a tree of ``n`` leaves splits at
the largest power of two smaller than ``n``.

Proof generation (:class:`MerkleTree`) follows PATH (§2.1.3.1) and SUBPROOF (§2.1.4.1). Verification follows
§2.1.3.2 and §2.1.4.2 with the edge semantics of the transparency-dev/merkle reference verifier: a leaf or root
that is not 32 bytes, an index outside the tree, a proof of the wrong length, a consistency proof from size 0,
or a proof between equal sizes that is not empty are all rejected. Verifiers raise
:class:`medfw.errors.VerificationError`; nothing in this module accepts a proof silently.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import overload

from medfw.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "CompactRange",
    "FlatLevel",
    "MerkleTree",
    "consistency_roots",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
#: the byte RFC 9162 puts before a leaf's data (0x01 before a node's children)
LEAF_PREFIX = b"\x00"
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_NODE_PREFIX = _sha256(b"\x01")  # never updated further: only copied


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _parents(level: Sequence[bytes]) -> list[bytes]:
    """Return the next level up: ``node_hash`` of each pair, then the unpaired last node (if any) unchanged.

    Copying a hash object that has already absorbed the 0x01 prefix avoids building the 65-byte input and the
    constructor's lookup of the algorithm; this is the inner loop of every tree build.
    """
    new_node = _NODE_PREFIX.copy
    out: list[bytes] = []
    add = out.append
    pairs = iter(level)
    for left, right in zip(pairs, pairs, strict=False):  # an odd last node is left over
        h = new_node()
        h.update(left)
        h.update(right)
        add(h.digest())
    if len(level) & 1:
        add(level[-1])
    return out


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a list of leaf hashes (level by level, O(n))."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        # Promoting the unpaired rightmost node unchanged gives the same root as splitting at the largest
        # power of two (RFC 9162 §2.1.1), because every left subtree is then perfect.
        level = _parents(level)
    return level[0]


class CompactRange:
    """An incremental Merkle root: the roots of the perfect subtrees covering leaves ``[0, size)``.

    Appending costs one leaf hash and, amortised, one node hash; memory is O(log n). Used by the log writer
    to compute the root for checkpoints without rereading the log.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(nodes) != size.bit_count() or any(len(n) != HASH_SIZE for n in nodes):
            raise ValueError("compact range nodes do not match its size")
        self.size = size
        self.nodes: list[bytes] = list(nodes)

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        nodes = self.nodes
        nodes.append(leaf)
        n = self.size
        while n & 1:
            right = nodes.pop()
            left = nodes.pop()
            nodes.append(_sha256(b"\x01" + left + right).digest())
            n >>= 1
        self.size += 1

    def root(self) -> bytes:
        """Return the Merkle tree hash of the leaves appended so far."""
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            acc = node_hash(node, acc)
        return acc

    def copy(self) -> CompactRange:
        """Return an independent copy."""
        return CompactRange(self.size, self.nodes)


class FlatLevel(Sequence[bytes]):
    """One tree level kept as consecutive 32-byte nodes in a buffer (an ``mmap`` filled by several processes)."""

    def __init__(self, buf: memoryview, base: int, count: int) -> None:
        self._view = buf[base : base + count * HASH_SIZE]
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> bytes: ...
    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...
    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._count))]
        if not -self._count <= i < self._count:
            raise IndexError("tree level index out of range")
        i %= self._count
        return self._view[i * HASH_SIZE : (i + 1) * HASH_SIZE].tobytes()


class MerkleTree:
    """A Merkle tree over a fixed list of leaf hashes, for producing proofs.

    Building keeps every level of perfect subtrees (O(n) hashes, O(n) memory); each proof then costs
    O(log² n) hash operations, so exporting many proofs from a large log stays cheap.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        if set(map(len, leaf_hashes)) - {HASH_SIZE}:
            raise ValueError("leaf hashes must be 32 bytes")
        self.levels: list[Sequence[bytes]] = [list(leaf_hashes)]
        while len(self.levels[-1]) > 1:
            lv = _parents(self.levels[-1])
            if len(self.levels[-1]) & 1:
                lv.pop()  # levels hold perfect subtrees only; _subtree combines the ragged right edge
            self.levels.append(lv)

    @classmethod
    def from_levels(cls, levels: Sequence[Sequence[bytes]]) -> MerkleTree:
        """Complete a tree from its lowest levels (each a list of perfect-subtree roots, as in :attr:`levels`).

        Used when the lower levels were hashed in parts (ranges aligned to a power of two at least as large as
        the highest level given): their concatenation is the whole tree's lower levels.
        """
        tree = cls.__new__(cls)
        tree.levels = [lv for lv in levels if lv] or [[]]
        while len(tree.levels[-1]) > 1:
            lv = _parents(tree.levels[-1])
            if len(tree.levels[-1]) & 1:
                lv.pop()
            tree.levels.append(lv)
        return tree

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self.levels[0])

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); ``start`` is aligned to the largest power of two not above ``end - start``."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0:
            level = n.bit_length() - 1
            return self.levels[level][start >> level]
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """Return the root of the first ``size`` leaves (default: all)."""
        n = self.size if size is None else size
        if not 0 <= n <= self.size:
            raise ValueError(f"tree size {n} is outside 0..{self.size}")
        return self._subtree(0, n)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return PATH(index, D[0:size]) (RFC 9162 §2.1.3.1)."""
        n = self.size if size is None else size
        if not 0 <= index < n <= self.size:
            raise ValueError(f"leaf index {index} is not inside a tree of size {n} (log has {self.size})")
        proof: list[bytes] = []
        start, end, m = 0, n, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                m -= k
        proof.reverse()
        return proof

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """Return PROOF(size1, D[0:size2]) (RFC 9162 §2.1.4.1); empty when the sizes are equal."""
        n = self.size if size2 is None else size2
        if not 0 < size1 <= n <= self.size:
            raise ValueError(f"consistency proof needs 0 < {size1} <= {n} <= {self.size}")
        proof: list[bytes] = []
        start, end, m, complete = 0, n, size1, True
        while True:
            if m == end - start:
                if not complete:
                    proof.append(self._subtree(start, end))
                break
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start += k
                m -= k
                complete = False
        proof.reverse()
        return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}", field=what)


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Compute the root implied by an inclusion proof (RFC 9162 §2.1.3.2).

    Raises:
        VerificationError: the index is outside the tree, a hash is not 32 bytes, or the proof length is wrong.
    """
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}", field="leaf_index")
    _check_hash(leaf, "leaf_hash")
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep", field="proof")
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep", field="proof")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` leaves with ``root``.

    Raises:
        VerificationError: the proof is malformed or does not lead to ``root``.
    """
    _check_hash(root, "root")
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if not hmac.compare_digest(computed, root):
        raise VerificationError("inclusion proof does not lead to the expected root", field="root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)`` (RFC 9162 §2.1.4.2).

    Raises:
        VerificationError: the sizes are impossible, the proof is malformed, or the roots do not match.
    """
    if size1 < 0 or size2 < size1:
        raise VerificationError(f"sizes {size1} -> {size2} go backwards", field="size2")
    if size1 == 0:
        raise VerificationError("consistency proof from an empty tree is meaningless", field="size1")
    if size1 == size2:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty", field="proof")
        if not hmac.compare_digest(root1, root2):
            raise VerificationError("roots differ for equal tree sizes", field="root2")
        return
    _check_hash(root2, "root2")
    fr, sr = consistency_roots(size1, size2, proof, root1)
    if not hmac.compare_digest(fr, root1):
        raise VerificationError("consistency proof does not lead to the first root", field="root1")
    if not hmac.compare_digest(sr, root2):
        raise VerificationError("consistency proof does not lead to the second root", field="root2")


def consistency_roots(size1: int, size2: int, proof: Sequence[bytes], root1: bytes) -> tuple[bytes, bytes]:
    """Compute the two roots a consistency proof implies (RFC 9162 §2.1.4.2 steps 2-6), for ``0 < size1 < size2``.

    :func:`verify_consistency` compares them with the expected roots.

    Raises:
        VerificationError: the sizes are impossible, a hash is not 32 bytes, or the proof length is wrong.
    """
    if not 0 < size1 < size2:
        raise VerificationError(f"consistency roots need 0 < size1 < size2, got {size1}, {size2}", field="size1")
    _check_hash(root1, "root1")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if not proof:
        raise VerificationError("consistency proof is empty", field="proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is too long", field="proof")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is too short", field="proof")
    return fr, sr
