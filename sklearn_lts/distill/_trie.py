"""Byte trie over a vocabulary, stored as the tokens sorted by their bytes.

:class:`VocabTrie` sorts the vocabulary by bytes, so the tokens that start with a byte string
form one contiguous range. The probability mass of every trie node along a text (and of each of
its children) is then a sum over contiguous pieces of the sorted probability vector, which
:func:`numpy.add.reduceat` computes for all nodes of a path in one call (:class:`PathPlan`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._token_bytes import TokenBytes

__all__ = ["PathPlan", "TrieNode", "VocabTrie"]


class TrieNode(NamedTuple):
    """A node of the byte trie: the tokens that start with one byte string ``s``.

    They are the sorted positions ``lo:hi``; the first ``n_end`` of them are exactly ``s`` (an
    exact match sorts before its extensions), and the rest fall into one contiguous block per
    next byte: ``child_bytes[c]`` starting at sorted position ``child_starts[c]``.
    """

    lo: int
    hi: int
    n_end: int
    child_bytes: np.ndarray
    child_starts: np.ndarray


@dataclass
class PathPlan:
    """Trie nodes along ``text[start:]`` and how to get their masses from one reduceat call.

    Level ``d`` is the node of the byte string ``text[start:start + d]`` (level 0 is the root).
    For a next-token distribution ``p`` sorted by :attr:`VocabTrie.order`,
    ``pieces = np.add.reduceat(p_sorted, bounds)`` gives every mass this path needs: each child of
    a level (other than the next path node) and each block of tokens ending at a level is one
    piece, so all sums are over positive numbers only (no cancellation).
    """

    start: int
    depth: int  # number of levels below the root (levels 0..depth)
    bounds: np.ndarray  # sorted piece starts (int64)
    child_level: np.ndarray  # for each non-path child: its level ...
    child_byte: np.ndarray  # ... its byte ...
    child_piece: np.ndarray  # ... and its piece index
    path_bytes: np.ndarray  # path_bytes[d] = byte of the path child of level d (d < depth)
    end_pos: list[np.ndarray]  # sorted positions of tokens ending exactly at level d
    end_ids: list[np.ndarray]  # their token ids
    has_end_after: np.ndarray  # bool per level: a token ends at some deeper level of the path


class VocabTrie:
    """Byte trie of a vocabulary, stored as the tokens sorted by their bytes.

    The tokens whose bytes start with ``s`` are the contiguous sorted range
    :meth:`node_range` ``(s)``, so the probability mass of any trie node is a sum over one slice
    of the sorted next-token distribution.

    Parameters
    ----------
    tb : TokenBytes
        Token byte strings (tokens with ``None`` or empty bytes are left out).

    Examples
    --------
    >>> from sklearn_lts.distill import token_bytes
    >>> tb = token_bytes({bytes([i]): i for i in range(256)} | {b"ab": 256, b"abc": 257},
    ...                  bos_token_id=0)
    >>> trie = VocabTrie(tb)
    >>> lo, hi = trie.node_range(b"ab")
    >>> sorted(int(trie.order[k]) for k in range(lo, hi))
    [256, 257]
    >>> plan = trie.path_plan(b"abd", 0)
    >>> plan.depth, [e.tolist() for e in plan.end_ids]
    (2, [[], [97], [256]])
    """

    def __init__(self, tb: TokenBytes):
        items = sorted(
            (b, i) for i, b in enumerate(tb.token_bytes) if b is not None and len(b) > 0
        )
        self.vocab_size = len(tb)
        self.sorted_bytes: list[bytes] = [b for b, _ in items]
        self.order = np.array([i for _, i in items], dtype=np.int64)
        self.n_valid = len(items)
        self.max_len = max(len(b) for b in self.sorted_bytes)
        lens = np.array([len(b) for b in self.sorted_bytes], dtype=np.int64)
        # byte at depth d of each sorted token, 256 past its end: children are runs of this column
        self._cols = np.full((self.n_valid, self.max_len + 1), 256, dtype=np.int16)
        flat = np.frombuffer(b"".join(self.sorted_bytes), dtype=np.uint8)
        rows = np.repeat(np.arange(self.n_valid), lens)
        cols = np.arange(flat.size) - np.repeat(np.cumsum(lens) - lens, lens)
        self._cols[rows, cols] = flat
        self._node_cache: dict[bytes, TrieNode] = {}

    def node_range(self, prefix: bytes) -> tuple[int, int]:
        """Sorted positions ``[lo, hi)`` of the tokens whose bytes start with ``prefix``."""
        if not prefix:
            return 0, self.n_valid
        lo = bisect.bisect_left(self.sorted_bytes, prefix)
        n = len(prefix)
        hi = bisect.bisect_right(self.sorted_bytes, prefix, lo=lo, key=lambda s: s[:n])
        return lo, hi

    def node(self, prefix: bytes) -> TrieNode:
        """The trie node of the byte string ``prefix`` (cached)."""
        got = self._node_cache.get(prefix)
        if got is not None:
            return got
        if len(self._node_cache) > 500_000:  # bound memory on huge corpora
            self._node_cache.clear()
        lo, hi = self.node_range(prefix)
        d = len(prefix)
        col = self._cols[lo:hi, d] if d <= self.max_len else np.full(hi - lo, 256)
        n_end = int(np.count_nonzero(col == 256))  # exact matches sort first
        sub = col[n_end:]
        if sub.size:
            change = np.flatnonzero(sub[1:] != sub[:-1]) + 1
            starts = np.concatenate([[0], change]) + lo + n_end
            cbytes = sub[np.concatenate([[0], change])].astype(np.int64)
        else:
            starts = np.zeros(0, dtype=np.int64)
            cbytes = np.zeros(0, dtype=np.int64)
        got = TrieNode(lo, hi, n_end, cbytes, starts.astype(np.int64))
        self._node_cache[prefix] = got
        return got

    def path_nodes(self, text: bytes, start: int) -> list[TrieNode]:
        """Trie nodes of ``text[start:start + d]`` for ``d = 0, 1, ...`` while a token goes on."""
        levels = [self.node(b"")]
        for end in range(start, len(text)):
            if text[end] not in levels[-1].child_bytes:  # no token continues with this byte
                break
            levels.append(self.node(text[start : end + 1]))
        return levels

    def path_plan(self, text: bytes, start: int) -> PathPlan:
        """Plan the mass computation for the trie path of ``text[start:]``."""
        levels = self.path_nodes(text, start)
        depth = len(levels) - 1
        bounds_l, c_level, c_byte, c_start, path_bytes = [], [], [], [], []
        end_pos, end_ids = [], []
        for lev, node in enumerate(levels):
            lo, n_end, cbytes, starts = node.lo, node.n_end, node.child_bytes, node.child_starts
            end_pos.append(np.arange(lo, lo + n_end, dtype=np.int64))
            end_ids.append(self.order[lo : lo + n_end])
            if n_end:
                bounds_l.append(np.array([lo], dtype=np.int64))
            bounds_l.append(starts)
            if lev < depth:
                pb = text[start + lev]
                path_bytes.append(pb)
                keep = cbytes != pb  # the path child is summed from its own level
                c_level.append(np.full(int(keep.sum()), lev, dtype=np.int64))
                c_byte.append(cbytes[keep])
                c_start.append(starts[keep])
            else:
                c_level.append(np.full(cbytes.size, lev, dtype=np.int64))
                c_byte.append(cbytes)
                c_start.append(starts)
        bounds = np.unique(np.concatenate(bounds_l)) if bounds_l else np.zeros(1, np.int64)
        if bounds.size == 0 or bounds[0] != 0:
            bounds = np.concatenate([[0], bounds]).astype(np.int64)
        cs = np.concatenate(c_start) if c_start else np.zeros(0, np.int64)
        has_end = np.array([e.size > 0 for e in end_ids])
        after = np.zeros(depth + 1, dtype=bool)
        for lev in range(depth - 1, -1, -1):
            after[lev] = after[lev + 1] or has_end[lev + 1]
        return PathPlan(
            start=start,
            depth=depth,
            bounds=bounds,
            child_level=np.concatenate(c_level) if c_level else np.zeros(0, np.int64),
            child_byte=np.concatenate(c_byte) if c_byte else np.zeros(0, np.int64),
            child_piece=np.searchsorted(bounds, cs),
            path_bytes=np.array(path_bytes, dtype=np.int64),
            end_pos=end_pos,
            end_ids=end_ids,
            has_end_after=after,
        )
