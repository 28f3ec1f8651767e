"""RFC 6962 Merkle trees, against hand-built trees, published test vectors and properties."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceledger.audit import verify
from faceledger.audit.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from faceledger.errors import ValidationError


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def L(data: bytes) -> bytes:
    return H(b"\x00" + data)


def N(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


# The seven-leaf tree drawn in RFC 6962 section 2.1.3, with its labels:
#            hash
#          /      \
#         k        l
#        / \      / \
#       g   h    i   j
#      / \ / \  / \  |
#      a b c d  e f  d6
D = [f"d{i}".encode() for i in range(7)]
a, b, c, d, e, f = (L(x) for x in D[:6])
g, h, i, j = N(a, b), N(c, d), N(e, f), L(D[6])
k, l_ = N(g, h), N(i, j)
ROOT7 = N(k, l_)
LEAVES7 = [L(x) for x in D]


def test_hand_built_roots() -> None:
    assert merkle_root([]) == EMPTY_ROOT == H(b"")
    assert merkle_root(D[:1]) == a
    assert merkle_root(D[:2]) == g
    assert merkle_root(D[:3]) == N(g, c)  # split at 2: the odd leaf is promoted, not duplicated
    assert merkle_root(D[:4]) == k
    assert merkle_root(D[:5]) == N(k, e)
    assert merkle_root(D[:6]) == N(k, i)
    assert merkle_root(D[:7]) == ROOT7


def test_rfc_inclusion_examples() -> None:
    assert inclusion_proof(LEAVES7, 0) == [b, h, l_]
    assert inclusion_proof(LEAVES7, 3) == [c, g, l_]
    assert inclusion_proof(LEAVES7, 4) == [f, j, k]
    assert inclusion_proof(LEAVES7, 6) == [i, k]


def test_rfc_consistency_examples() -> None:
    assert consistency_proof(LEAVES7, 3) == [c, d, g, l_]
    assert consistency_proof(LEAVES7, 4) == [l_]
    assert consistency_proof(LEAVES7, 6) == [i, j, k]
    assert verify_consistency(3, 7, N(g, c), ROOT7, [c, d, g, l_])
    assert verify_consistency(4, 7, k, ROOT7, [l_])
    assert verify_consistency(6, 7, N(k, i), ROOT7, [i, j, k])


# Reference leaves and tree heads of the certificate-transparency project's tests.
CT_LEAVES = [
    bytes.fromhex(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_certificate_transparency_tree_heads(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]


def test_certificate_transparency_inclusion_vector() -> None:
    proof = inclusion_proof([leaf_hash(x) for x in CT_LEAVES], 0)
    assert [p.hex() for p in proof] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_only_for_its_leaf(case: tuple[int, int]) -> None:
    n, index = case
    hashes = _leaves(n)
    root = root_from_leaf_hashes(hashes)
    proof = inclusion_proof(hashes, index)
    assert verify_inclusion(hashes[index], index, n, proof, root)
    assert not verify_inclusion(leaf_hash(b"other"), index, n, proof, root)
    if n > 1:
        assert not verify_inclusion(hashes[index], (index + 1) % n, n, proof, root)
    for pos in range(len(proof)):
        bad = [*proof[:pos], H(proof[pos]), *proof[pos + 1 :]]
        assert not verify_inclusion(hashes[index], index, n, bad, root)
    assert not verify_inclusion(hashes[index], index, n, [*proof, a], root)


@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    m, n = case
    hashes = _leaves(n)
    old, new = root_from_leaf_hashes(hashes[:m]), root_from_leaf_hashes(hashes)
    proof = consistency_proof(hashes, m)
    assert verify_consistency(m, n, old, new, proof)
    if m > 0:  # every tree extends the empty one, so from size 0 any new root is consistent
        assert not verify_consistency(m, n, old, H(new), proof)
        assert not verify_consistency(m, n, H(old), new, proof)
    for pos in range(len(proof)):
        bad = [*proof[:pos], H(proof[pos]), *proof[pos + 1 :]]
        assert not verify_consistency(m, n, old, new, bad)


@given(st.integers(2, 70).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n))))
def test_a_rewritten_prefix_is_not_consistent(case: tuple[int, int]) -> None:
    """The auditor's old root cannot be extended by a log whose early entries changed."""
    m, n = case
    hashes = _leaves(n)
    old = root_from_leaf_hashes(hashes[:m])
    rewritten = [leaf_hash(b"rewritten"), *hashes[1:]]
    proof = consistency_proof(rewritten, m)
    assert not verify_consistency(m, n, old, root_from_leaf_hashes(rewritten), proof)


def test_impossible_sizes() -> None:
    hashes = _leaves(5)
    with pytest.raises(ValidationError, match="no leaf 5"):
        inclusion_proof(hashes, 5)
    with pytest.raises(ValidationError, match="size 6 to size 5"):
        consistency_proof(hashes, 6)
    root = root_from_leaf_hashes(hashes)
    assert not verify_inclusion(hashes[0], 5, 5, [], root)
    assert not verify_consistency(6, 5, root, root, [])
    assert not verify_consistency(3, 5, root, root, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert verify_consistency(5, 5, root, root, [])


def test_accumulator_matches_the_recursive_definition() -> None:
    hashes = _leaves(70)
    acc = MerkleAccumulator()
    assert acc.root() == EMPTY_ROOT
    for n, leaf in enumerate(hashes, start=1):
        acc.append(leaf)
        assert (acc.size, acc.root()) == (n, root_from_leaf_hashes(hashes[:n]))
    with pytest.raises(ValidationError, match="32 bytes"):
        acc.append(b"short")


def test_the_standalone_verifier_computes_the_same_roots() -> None:
    hashes = _leaves(70)
    sizes = set(range(71))
    assert verify.roots_at(hashes, sizes) == {n: root_from_leaf_hashes(hashes[:n]) for n in sizes}


def test_an_accumulator_rebuilt_from_its_frontier_has_the_same_root_and_grows_the_same() -> None:
    hashes = _leaves(140)
    acc = MerkleAccumulator()
    assert MerkleAccumulator.from_frontier(0, acc.frontier).root() == EMPTY_ROOT
    for n, leaf in enumerate(hashes, start=1):
        acc.append(leaf)
        frontier = acc.frontier
        assert len(frontier) == n.bit_count()
        rebuilt = MerkleAccumulator.from_frontier(n, frontier)
        assert (rebuilt.size, rebuilt.root()) == (n, acc.root())
        rebuilt.extend(hashes[n : n + 9])  # and carries on as if it had seen every leaf
        end = min(n + 9, len(hashes))
        assert (rebuilt.size, rebuilt.root()) == (end, root_from_leaf_hashes(hashes[:end]))


def test_the_frontier_is_the_perfect_subtree_roots_largest_first() -> None:
    acc = MerkleAccumulator()
    acc.extend(LEAVES7)
    assert acc.frontier == (k, i, j)  # 7 = 4 + 2 + 1: subtrees k (d0..d3), i (d4, d5), j (d6)


@given(st.integers(min_value=0, max_value=1 << 40))
def test_from_frontier_takes_exactly_one_hash_per_one_bit_of_the_size(size: int) -> None:
    wanted = size.bit_count()
    assert MerkleAccumulator.from_frontier(size, [a] * wanted).size == size
    with pytest.raises(ValidationError, match=f"frontier of {wanted} hashes, got {wanted + 1}"):
        MerkleAccumulator.from_frontier(size, [a] * (wanted + 1))
    if wanted:
        with pytest.raises(ValidationError, match=f"frontier of {wanted} hashes, got {wanted - 1}"):
            MerkleAccumulator.from_frontier(size, [a] * (wanted - 1))


def test_from_frontier_refuses_bad_hashes_and_sizes() -> None:
    with pytest.raises(ValidationError, match="32 bytes, got 31"):
        MerkleAccumulator.from_frontier(3, [a, a[:31]])
    with pytest.raises(ValidationError, match="32 bytes, got 33"):
        MerkleAccumulator.from_frontier(1, [a + b"x"])
    with pytest.raises(ValidationError, match="32 bytes, got str"):
        MerkleAccumulator.from_frontier(1, [a.hex()])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="whole number"):
        MerkleAccumulator.from_frontier(-1, [])
    with pytest.raises(ValidationError, match="whole number"):
        MerkleAccumulator.from_frontier(True, [a])


def test_a_copy_grows_on_its_own() -> None:
    acc = MerkleAccumulator()
    acc.extend(LEAVES7[:5])
    twin = acc.copy()
    twin.extend(LEAVES7[5:])
    assert (acc.size, acc.root()) == (5, root_from_leaf_hashes(LEAVES7[:5]))
    assert (twin.size, twin.root()) == (7, ROOT7)
    acc.append(LEAVES7[5])
    assert twin.root() == ROOT7
