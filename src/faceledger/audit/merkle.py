"""RFC 6962 Merkle tree hashing: roots, inclusion proofs and consistency proofs.

A signed root of the first n entries commits to all of them at once; a consistency proof
shows that the tree of n entries is a prefix of the tree of m > n entries, so an auditor who
kept an old checkpoint can tell whether the history it covers was later rewritten or cut.
Leaves and inner nodes are hashed with different one-byte prefixes (0x00, 0x01) so that an
inner node can never be presented as a leaf.

Proof generation follows the recursive definitions of RFC 6962 section 2.1; verification
follows the iterative algorithms of RFC 9162 section 2.1.3.2 and 2.1.4.2, which check the
same proofs without the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from faceledger.errors import ValidationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 6962's split point."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of the leaves whose hashes are given (the empty tree's root is SHA-256 of nothing)."""
    if not hashes:
        return EMPTY_ROOT
    return _subtree_root(hashes, 0, len(hashes))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaves' data, as the RFC defines it."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def _subtree_root(hashes: Sequence[bytes], start: int, end: int) -> bytes:
    if end - start == 1:
        return hashes[start]
    k = _split(end - start)
    return node_hash(_subtree_root(hashes, start, start + k), _subtree_root(hashes, start + k, end))


def inclusion_proof(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the sibling hashes from leaf ``index`` up to the root, leaf side first."""
    if not 0 <= index < len(hashes):
        raise ValidationError(f"no leaf {index} in a tree of {len(hashes)} leaves")
    return _path(hashes, index, 0, len(hashes))


def _path(hashes: Sequence[bytes], index: int, start: int, end: int) -> list[bytes]:
    if end - start == 1:
        return []
    k = _split(end - start)
    if index < k:
        return [*_path(hashes, index, start, start + k), _subtree_root(hashes, start + k, end)]
    return [*_path(hashes, index - k, start + k, end), _subtree_root(hashes, start, start + k)]


def consistency_proof(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]): what shows the first ``old_size`` leaves are a prefix of all ``n``."""
    if not 0 <= old_size <= len(hashes):
        raise ValidationError(f"cannot prove consistency from size {old_size} to size {len(hashes)}")
    if old_size in (0, len(hashes)):
        return []
    return _subproof(hashes, old_size, 0, len(hashes), complete=True)


def _subproof(hashes: Sequence[bytes], m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [_subtree_root(hashes, start, end)]
    k = _split(n)
    if m <= k:
        return [
            *_subproof(hashes, m, start, start + k, complete=complete),
            _subtree_root(hashes, start + k, end),
        ]
    return [
        *_subproof(hashes, m - k, start + k, end, complete=False),
        _subtree_root(hashes, start, start + k),
    ]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether ``proof`` shows the leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node of the new tree
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == old_root and sr == new_root


class MerkleAccumulator:
    """The root of a growing log in O(log n) memory and time per entry.

    It keeps the roots of the perfect subtrees the leaves so far decompose into (at most one
    per bit of the size); RFC 6962's root is those, folded from the smallest to the largest.
    Those roots, largest (leftmost) subtree first, are the *frontier*: with the size they are
    all a log needs to go on growing, so the audit service stores them with each checkpoint
    and the next checkpoint reads only the entries after it (:meth:`from_frontier`).
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleAccumulator:
        """The accumulator of a tree of ``size`` leaves, from its frontier (as :attr:`frontier` gives).

        Refuses (:class:`ValidationError`) a negative size, a frontier with other than one hash
        per one bit of ``size``, and a hash of other than 32 bytes. Nothing here can tell a
        forged frontier from a true one: a caller that trusts a stored frontier checks that
        :meth:`root` gives a root it has a signature for.
        """
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValidationError(f"a tree size is a whole number >= 0, got {size!r}")
        hashes = list(frontier)
        expected = size.bit_count()
        if len(hashes) != expected:
            raise ValidationError(
                f"a tree of {size} leaves has a frontier of {expected} hashes, got {len(hashes)}"
            )
        for node in hashes:
            if not isinstance(node, bytes) or len(node) != HASH_SIZE:
                got = len(node) if isinstance(node, bytes) else type(node).__name__
                raise ValidationError(f"a frontier hash is {HASH_SIZE} bytes, got {got}")
        tree = cls()
        tree._size = size
        tree._stack = hashes
        return tree

    @property
    def size(self) -> int:
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees of the leaves so far, largest (leftmost) first."""
        return tuple(self._stack)

    def copy(self) -> MerkleAccumulator:
        """An independent accumulator in the same state (appending to one leaves the other alone)."""
        return MerkleAccumulator.from_frontier(self._size, self._stack)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash (not the leaf data)."""
        if len(leaf) != HASH_SIZE:
            raise ValidationError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        node, size = leaf, self._size
        while size & 1:  # each trailing one bit is a perfect subtree the new leaf completes
            node = node_hash(self._stack.pop(), node)
            size >>= 1
        self._stack.append(node)
        self._size += 1

    def extend(self, leaves: Sequence[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node
