"""Tests of server.core.merkle: published vectors, exhaustive checks against a naive reference."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from server.core.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

# ---------------------------------------------------------------------------------------------
# Known answers. Source: github.com/transparency-dev/merkle, files rfc6962/rfc6962_test.go
# (hasher vectors), testonly/constants.go (leaf inputs, node hashes, roots, compact trees) and
# proof/verify_test.go (inclusion and consistency proofs), the RFC 6962 vectors also used by
# google/certificate-transparency. RFC 9162 hashes exactly like RFC 6962.
# ---------------------------------------------------------------------------------------------

KAT_LEAF_INPUTS = [
    h(""),
    h("00"),
    h("10"),
    h("2021"),
    h("3031"),
    h("40414243"),
    h("5051525354555657"),
    h("606162636465666768696a6b6c6d6e6f"),
]

# KAT_NODES[level][index]: hash of the complete subtree of 2**level leaves at that position.
KAT_NODES = [
    [
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        h("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        h("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        h("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        h("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# KAT_ROOTS[size] for the first `size` of KAT_LEAF_INPUTS.
KAT_ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

# (index, tree size, proof). verify_test.go numbers leaves from 1; these are 0-based indexes.
KAT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, proof)
KAT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

KAT_LEAVES = [leaf_hash(d) for d in KAT_LEAF_INPUTS]
KAT_TREE = MerkleTree(KAT_LEAVES)


def test_hasher_vectors() -> None:
    empty = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert empty == EMPTY_ROOT
    # The empty tree's root is not the hash of an empty leaf.
    assert leaf_hash(b"") == h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == h(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )
    assert node_hash(b"N123", b"N456") == h(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert a != b
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)


def test_node_vectors() -> None:
    assert KAT_NODES[0] == KAT_LEAVES
    for level, row in enumerate(KAT_NODES):
        width = 1 << level
        for j, want in enumerate(row):
            assert MerkleTree(KAT_LEAVES[j * width : (j + 1) * width]).root() == want


def test_root_vectors() -> None:
    for size, want in enumerate(KAT_ROOTS):
        assert KAT_TREE.root(size) == want
        assert MerkleTree(KAT_LEAVES[:size]).root() == want
    assert KAT_TREE.root() == KAT_ROOTS[8]
    assert MerkleTree([]).root() == EMPTY_ROOT


@pytest.mark.parametrize(("index", "size", "proof"), KAT_INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    assert KAT_TREE.inclusion_proof(index, size) == proof
    assert verify_inclusion(KAT_LEAVES[index], index, size, proof, KAT_ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), KAT_CONSISTENCY)
def test_consistency_vectors(old: int, new: int, proof: list[bytes]) -> None:
    assert KAT_TREE.consistency_proof(old, new) == proof
    assert verify_consistency(old, new, KAT_ROOTS[old], KAT_ROOTS[new], proof)


def test_compact_range_vectors() -> None:
    # testonly/constants.go CompactTrees(): the right-edge stack for every size 0..8.
    nh = KAT_NODES
    want = [
        [],
        [nh[0][0]],
        [nh[1][0]],
        [nh[1][0], nh[0][2]],
        [nh[2][0]],
        [nh[2][0], nh[0][4]],
        [nh[2][0], nh[1][2]],
        [nh[2][0], nh[1][2], nh[0][6]],
        [nh[3][0]],
    ]
    cr = CompactRange()
    assert cr.to_list() == want[0]
    for size, leaf in enumerate(KAT_LEAVES, start=1):
        cr.append(leaf)
        assert cr.to_list() == want[size]
        assert cr.root() == KAT_ROOTS[size]


# ---------------------------------------------------------------------------------------------
# Naive reference, straight from the recursive definitions of RFC 9162 §2.1.1 (MTH),
# §2.1.3.1 (PATH) and §2.1.4.1 (PROOF / SUBPROOF), over leaf hashes.
# ---------------------------------------------------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# ---------------------------------------------------------------------------------------------
# Exhaustive checks
# ---------------------------------------------------------------------------------------------

MAX_INCLUSION = 70
MAX_CONSISTENCY = 40
LEAVES = [leaf_hash(b"entry %d" % i) for i in range(200)]
TREE = MerkleTree(LEAVES[:MAX_INCLUSION])
OTHER_HASH = hashlib.sha256(b"some other hash").digest()


def flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 0x10]) + b[1:]


def test_reference_matches_vectors() -> None:
    # The reference itself is checked against the published answers before it judges anything.
    for size, want in enumerate(KAT_ROOTS):
        assert ref_mth(KAT_LEAVES[:size]) == want
    for index, size, proof in KAT_INCLUSION:
        assert ref_path(index, KAT_LEAVES[:size]) == proof
    for old, new, proof in KAT_CONSISTENCY:
        assert ref_proof(old, KAT_LEAVES[:new]) == proof


@pytest.mark.parametrize("size", range(1, MAX_INCLUSION + 1))
def test_inclusion_exhaustive(size: int) -> None:
    root = TREE.root(size)
    assert root == ref_mth(LEAVES[:size])
    own = MerkleTree(LEAVES[:size])
    assert own.root() == root
    for i in range(size):
        leaf = LEAVES[i]
        proof = TREE.inclusion_proof(i, size)
        assert proof == ref_path(i, LEAVES[:size]), (i, size)
        assert own.inclusion_proof(i) == proof
        assert verify_inclusion(leaf, i, size, proof, root)

        # The wrong leaf, index, tree height or root.
        assert not verify_inclusion(flip(leaf), i, size, proof, root)
        assert not verify_inclusion(OTHER_HASH, i, size, proof, root)
        for j in range(size):
            if j != i:
                assert not verify_inclusion(leaf, j, size, proof, root), (i, j, size)
        assert not verify_inclusion(leaf, i, size * 2, proof, root)
        assert not verify_inclusion(leaf, i, size // 2, proof, root)
        assert not verify_inclusion(leaf, i, size, proof, flip(root))
        assert not verify_inclusion(leaf, i, size, proof, EMPTY_ROOT)

        # A changed, missing or extra proof element.
        for e in range(len(proof)):
            bad = list(proof)
            bad[e] = flip(bad[e])
            assert not verify_inclusion(leaf, i, size, bad, root)
        if proof:
            assert not verify_inclusion(leaf, i, size, proof[:-1], root)
            assert not verify_inclusion(leaf, i, size, proof[1:], root)
        assert not verify_inclusion(leaf, i, size, [*proof, root], root)
        assert not verify_inclusion(leaf, i, size, [*proof, OTHER_HASH], root)
        assert not verify_inclusion(leaf, i, size, [root, *proof], root)
        assert not verify_inclusion(leaf, i, size, [OTHER_HASH, *proof], root)


@pytest.mark.parametrize("new", range(1, MAX_CONSISTENCY + 1))
def test_consistency_exhaustive(new: int) -> None:
    new_root = TREE.root(new)
    own = MerkleTree(LEAVES[:new])
    for old in range(1, new + 1):
        old_root = TREE.root(old)
        proof = TREE.consistency_proof(old, new)
        assert proof == ref_proof(old, LEAVES[:new]), (old, new)
        assert own.consistency_proof(old) == proof
        assert verify_consistency(old, new, old_root, new_root, proof)

        if old == new:
            assert proof == []
            assert not verify_consistency(old, new, old_root, flip(new_root), proof)
            assert not verify_consistency(old, new, old_root, new_root, [old_root])
            continue

        # The wrong roots or sizes.
        assert not verify_consistency(old, new, flip(old_root), new_root, proof)
        assert not verify_consistency(old, new, old_root, flip(new_root), proof)
        assert not verify_consistency(old, new, new_root, old_root, proof)
        assert not verify_consistency(old, new, old_root, old_root, proof)
        assert not verify_consistency(new, old, old_root, new_root, proof)
        assert not verify_consistency(old, new * 2, old_root, new_root, proof)
        for other in (old - 1, old + 1, old ^ 2):
            if 0 < other <= new and other != old:
                assert not verify_consistency(other, new, old_root, new_root, proof), (
                    other,
                    new,
                )

        # A changed, missing or extra proof element.
        assert not verify_consistency(old, new, old_root, new_root, [])
        for e in range(len(proof)):
            bad = list(proof)
            bad[e] = flip(bad[e])
            assert not verify_consistency(old, new, old_root, new_root, bad)
        assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
        assert not verify_consistency(old, new, old_root, new_root, proof[1:])
        for extra in (old_root, new_root, proof[0], OTHER_HASH):
            assert not verify_consistency(old, new, old_root, new_root, [*proof, extra])
            assert not verify_consistency(old, new, old_root, new_root, [extra, *proof])


def test_compact_range_matches_tree() -> None:
    tree = MerkleTree(LEAVES)
    cr = CompactRange()
    assert cr.root() == EMPTY_ROOT
    assert CompactRange.from_list(0, []) == cr
    for size, leaf in enumerate(LEAVES, start=1):
        cr.append(leaf)
        assert cr.size == len(cr) == size
        assert cr.root() == tree.root(size)
        stored = cr.to_list()
        assert len(stored) == size.bit_count()
        restored = CompactRange.from_list(size, stored)
        assert restored == cr
        assert restored.root() == cr.root()
        # A restored range keeps growing like the original.
        if size < len(LEAVES):
            restored.append(LEAVES[size])
            assert restored.root() == tree.root(size + 1)
    # to_list hands out a copy: changing it does not touch the range.
    cr.to_list().clear()
    assert cr.root() == tree.root()


def test_larger_tree_cross_check() -> None:
    # Past a power of two, with a ragged right edge several levels deep.
    n = (1 << 14) + 7
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = MerkleTree(leaves)
    cr = CompactRange()
    cr.extend(leaves)
    assert tree.root() == cr.root()
    for size in (1, 2, 3, 1 << 13, (1 << 13) + 1, n - 1, n):
        for i in (0, size // 3, size - 1):
            proof = tree.inclusion_proof(i, size)
            assert verify_inclusion(leaves[i], i, size, proof, tree.root(size))
    for old, new in ((1, n), (1 << 14, n), (12345, n - 3), (n - 1, n), (777, 9999)):
        proof = tree.consistency_proof(old, new)
        assert verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    assert tree.root(1000) == ref_mth(leaves[:1000])


# ---------------------------------------------------------------------------------------------
# Bad arguments
# ---------------------------------------------------------------------------------------------


def test_tree_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="leaf hash #1"):
        MerkleTree([LEAVES[0], b"short"])
    tree = MerkleTree(LEAVES[:5])
    assert tree.size == len(tree) == 5
    assert tree.leaf(4) == LEAVES[4]
    for call in (
        lambda: tree.root(6),
        lambda: tree.root(-1),
        lambda: tree.leaf(5),
        lambda: tree.inclusion_proof(5),
        lambda: tree.inclusion_proof(-1),
        lambda: tree.inclusion_proof(3, 3),
        lambda: tree.inclusion_proof(0, 0),
        lambda: tree.inclusion_proof(0, 6),
        lambda: tree.consistency_proof(0),
        lambda: tree.consistency_proof(0, 0),
        lambda: tree.consistency_proof(-1, 3),
        lambda: tree.consistency_proof(4, 3),
        lambda: tree.consistency_proof(1, 6),
        lambda: MerkleTree([]).inclusion_proof(0),
    ):
        with pytest.raises(ValueError):
            call()


def test_compact_range_rejects_bad_arguments() -> None:
    cr = CompactRange()
    with pytest.raises(ValueError):
        cr.append(b"short")
    assert cr.size == 0
    with pytest.raises(ValueError):
        CompactRange.from_list(-1, [])
    with pytest.raises(ValueError):
        CompactRange.from_list(3, [LEAVES[0]])  # 3 = 0b11 needs two roots
    with pytest.raises(ValueError):
        CompactRange.from_list(2, [b"short"])


GARBAGE: list[object] = [
    None,
    "",
    "x" * 32,
    b"",
    b"\x00" * 31,
    b"\x00" * 33,
    7.0,
    -1,
    [b"\x00" * 32],
]


def test_verify_inclusion_never_raises() -> None:
    leaf, proof, root = LEAVES[2], TREE.inclusion_proof(2, 5), TREE.root(5)
    # Any bytes-like hash is accepted.
    views = [memoryview(p) for p in proof]
    assert verify_inclusion(bytearray(leaf), 2, 5, views, root)  # type: ignore[arg-type]
    assert verify_inclusion(leaf, 2, 5, tuple(proof), root)
    for g in GARBAGE:
        assert not verify_inclusion(g, 2, 5, proof, root)  # type: ignore[arg-type]
        assert not verify_inclusion(leaf, 2, 5, proof, g)  # type: ignore[arg-type]
        assert not verify_inclusion(leaf, 2, 5, [*proof[:1], g, *proof[2:]], root)  # type: ignore[list-item]
        assert not verify_inclusion(leaf, 2, 5, g, root)  # type: ignore[arg-type]
        assert not verify_inclusion(leaf, g, 5, proof, root)  # type: ignore[arg-type]
        assert not verify_inclusion(leaf, 2, g, proof, root)  # type: ignore[arg-type]
    assert not verify_inclusion(leaf, b"".join(proof), 5, proof, root)  # type: ignore[arg-type]
    assert not verify_inclusion(leaf, 2, 5, b"".join(proof), root)  # type: ignore[arg-type]
    for index, size in ((-1, 5), (2, -5), (5, 5), (0, 0), (2**70, 2**71), (True, 5)):
        assert not verify_inclusion(leaf, index, size, proof, root)
    assert not verify_inclusion(leaf, 2, 5, proof * 40, root)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)


def test_verify_consistency_never_raises() -> None:
    proof, r3, r9 = TREE.consistency_proof(3, 9), TREE.root(3), TREE.root(9)
    views = [memoryview(p) for p in proof]
    assert verify_consistency(3, 9, bytearray(r3), r9, views)  # type: ignore[arg-type]
    for g in GARBAGE:
        assert not verify_consistency(3, 9, g, r9, proof)  # type: ignore[arg-type]
        assert not verify_consistency(3, 9, r3, g, proof)  # type: ignore[arg-type]
        assert not verify_consistency(3, 9, r3, r9, [g, *proof[1:]])  # type: ignore[list-item]
        assert not verify_consistency(3, 9, r3, r9, g)  # type: ignore[arg-type]
        assert not verify_consistency(g, 9, r3, r9, proof)  # type: ignore[arg-type]
        assert not verify_consistency(3, g, r3, r9, proof)  # type: ignore[arg-type]
    assert not verify_consistency(3, 9, r3, r9, b"".join(proof))  # type: ignore[arg-type]
    for old, new in ((0, 9), (-3, 9), (3, -9), (9, 3), (0, 0), (3, 2**80), (True, 9)):
        assert not verify_consistency(old, new, r3, r9, proof)
    assert not verify_consistency(3, 9, r3, r9, proof * 40)
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
