"""The key/value cache of the token trees: one row per text, one slot per evaluated state.

Slot 0 of every row holds the shared root (BOS). A forward call writes each new state to the
next free slot of its text's row (:meth:`TreeLayout.place`); the cache layers
(:func:`tree_layer_class`) grow by doubling, and :func:`compact` drops the slots of dead
branches, which every query would otherwise keep attending over (masked).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._math import extend_runs
from ._state import Node, TextState

__all__ = ["TreeLayout", "Placement", "tree_layer_class", "compact"]


class Placement(NamedTuple):
    """Where the queries of one forward call go.

    ``lens``: used slots per row after the call; query ``src[w]`` is written to row
    ``dst_row[w]``, slot ``dst_slot[w]`` (the root query to slot 0 of every row);
    ``per_row``: the queries of each row, in call order.
    """

    lens: np.ndarray
    dst_row: list[int]
    dst_slot: list[int]
    src: list[int]
    per_row: dict[int, list[int]]


class TreeLayout:
    """Where the queries of the next forward call go, shared by the cache layers and attention.

    The cache has one row per text (batch dimension), so each query attends over its own text's
    slots only: a batch of many texts costs no more attention per query than a single text.
    Slot 0 of every row holds the shared root (BOS).
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.lens = np.zeros(n_rows, dtype=np.int64)  # used slots per row
        self.width = 0  # row length the next call reads (max over rows, after its writes)
        self.dst = self.src = None  # (row, slot) written by each query; query per write
        self.buckets: list = []  # batched attention groups, see _attention.attention_buckets

    def place(self, nodes: Sequence[Node]) -> Placement:
        """Give each node (the queries of a call, parents first) its cache slot."""
        lens = self.lens.copy()
        dst_row, dst_slot, src = [], [], []
        per_row: dict[int, list[int]] = {}
        for r, n in enumerate(nodes):
            if n.is_root:  # BOS: slot 0 of every row
                n.slot, n.runs = 0, ((0, 1),)
                dst_row += range(self.n_rows)
                dst_slot += [0] * self.n_rows
                src += [r] * self.n_rows
                np.maximum(lens, 1, out=lens)
                per_row.setdefault(0, []).append(r)
                continue
            row = n.text.cache_row
            n.slot = int(lens[row])
            lens[row] += 1
            n.runs = extend_runs(n.parent.runs, n.slot)
            dst_row.append(row)
            dst_slot.append(n.slot)
            src.append(r)
            per_row.setdefault(row, []).append(r)
        return Placement(lens, dst_row, dst_slot, src, per_row)


def tree_layer_class():
    """The cache layer class (built lazily: transformers is imported on first use)."""
    from transformers.cache_utils import DynamicLayer

    class _TreeLayer(DynamicLayer):
        """A cache layer of shape (texts, kv heads, slots, head dim) with amortised growth."""

        def __init__(self, layout: TreeLayout):
            super().__init__()
            self.layout = layout

        def lazy_initialization(self, key_states, value_states):  # noqa: D401
            self.device = key_states.device
            t, h = self.layout.n_rows, key_states.shape[1]
            # zeros, not empty: masked slots still enter the products (0 * NaN would be NaN)
            self._k = key_states.new_zeros((t, h, 64, key_states.shape[-1]))
            self._v = value_states.new_zeros((t, h, 64, value_states.shape[-1]))
            self.is_initialized = True

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            lay = self.layout
            if lay.width > self._k.shape[2]:
                cap = max(lay.width, 2 * self._k.shape[2])
                k = self._k.new_zeros(self._k.shape[:2] + (cap, self._k.shape[-1]))
                v = self._v.new_zeros(self._v.shape[:2] + (cap, self._v.shape[-1]))
                old = self._k.shape[2]
                k[:, :, :old], v[:, :, :old] = self._k, self._v
                self._k, self._v = k, v
            row, slot = lay.dst
            self._k[row, :, slot] = key_states[0, :, lay.src].transpose(0, 1)
            self._v[row, :, slot] = value_states[0, :, lay.src].transpose(0, 1)
            self.keys, self.values = self._k[:, :, : lay.width], self._v[:, :, : lay.width]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return int(self.layout.lens.max()) if self.is_initialized else 0

        def keep_slots(self, row_idx, slot_idx) -> None:
            """Row r keeps the slots ``slot_idx[r]`` (ascending), moved to its front."""
            w = slot_idx.shape[1]
            # the gather copies before the write
            self._k[:, :, :w] = self._k[row_idx, :, slot_idx].permute(0, 2, 1, 3)
            self._v[:, :, :w] = self._v[row_idx, :, slot_idx].permute(0, 2, 1, 3)

    return _TreeLayer


def _live_nodes(texts: Sequence[TextState]) -> dict[int, Node]:
    """The roots and the ancestors of every state that still holds a profile (by id)."""
    live: dict[int, Node] = {id(t.root): t.root for t in texts}
    for t in texts:
        for n in t.alive:
            m = n
            while m is not None and id(m) not in live:
                live[id(m)] = m
                m = m.parent
    return live


def compact(cache: Any, layout: TreeLayout, texts: Sequence[TextState]) -> None:
    """Drop the cache slots of states no live state descends from.

    Every query attends over its text's whole cache row (masked), so dead branches would make
    each call slower as the tree grows. Live: the roots and the ancestors of every state that
    still holds a profile (only those can get children). Nothing happens while at least 3/4 of
    the used slots are live.
    """
    import torch

    live = _live_nodes(texts)
    by_row: dict[int, list[Node]] = {}
    for m in live.values():
        if m.slot is not None and not m.is_root:
            by_row.setdefault(m.text.cache_row, []).append(m)
    n_live = sum(len(v) for v in by_row.values()) + layout.n_rows
    if n_live > 0.75 * layout.lens.sum():
        return
    # dead evaluated nodes must never be reached again with a stale slot
    for m in live.values():
        dead = [t for t, c in m.children.items() if c.slot is not None and id(c) not in live]
        for t in dead:
            del m.children[t]
    w = 1 + max((len(v) for v in by_row.values()), default=0)
    slot_idx = np.zeros((layout.n_rows, w), dtype=np.int64)  # padding repeats the root slot
    lens = np.minimum(layout.lens, 1)
    for row, ns in by_row.items():
        ns.sort(key=lambda m: m.slot)  # ascending old slots: parents before children
        slot_idx[row, 1 : 1 + len(ns)] = [m.slot for m in ns]
        lens[row] = 1 + len(ns)
    row_idx = np.broadcast_to(np.arange(layout.n_rows)[:, None], slot_idx.shape)
    for layer in cache.layers:
        if getattr(layer, "is_initialized", False):
            dev = layer._k.device
            layer.keep_slots(torch.from_numpy(np.ascontiguousarray(row_idx)).to(dev),
                             torch.from_numpy(slot_idx).to(dev))
    for ns in by_row.values():
        for new, m in enumerate(ns, start=1):
            m.slot = new
            m.runs = extend_runs(m.parent.runs, new)
    layout.lens = lens
