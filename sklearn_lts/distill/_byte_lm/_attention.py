"""Tree-masked attention over the per-text cache rows, registered with transformers.

During a call of :class:`~._runner.ModelRunner` the model's attention implementation is
switched to :func:`tree_attention_forward` (:func:`tree_attention`, a context manager that puts
the model's own setting back afterwards). Each query attends to its ancestors only, within its
text's row of the cache (a tree-shaped mask, as in speculative decoding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

from ._state import Node

__all__ = [
    "TREE_ATTENTION", "Bucket", "AttentionBucket", "attention_buckets", "bucket_tensors",
    "require_attention_interface", "tree_attention", "tree_attention_forward",
]

TREE_ATTENTION = "sklearn_lts_tree"


class Bucket(NamedTuple):
    """Queries batched into one attention call: ``chunks[e]`` reads cache row ``rows[e]``,
    whose first ``width`` slots cover every row of the bucket."""

    rows: list[int]
    chunks: list[list[int]]
    width: int


class AttentionBucket(NamedTuple):
    """A :class:`Bucket` as tensors: the cache rows, the query index of each (entry, position)
    (padded), the mask (entries, 1, positions, width), where the real queries sit in the flat
    (entry, position) order, which query each is, and the width."""

    rows: Any
    qidx: Any
    mask: Any
    flat: Any
    dst_q: Any
    width: int


def attention_buckets(per_row: dict[int, list[int]], lens: np.ndarray, cap: int = 4):
    """Group the queries of a call for batched attention with little padding.

    Each text's queries are cut into chunks of at most ``max(cap, mean queries per text)``
    (each chunk is one batch entry of SDPA, reading its text's cache row), and the chunks are
    bucketed by row length, halving from the longest, so that short rows are not padded to the
    longest one.

    Examples
    --------
    >>> b = attention_buckets({0: [0, 1], 1: [2, 3, 4, 5, 6], 2: [7]}, np.array([40, 50, 10]))
    >>> [tuple(bucket) for bucket in b]
    [([1, 1, 0], [[2, 3, 4, 5], [6], [0, 1]], 50), ([2], [[7]], 10)]
    """
    cap = max(cap, -(-sum(map(len, per_row.values())) // max(len(per_row), 1)))
    entries = sorted(
        ((int(lens[row]), row, qs[s : s + cap]) for row, qs in per_row.items()
         for s in range(0, len(qs), cap)),
        key=lambda e: -e[0],
    )
    buckets: list[Bucket] = []
    for n, row, chunk in entries:
        if not buckets or n <= buckets[-1].width // 2:
            buckets.append(Bucket([], [], n))
        buckets[-1].rows.append(row)
        buckets[-1].chunks.append(chunk)
    return buckets


def bucket_tensors(bucket: Bucket, nodes: Sequence[Node], device: Any) -> AttentionBucket:
    """The tensors of one bucket: query ``r`` may attend to the slots of ``nodes[r].runs``."""
    import torch

    lt = lambda v: torch.as_tensor(np.asarray(v, dtype=np.int64), device=device)  # noqa: E731
    chunks, w = bucket.chunks, bucket.width
    qcap = max(map(len, chunks))
    allow = np.zeros((len(chunks), qcap, w), dtype=bool)
    allow[:, :, 0] = True  # padding queries attend to the root (never all -inf)
    qidx = np.zeros((len(chunks), qcap), dtype=np.int64)
    flat, dst_q = [], []
    for i, chunk in enumerate(chunks):
        for j, r in enumerate(chunk):
            qidx[i, j] = r
            for a, b in nodes[r].runs:
                allow[i, j, a:b] = True
            flat.append(i * qcap + j)
            dst_q.append(r)
    return AttentionBucket(lt(bucket.rows), lt(qidx), torch.from_numpy(allow).to(device)[:, None],
                           lt(flat), lt(dst_q), w)


def tree_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                           tree_layout=None, **kwargs):
    """Attention of each query over its own text's row of the cache, with a tree mask.

    ``query`` is (1, heads, Q, d) for the Q tokens of the call; ``key``/``value`` are
    (texts, kv heads, width, d). The queries are regrouped per text (see
    :func:`attention_buckets`), with the query heads that share a kv head packed along the query
    axis (no copies of the keys per head); one SDPA call per bucket covers many texts, and the
    outputs go back to the call's order. Calls without a ``tree_layout`` are plain SDPA.
    """
    import torch

    if tree_layout is None:  # not one of our calls
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise NotImplementedError("ByteLevelLM supports neither soft-capping nor sliding windows")
    h, d = query.shape[1], query.shape[-1]
    g = h // key.shape[1]  # query heads per kv head: packed into the query axis
    out = query.new_empty((query.shape[2], h, d))
    for b in tree_layout.buckets:
        w = b.width
        k = key[:, :, :w].index_select(0, b.rows)
        v = value[:, :, :w].index_select(0, b.rows)
        r, qm = b.qidx.shape
        q = query[0][:, b.qidx].transpose(0, 1).reshape(r, k.shape[1], g * qm, d)
        m = b.mask
        if g > 1:
            m = m[:, :, None].expand(r, 1, g, qm, w).reshape(r, 1, g * qm, w)
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=scaling)
        o = o.reshape(r, h, qm, d).transpose(1, 2).reshape(r * qm, h, d)
        out[b.dst_q] = o[b.flat]
    return out[None], None


def require_attention_interface(model: Any) -> None:
    """Raise a TypeError if ``model`` does not dispatch attention through transformers'
    attention interface (then its attention cannot be switched to the tree mask)."""
    if not getattr(model, "_supports_attention_backend", False):
        raise TypeError(
            f"{type(model).__name__} does not dispatch attention through "
            "transformers' attention interface, which ByteLevelLM needs for its "
            "tree-masked calls"
        )


@contextmanager
def tree_attention(model: Any) -> Iterator[None]:
    """Switch ``model`` to tree attention for the duration of the block, then switch it back.

    Raises
    ------
    TypeError
        If the model does not dispatch attention through transformers' attention interface.
    """
    from transformers import AttentionInterface

    require_attention_interface(model)
    AttentionInterface.register(TREE_ATTENTION, tree_attention_forward)
    cfg = model.config
    before = cfg._attn_implementation
    cfg._attn_implementation = TREE_ATTENTION
    try:
        yield
    finally:
        cfg._attn_implementation = before
