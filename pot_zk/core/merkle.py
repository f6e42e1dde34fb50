"""A SHA-256 Merkle tree over hex leaves (the dataset commitment).

A leaf is a commitment written in hex, with or without a ``0x`` prefix (the prefix is not
hashed). Leaves are hashed as ``sha256(b"\\x00" + leaf)`` and inner nodes as
``sha256(b"\\x01" + left + right)`` (domain separation, so a leaf can never pose as a node);
an odd node at the end of a level is carried up unchanged.
"""

from __future__ import annotations

import hashlib
from typing import Sequence


def _leaf(value: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(value.removeprefix("0x"))).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[str]) -> str:
    if not leaves:
        raise ValueError("a Merkle tree needs at least one leaf")
    level = [_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0].hex()


def dataset_root(batch_leaves: Sequence[str], holdout: str | None = None) -> str:
    """The dataset commitment: the Merkle root over the batch commitments followed, when the
    data set holds samples out, by the held-out set's commitment (the last leaf)."""
    return merkle_root([*batch_leaves, *([holdout] if holdout is not None else [])])


def merkle_path(leaves: Sequence[str], index: int) -> list[tuple[str, str]]:
    """Sibling hashes from leaf ``index`` to the root, each tagged ``"L"``/``"R"`` for its side."""
    level = [_leaf(leaf) for leaf in leaves]
    path: list[tuple[str, str]] = []
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(("L" if sibling < index else "R", level[sibling].hex()))
        level = [_node(level[i], level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
        index //= 2
    return path


def verify_path(leaf: str, path: Sequence[Sequence[str]], root: str) -> bool:
    node = _leaf(leaf)
    for side, sibling in path:
        node = _node(bytes.fromhex(sibling), node) if side == "L" else _node(node, bytes.fromhex(sibling))
    return node.hex() == root
