"""Merkle tree hashing and proofs for the ledger, as in RFC 9162 (Certificate Transparency 2.0).

Pure functions and small classes over SHA-256 leaf hashes, without I/O; the ledger stores the leaf
hashes and calls this module (DESIGN.md §5).

- §2.1.1   Merkle Tree Hash: ``MTH({}) = SHA-256()``, ``MTH({d0}) = SHA-256(0x00 || d0)`` and
           ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` where k is the largest power
           of two smaller than n.
- §2.1.3.1 Inclusion proof generation (``PATH``)       -> :meth:`MerkleTree.inclusion_proof`
- §2.1.3.2 Inclusion proof verification               -> :func:`verify_inclusion`
- §2.1.4.1 Consistency proof generation (``PROOF``)   -> :meth:`MerkleTree.consistency_proof`
- §2.1.4.2 Consistency proof verification             -> :func:`verify_consistency`

:class:`MerkleTree` keeps every level of the tree (level 0 holds the leaves, level h the hashes of
the complete, aligned blocks of 2**h leaves). Every subtree the RFC's recursion touches is either
such a complete block or a block running to the right edge of the (prefix) tree, which is the fold
of at most log2(n) complete blocks, so roots of any prefix and proofs cost O(log n) hashes.

:class:`CompactRange` is the incremental form: it keeps only the roots of the complete blocks along
the right edge (one per set bit of the size), enough to append and to compute the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Hash of one log entry: SHA-256(0x00 || data) (RFC 9162 §2.1.1)."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


#: Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
EMPTY_ROOT: bytes = _sha256(b"").digest()


def _largest_power_of_two_below(n: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold_right(hashes: list[bytes]) -> bytes:
    """Root of a right-edge run of complete subtrees, given from the largest to the smallest.

    The RFC's split puts the largest power of two on the left and recurses on the rest, so
    the run [a, b, c] hashes as node(a, node(b, c)).
    """
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


class MerkleTree:
    """Built once from leaf hashes in O(n); roots of any prefix and proofs in O(log n) after that.

    Each level is kept as one ``bytes`` buffer of 32-byte hashes, which costs 32 bytes per node
    (about 64 MB for a million leaves, leaves included) instead of a Python object per node.
    """

    __slots__ = ("_levels", "size")

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        bad = next((i for i, h in enumerate(leaf_hashes) if len(h) != HASH_SIZE), None)
        if bad is not None:
            raise ValueError(
                f"leaf hash #{bad} is {len(leaf_hashes[bad])} bytes long, expected {HASH_SIZE}"
            )
        self.size: int = len(leaf_hashes)
        self._levels: list[bytes] = [b"".join(leaf_hashes)]
        # Pair neighbours level by level; an odd last node has no parent at the next level
        # (it is folded in only when a root or proof needs it).
        nodes: Sequence[bytes] = leaf_hashes
        while len(nodes) >= 2:
            it = iter(nodes)
            nodes = [_sha256(_NODE_PREFIX + a + b).digest() for a, b in zip(it, it, strict=False)]
            self._levels.append(b"".join(nodes))

    def __len__(self) -> int:
        return self.size

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} out of range for a tree of {self.size} leaves")
        return self._node(0, index)

    # -- internals -------------------------------------------------------------------------

    def _node(self, level: int, index: int) -> bytes:
        """Hash of the complete block of 2**level leaves starting at leaf index << level."""
        off = index * HASH_SIZE
        return self._levels[level][off : off + HASH_SIZE]

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a subtree of the RFC's recursion (end > start).

        Such a subtree starts at a multiple of the largest power of two <= end - start, so it is
        the fold of the complete blocks given by the bits of its size, largest first.
        """
        width = end - start
        if width & (width - 1) == 0:  # a complete block, stored as is
            level = width.bit_length() - 1
            return self._node(level, start >> level)
        run: list[bytes] = []
        pos = start
        for level in range(width.bit_length() - 1, -1, -1):
            if width >> level & 1:
                run.append(self._node(level, pos >> level))
                pos += 1 << level
        return _fold_right(run)

    def _check_size(self, size: int | None, what: str = "size") -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"{what} {size} out of range: the tree has {self.size} leaves")
        return size

    # -- public ----------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all); the empty tree's root for 0."""
        size = self._check_size(size)
        return self._subtree(0, size) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf level first."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} out of range for a tree of size {size}")
        # Walk the RFC's recursion top-down and reverse at the end: PATH appends each sibling
        # after the deeper part of the path.
        path: list[bytes] = []
        lo, width, m = 0, size, index
        while width > 1:
            k = _largest_power_of_two_below(width)
            if m < k:
                path.append(self._subtree(lo + k, lo + width))
                width = k
            else:
                path.append(self._subtree(lo, lo + k))
                lo, width, m = lo + k, width - k, m - k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 (empty when the sizes are equal)."""
        new_size = self._check_size(new_size, "new_size")
        if old_size <= 0:
            raise ValueError(
                f"old_size must be at least 1, got {old_size}: every tree extends the empty tree"
            )
        if old_size > new_size:
            raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
        # SUBPROOF(m, D[lo:lo+width], b), unrolled; like PATH, each step's node goes after the
        # deeper part, so collect top-down and reverse.
        proof: list[bytes] = []
        lo, width, m, whole = 0, new_size, old_size, True
        while m != width:
            k = _largest_power_of_two_below(width)
            if m <= k:
                proof.append(self._subtree(lo + k, lo + width))
                width = k
            else:
                proof.append(self._subtree(lo, lo + k))
                lo, width, m, whole = lo + k, width - k, m - k, False
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old tree's root is not the subtree we ended
        # on, so the verifier needs that subtree's hash; with b = true it already has it.
        if not whole:
            proof.append(self._subtree(lo, lo + width))
        proof.reverse()
        return proof


# -- verification ---------------------------------------------------------------------------
# The verifiers take untrusted input (proofs from the network, sizes from a tree head), so they
# check types and lengths first and answer False instead of raising.


def _as_hash(value: object) -> bytes | None:
    """``value`` as a 32-byte hash, or None when it is not one."""
    if isinstance(value, bytes | bytearray | memoryview):
        b = bytes(value)
        if len(b) == HASH_SIZE:
            return b
    return None


def _as_hashes(values: object) -> list[bytes] | None:
    if isinstance(values, str | bytes | bytearray | memoryview):
        return None  # a flat byte string is not a list of hashes
    try:
        items = list(values)  # type: ignore[call-overload]
    except TypeError:
        return None
    out: list[bytes] = []
    for item in items:
        h = _as_hash(item)
        if h is None:
            return None
        out.append(h)
    return out


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows ``leaf_hash`` at ``index`` in the tree of ``tree_size`` with ``root``.

    RFC 9162 §2.1.3.2, step by step. Never raises: malformed input is simply not a proof.
    """
    leaf = _as_hash(leaf_hash)
    expected = _as_hash(root)
    path = _as_hashes(proof)
    if leaf is None or expected is None or path is None:
        return False
    if not (_is_size(index) and _is_size(tree_size)):
        return False
    # 1. leaf_index must be inside the tree.
    if index >= tree_size:
        return False
    # 2.-3.
    fn, sn = index, tree_size - 1
    r = leaf
    # 4.
    for p in path:
        if sn == 0:  # a.
            return False
        if fn & 1 or fn == sn:  # b.
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # c.
        sn >>= 1
    # 5.
    return sn == 0 and r == expected


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree (new_size, new_root) extends the tree (old_size, old_root).

    RFC 9162 §2.1.4.2, step by step, for 0 < old_size < new_size. For old_size == new_size the
    RFC defines no check; the trees are consistent when the proof is empty (what
    :meth:`MerkleTree.consistency_proof` returns) and the roots are equal. old_size == 0 is
    rejected like in :meth:`MerkleTree.consistency_proof`. Never raises.
    """
    first_hash = _as_hash(old_root)
    second_hash = _as_hash(new_root)
    path = _as_hashes(proof)
    if first_hash is None or second_hash is None or path is None:
        return False
    if not (_is_size(old_size) and _is_size(new_size)):
        return False
    if old_size == 0 or old_size > new_size:
        return False
    if old_size == new_size:
        return not path and first_hash == second_hash
    # 1.
    if not path:
        return False
    # 2. A power-of-two old tree is a complete subtree of the new one, so the proof omits its
    #    root (the verifier has it).
    if old_size & (old_size - 1) == 0:
        path = [first_hash, *path]
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:  # a.
            return False
        if fn & 1 or fn == sn:  # b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # c.
        sn >>= 1
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0


# -- incremental ------------------------------------------------------------------------------


class CompactRange:
    """The right edge of a growing tree: append leaf hashes one by one, root at any time.

    Holds the roots of the complete subtrees that make up the first ``size`` leaves, one per set
    bit of ``size``, largest (leftmost) first: O(log n) memory. ``to_list`` and ``from_list``
    store and restore that stack, e.g. next to the latest signed tree head.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self.size: int = 0
        self._stack: list[bytes] = []

    def __len__(self) -> int:
        return self.size

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash (already hashed with :func:`leaf_hash`)."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf_hash)} bytes long, expected {HASH_SIZE}")
        h = bytes(leaf_hash)
        # Every trailing 1 bit of the old size is a complete subtree of the same height as the
        # one being carried: merge them, like a binary counter's carry.
        s = self.size
        while s & 1:
            h = node_hash(self._stack.pop(), h)
            s >>= 1
        self._stack.append(h)
        self.size += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """MTH of all leaves appended so far; the empty tree's root when there are none."""
        return _fold_right(self._stack) if self._stack else EMPTY_ROOT

    def to_list(self) -> list[bytes]:
        """The subtree roots, largest first; store them together with ``size``."""
        return list(self._stack)

    @classmethod
    def from_list(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Restore a range of ``size`` leaves from what :meth:`to_list` returned."""
        if size < 0:
            raise ValueError(f"size must not be negative, got {size}")
        expected = size.bit_count()
        if len(hashes) != expected:
            raise ValueError(
                f"a range of {size} leaves has {expected} subtree roots, got {len(hashes)}"
            )
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValueError(f"subtree root #{i} is {len(h)} bytes long, expected {HASH_SIZE}")
        obj = cls()
        obj.size = size
        obj._stack = [bytes(h) for h in hashes]
        return obj

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self._stack == other._stack

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, root={self.root().hex()})"
