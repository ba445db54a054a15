"""The model runner: evaluates token-tree nodes of many texts in few forward calls.

A forward call evaluates a set of new tree nodes of many texts at once, as one flat sequence
through the weights; in attention each node attends to its ancestors only, within its text's
cache row, with its depth as position id. So a batch of many texts makes each call larger
without making attention any wider. Each evaluated node is reduced at once to its
:class:`~._state.Profile` and its logits are dropped.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._attention import (
    attention_buckets,
    bucket_tensors,
    require_attention_interface,
    tree_attention,
)
from ._cache import Placement, TreeLayout, compact, tree_layer_class
from ._math import path_profile
from ._state import ConversionStats, Node, Profile, TextState
from ._vocab import Vocabulary

__all__ = ["ModelRunner", "eval_mode"]


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Score with ``model`` in eval mode (no dropout) and without autograd; afterwards every
    module's train/eval flag is what it was (a model left in train mode stays so)."""
    import torch

    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, training in flags:
            m.training = training


class ModelRunner:
    """Forward calls of a causal LM over token trees that share one key/value cache.

    Parameters
    ----------
    model : transformers causal LM
    vocab : Vocabulary
    batch_size : int
        Most tokens per forward call.
    """

    def __init__(self, model: Any, vocab: Vocabulary, batch_size: int):
        self.model = model
        self.vocab = vocab
        self.batch_size = batch_size
        # transformers >= 5.x renamed past_key_values to cache
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._layer_cls = None
        self.layout: TreeLayout | None = None
        self.cache = None
        self.stats = ConversionStats()

    def reset(self, n_rows: int, stats: ConversionStats) -> None:
        """A fresh cache with ``n_rows`` rows (one per text); costs are counted in ``stats``."""
        from transformers.cache_utils import Cache

        require_attention_interface(self.model)
        if self._layer_cls is None:
            self._layer_cls = tree_layer_class()
        self.layout = TreeLayout(max(n_rows, 1))
        layer_cls, layout = self._layer_cls, self.layout
        self.cache = Cache(layer_class_to_replicate=lambda: layer_cls(layout))
        self.stats = stats

    def release(self) -> None:
        """Free the cache (the layout stays, for inspection)."""
        self.cache = None

    def compact(self, texts: Sequence[TextState]) -> None:
        """Drop the cache slots of dead branches (see :func:`._cache.compact`)."""
        compact(self.cache, self.layout, texts)

    def evaluate(self, todo: Sequence[Node]) -> None:
        """Evaluate ``todo`` (parents first) in calls of at most ``batch_size`` tokens.

        The roots among them (one per text) share one query: BOS, whose keys and values go to
        slot 0 of every cache row.
        """
        roots = [n for n in todo if n.is_root]
        queries = roots[:1] + [n for n in todo if not n.is_root]
        for a in range(0, len(queries), self.batch_size):
            self._call(queries[a : a + self.batch_size], roots)

    def _call(self, nodes: list[Node], roots: list[Node]) -> None:
        """One forward call: place the queries in the cache, run the model, keep profiles."""
        import torch

        t0 = time.perf_counter()
        dev = next(self.model.parameters()).device
        placement = self.layout.place(nodes)
        if nodes[0].is_root:
            for root in roots:
                root.slot, root.runs = nodes[0].slot, nodes[0].runs
        self._route(placement, nodes, dev)
        ids = torch.tensor([[n.token for n in nodes]], device=dev)
        pos = torch.tensor([[n.depth for n in nodes]], device=dev)
        with tree_attention(self.model):
            out = self.model(
                input_ids=ids, position_ids=pos, use_cache=True, tree_layout=self.layout,
                **{self._cache_kw: self.cache},
            )
        self.layout.lens = placement.lens
        logits = out.logits[0]
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        self.stats.n_forward_calls += 1
        self.stats.n_tokens_evaluated += len(nodes)
        self.stats.seconds_lm += time.perf_counter() - t0
        self._store_profiles(nodes, roots, logp)

    def _route(self, placement: Placement, nodes: list[Node], dev: Any) -> None:
        """Tell the cache layers and attention where the queries of the call go."""
        import numpy as np
        import torch

        lt = lambda v: torch.as_tensor(np.asarray(v, dtype=np.int64), device=dev)  # noqa: E731
        lay = self.layout
        lay.width = int(placement.lens.max())
        lay.dst, lay.src = (lt(placement.dst_row), lt(placement.dst_slot)), lt(placement.src)
        lay.buckets = [bucket_tensors(b, nodes, dev)
                       for b in attention_buckets(placement.per_row, placement.lens)]

    def _store_profiles(self, nodes: list[Node], roots: list[Node], logp: Any) -> None:
        """Reduce each evaluated node's log-probabilities to its profile.

        Nodes are grouped by (text, offset), so one reduceat serves all states at that offset;
        the BOS row gives every root its own profile (each text has its own path).
        """
        import torch

        order = torch.from_numpy(self.vocab.trie.order).to(logp.device)
        eos = self.vocab.tb.eos_token_id
        groups: dict[tuple[int, int], list[int]] = {}
        for r, n in enumerate(nodes):
            if n.is_root:
                p_sorted = logp[r].double().exp()[order].cpu().numpy()[None]
                p_eos = float(logp[r, eos].exp()) if eos is not None else 0.0
                for root in roots:
                    plan = root.text.plan(0)
                    cm, end_p = path_profile(plan, p_sorted)
                    root.profile = Profile(plan, cm[0], [e[0] for e in end_p], p_eos)
                continue
            groups.setdefault((n.text.text_id, n.offset), []).append(r)
        for (_, offset), rs in groups.items():
            text = nodes[rs[0]].text
            rows = logp[rs].double().exp()
            plan = text.plan(offset)
            cm, end_p = path_profile(plan, rows[:, order].cpu().numpy())
            for k, r in enumerate(rs):
                n = nodes[r]
                p_eos = float(rows[k, eos]) if eos is not None else 0.0
                n.profile = Profile(plan, cm[k], [e[k] for e in end_p], p_eos)
                text.alive.append(n)
