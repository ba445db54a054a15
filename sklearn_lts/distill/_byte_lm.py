"""Exact and beam-summed next-byte distributions from a token-level causal LM.

Notation. The text (after the tokenizer's dummy prefix, if any) has bytes ``x[0:n]``. A *state*
is a token sequence ``s`` (after BOS) that decodes exactly to ``x[:j]``; its weight ``W_s`` is its
probability under the LM and ``p_s`` its next-token distribution. A *hypothesis* ``(s, d)`` at
byte ``i = j + d`` stands for all token sequences that start with ``s`` and whose next token
starts with ``x[j:i]`` (``d >= 1``: and continues past ``i``; ``d = 0``: anything). Row ``i`` of
the result is

    sum over hypotheses (s, d) of  W_s * [mass_s(x[j:i] + b) for b in 0..255,  (d == 0) * p_s(EOS)]

normalised, where ``mass_s(u)`` is the total ``p_s`` of the tokens whose bytes start with ``u``.
Over *all* hypotheses this is exactly the covering sum of the issue's contract (non-canonical
tokenizations included); ``method="beam"`` keeps the ``K`` heaviest ones (Vieira et al.'s beam
summing, with pruned states merged into a kept state at the same byte rather than dropped),
``method="exact"`` keeps all of them, ``method="boundary"`` keeps only the canonical
tokenization's own state (no alternative tokenizations at all). ``method="lattice"`` sums all of
them with one shared next-token distribution per byte offset.

How the LM is called. All states of all texts of a batch live in one token tree rooted at BOS.
The key/value cache has one row per text (the states of a text share its row, BOS is slot 0 of
every row). A forward call evaluates a set of new tree nodes of many texts at once, as one flat
sequence through the weights; in attention (a registered transformers attention function) each
node attends to its ancestors only, within its text's row (a tree-shaped mask, as in speculative
decoding), with its depth as position id. So a batch of many texts makes each call larger
without making attention any wider. Evaluations are speculative: whenever a node is needed, its
likely continuation (the canonical tokenization of the next bytes) is evaluated in the same
call, a long window of it on the canonical path, so the beam rarely waits for the LM. Each
evaluated node is reduced at once to a small *profile* (masses of the trie nodes along the text,
see :class:`~sklearn_lts.distill._token_bytes.PathPlan`) and its logits are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._token_bytes import TokenBytes, token_bytes
from ._trie import PathPlan, VocabTrie

__all__ = ["ByteLevelLM", "path_profile", "prune_hypotheses", "beam_row"]


# ------------------------------------------------------------------------------------------------
# pure math


def path_profile(plan: PathPlan, p_sorted: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Masses of the trie nodes along a text path under next-token distributions.

    Parameters
    ----------
    plan : PathPlan
        Path of ``text[start:]`` in the vocabulary trie.
    p_sorted : ndarray of shape (B, n_valid)
        Next-token probabilities (float64) in :attr:`VocabTrie.order`.

    Returns
    -------
    child_mass : ndarray of shape (B, depth + 1, 256)
        ``child_mass[:, d, b]`` is the mass of the tokens that start with
        ``text[start:start + d] + bytes([b])``.
    end_p : list of ndarray of shape (B, n_end_d)
        Probabilities of the tokens that are exactly ``text[start:start + d]``.

    Examples
    --------
    >>> from sklearn_lts.distill import token_bytes, VocabTrie
    >>> tb = token_bytes({bytes([i]): i for i in range(256)} | {b"ab": 256}, bos_token_id=0)
    >>> trie = VocabTrie(tb)
    >>> p = np.full((1, 257), 1 / 257)
    >>> cm, ends = path_profile(trie.path_plan(b"ab", 0), p[:, trie.order])
    >>> round(cm[0, 0, 97] * 257), round(cm[0, 1, 98] * 257), round(ends[2][0, 0] * 257)
    (2, 1, 1)
    """
    p_sorted = np.atleast_2d(p_sorted)
    b = p_sorted.shape[0]
    pieces = np.add.reduceat(p_sorted, plan.bounds, axis=1)
    cm = np.zeros((b, plan.depth + 1, 256))
    cm[:, plan.child_level, plan.child_byte] = pieces[:, plan.child_piece]
    end_p = [p_sorted[:, pos] for pos in plan.end_pos]
    # the path child of each level is the whole next level (exact sums of positive pieces)
    for d in range(plan.depth - 1, -1, -1):
        cm[:, d, plan.path_bytes[d]] = cm[:, d + 1].sum(-1) + end_p[d + 1].sum(-1)
    return cm, end_p


def prune_hypotheses(
    log_weights: Sequence[float],
    viable: Sequence[bool],
    k: float,
    threshold: float = 0.0,
) -> list[int]:
    """Indices of the hypotheses a beam keeps.

    The ``k`` heaviest, minus those below ``threshold`` times the total weight; if none of those
    can reach a token boundary along the text (``viable``) but another one can, the best viable
    one replaces the last kept one, so the beam never dies out.

    Examples
    --------
    >>> prune_hypotheses([-1.0, -0.1, -5.0], [True, True, True], k=2)
    [1, 0]
    >>> prune_hypotheses([-1.0, -0.1, -5.0], [True, False, True], k=1)
    [0]
    """
    n = len(log_weights)
    if n == 0:
        return []
    lw = np.asarray(log_weights, dtype=float)
    idx = np.argsort(-lw, kind="stable")
    kk = n if not math.isfinite(k) else max(1, int(k))
    keep = list(idx[:kk])
    if threshold > 0 and len(keep) > 1:
        total = np.logaddexp.reduce(lw)
        cut = total + math.log(threshold)
        keep = [keep[0]] + [h for h in keep[1:] if lw[h] >= cut]
    if not any(viable[h] for h in keep):
        best = next((h for h in idx if viable[h]), None)
        if best is not None:
            keep = keep[:-1] + [best] if len(keep) >= kk else keep + [best]
    return [int(h) for h in keep]


def beam_row(
    log_weights: Sequence[float], masses: Sequence[np.ndarray], eos: Sequence[float]
) -> np.ndarray:
    """Normalised 257-way row from hypotheses' log-weights, 256 byte masses and EOS masses.

    Examples
    --------
    >>> m = np.zeros(256); m[65] = 1.0
    >>> r = beam_row([0.0, 0.0], [m, m], [0.0, 1.0])
    >>> r[65], r[256]
    (np.float64(0.6666666666666666), np.float64(0.3333333333333333))
    """
    lw = np.asarray(log_weights, dtype=float)
    w = np.exp(lw - lw.max())
    row = np.zeros(257)
    row[:256] = w @ np.asarray(masses)
    row[256] = float(w @ np.asarray(eos))
    s = row.sum()
    if not s > 0 or not np.isfinite(s):
        raise FloatingPointError("all hypotheses have zero mass")
    return row / s


# ------------------------------------------------------------------------------------------------
# LM side: a token tree sharing one KV cache, evaluated with tree-shaped attention masks


class _TreeLayout:
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
        self.buckets: list = []  # batched attention groups, see _attention_buckets


def _tree_layer_class():
    from transformers.cache_utils import DynamicLayer

    class _TreeLayer(DynamicLayer):
        """A cache layer of shape (texts, kv heads, slots, head dim) with amortised growth."""

        def __init__(self, layout: _TreeLayout):
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


_TREE_ATTENTION = "sklearn_lts_tree"


def _tree_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                    tree_layout=None, **kwargs):
    """Attention of each query over its own text's row of the cache, with a tree mask.

    ``query`` is (1, heads, Q, d) for the Q tokens of the call; ``key``/``value`` are
    (texts, kv heads, width, d). The queries are regrouped per text (see
    :func:`_attention_buckets`), with the query heads that share a kv head packed along the query
    axis (no copies of the keys per head); one SDPA call per bucket covers many texts, and the
    outputs go back to the call's order.
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
    for rows, qidx, mask, flat, dst_q, w in tree_layout.buckets:
        k = key[:, :, :w].index_select(0, rows)
        v = value[:, :, :w].index_select(0, rows)
        r, qm = qidx.shape
        q = query[0][:, qidx].transpose(0, 1).reshape(r, k.shape[1], g * qm, d)
        m = mask[:, :, None].expand(r, 1, g, qm, w).reshape(r, 1, g * qm, w) if g > 1 else mask
        o = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=scaling)
        o = o.reshape(r, h, qm, d).transpose(1, 2).reshape(r * qm, h, d)
        out[dst_q] = o[flat]
    return out[None], None


def _attention_buckets(per_row: dict[int, list[int]], lens: np.ndarray, cap: int = 4):
    """Group the queries of a call for batched attention with little padding.

    Each text's queries are cut into chunks of at most ``max(cap, mean queries per text)``
    (each chunk is one batch entry of SDPA, reading its text's cache row), and the chunks are
    bucketed by row length, halving from the longest, so that short rows are not padded to the
    longest one. Returns ``(rows, chunks, width)`` per bucket.

    Examples
    --------
    >>> b = _attention_buckets({0: [0, 1], 1: [2, 3, 4, 5, 6], 2: [7]}, np.array([40, 50, 10]))
    >>> [(rows, chunks, w) for rows, chunks, w in b]
    [([1, 1, 0], [[2, 3, 4, 5], [6], [0, 1]], 50), ([2], [[7]], 10)]
    """
    cap = max(cap, -(-sum(map(len, per_row.values())) // max(len(per_row), 1)))
    entries = sorted(
        ((int(lens[row]), row, qs[s : s + cap]) for row, qs in per_row.items()
         for s in range(0, len(qs), cap)),
        key=lambda e: -e[0],
    )
    buckets: list[tuple[list[int], list[list[int]], int]] = []
    for n, row, chunk in entries:
        if not buckets or n <= buckets[-1][2] // 2:
            buckets.append(([], [], n))
        buckets[-1][0].append(row)
        buckets[-1][1].append(chunk)
    return buckets


def _register_tree_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(_TREE_ATTENTION, _tree_attention)


def _extend_runs(parent_runs: tuple, slot: int) -> tuple:
    """Ancestor slots of a node (as ``(start, stop)`` runs of its cache row) plus its own slot.

    >>> _extend_runs(((0, 3),), 3), _extend_runs(((0, 3),), 7)
    (((0, 4),), ((0, 3), (7, 8)))
    """
    if parent_runs and parent_runs[-1][1] == slot:
        return parent_runs[:-1] + ((parent_runs[-1][0], slot + 1),)
    return parent_runs + ((slot, slot + 1),)


class _Node:
    """A state: a token sequence (a node of the token tree)."""

    __slots__ = (
        "parent", "token", "depth", "text", "offset", "slot", "runs", "logw", "children",
        "canon", "cm", "end_p", "p_eos", "plan",
    )

    def __init__(self, parent, token, depth, text, offset, canon=-1):
        self.parent = parent
        self.token = token
        self.depth = depth
        self.text = text
        self.offset = offset
        self.slot = None
        self.runs: tuple = ()
        self.logw = 0.0 if parent is None else None
        self.children: dict[int, _Node] = {}
        self.canon = canon  # index in the canonical tokenization if all ancestors are canonical
        self.cm = None  # profile: child masses (depth+1, 256)
        self.end_p = None
        self.p_eos = 0.0
        self.plan = None


@dataclass
class _Text:
    x: bytes
    n_prefix: int
    canon: list[int]  # canonical token ids
    bounds: list[int]  # byte offset after each canonical token (bounds[k] = end of token k)
    root: _Node
    plans: dict[int, PathPlan] = field(default_factory=dict)
    hyps: list = field(default_factory=list)
    rows: np.ndarray | None = None
    alive: list = field(default_factory=list)  # nodes holding a profile


@dataclass
class ConversionStats:
    """Cost counters of the last :meth:`ByteLevelLM.next_byte_proba_batch` call."""

    n_bytes: int = 0
    n_forward_calls: int = 0
    n_tokens_evaluated: int = 0
    n_canonical_tokens: int = 0
    max_beam: int = 0  # most hypotheses held for one text at one byte
    max_new_states: int = 0  # most new states (each costs an LM evaluation) kept at one byte
    seconds_lm: float = 0.0
    seconds_total: float = 0.0

    @property
    def calls_per_byte(self) -> float:
        return self.n_forward_calls / max(self.n_bytes, 1)


_VOCAB_CACHE: list = []  # a few (weakref to tokenizer, args, TokenBytes, VocabTrie)


def _vocabulary(tokenizer: Any, v: int, bos: int | None, eos: int | None):
    """TokenBytes and trie of a tokenizer, cached: reading a vocabulary takes 0.1-1 s."""
    import weakref

    args = (v, bos, eos)
    for ref, a, tb, trie in _VOCAB_CACHE:
        if ref() is tokenizer and a == args:
            return tb, trie
    tb = token_bytes(tokenizer, v, bos_token_id=bos, eos_token_id=eos)
    trie = VocabTrie(tb)
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # e.g. a plain dict vocabulary
        return tb, trie
    _VOCAB_CACHE.append((ref, args, tb, trie))
    del _VOCAB_CACHE[:-4]
    return tb, trie


class ByteLevelLM:
    """Next-byte distributions of a Hugging Face causal LM over tokens.

    The token LM (conditioned on BOS, ending with EOS) defines a distribution over byte strings;
    row ``i`` of :meth:`next_byte_proba` is its next-byte distribution after the first ``i``
    bytes of the text, summed over *all* tokenizations (canonical or not) that cover them.
    Column 256 is end-of-text.

    Parameters
    ----------
    model : transformers causal LM
        Any model that takes ``position_ids`` and dispatches attention through transformers'
        attention interface (GPT-2, Llama, Mistral, Qwen2, ...; not soft-capped or
        sliding-window attention).
    tokenizer : tokenizer or TokenBytes
        Its tokenizer (see :func:`~sklearn_lts.distill._token_bytes.token_bytes` for the
        supported families).
    method : {"beam", "exact", "lattice", "boundary"}
        ``"exact"`` sums every tokenization (exponential in the worst case: short strings and
        tests). ``"beam"`` keeps the ``beam_width`` most probable covering hypotheses.
        ``"lattice"`` sums every tokenization too, but lets all token sequences that end at the
        same byte share one next-token distribution (a forward algorithm over byte offsets, see
        :meth:`_run_lattice`): about 3 token evaluations per text token in a few large calls,
        approximate where different tokenizations of the same bytes disagree.
        ``"boundary"`` is the cheap approximation: the teacher's distribution at its own
        canonical token boundaries, trie mass ratios inside a token.
    beam_width : int
        ``K`` for ``method="beam"``: at each byte, new states (token sequences that just ended
        there, each costing one LM evaluation) are kept only if they rank among the ``K``
        heaviest hypotheses. Continuations of states already evaluated cost nothing and are
        always kept.
    prune_threshold : float
        For ``method="beam"``: new states lighter than this fraction of the total covering mass
        are not evaluated either (merged, or dropped with ``merge=False``; 0 keeps all ``K``).
        Every kept state costs an LM evaluation, so this is the main speed knob; with merging,
        it also sets most of the remaining error (measured: K=10 and K=32 at 1e-3 are equally
        far from a K=64 beam at 1e-5).
    batch_size : int
        Most tokens per forward call.
    lookahead : int
        Tokens of canonical continuation evaluated speculatively with every new off-path state
        (0: measured cheaper on SmolLM2, as most such guesses are never used).
    window : int
        Tokens of the canonical tokenization evaluated per call along the canonical path.
    merge : bool
        For ``method="beam"``: fold the weight of pruned new states into the heaviest kept state
        that ends at the same byte (they decode to the same bytes and differ only in how they
        tokenized them), instead of dropping them. ``False`` is the plain beam of Vieira et al.,
        which leaves exact zeros for bytes that only pruned states could produce.
    device : str
        ``"auto"`` keeps the model where it is; anything else moves it there.
    bos_token_id, eos_token_id : int, optional
        Override the tokenizer's BOS/EOS (default: BOS, else EOS; and EOS).

    Attributes
    ----------
    token_bytes_ : TokenBytes
    stats_ : ConversionStats
        Counters of the last call.

    Notes
    -----
    Rows are float64 and sum to 1 within 1e-12. For tokenizers with a dummy prefix
    (SentencePiece), the text is scored as the model sees it: conditioned on the prefix space.
    Special and added tokens other than EOS never produce text, so their mass is left out
    (the rows are renormalised). The text must fit in the model's context.

    Examples
    --------
    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> vocab = {bytes([i]): i for i in range(256)} | {b"ab": 256, b"<eos>": 257}
    >>> torch.manual_seed(0) and None
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=258, n_layer=1, n_embd=16, n_head=2))
    >>> tb = token_bytes(vocab, bos_token_id=257, eos_token_id=257)
    >>> P = ByteLevelLM(model, tb, method="exact").next_byte_proba("ab")
    >>> P.shape, bool(np.allclose(P.sum(1), 1))
    ((3, 257), True)
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        method: str = "beam",
        beam_width: int = 10,
        prune_threshold: float = 1e-3,
        batch_size: int = 256,
        lookahead: int = 0,
        window: int = 128,
        merge: bool = True,
        device: str = "auto",
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
    ):
        if method not in ("beam", "exact", "boundary", "lattice"):
            raise ValueError(
                f"method must be 'beam', 'exact', 'lattice' or 'boundary', not {method!r}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.method = method
        self.beam_width = beam_width
        self.prune_threshold = prune_threshold
        self.batch_size = batch_size
        self.lookahead = lookahead
        self.window = window
        self.merge = merge
        self.device = device
        if device != "auto":
            model.to(device)
        out = model.get_output_embeddings()
        v = out.weight.shape[0] if out is not None else model.config.vocab_size
        self.token_bytes_, self._trie = _vocabulary(tokenizer, v, bos_token_id, eos_token_id)
        self.stats_ = ConversionStats()
        self._layer_cls = None
        self._compact_every = 16  # bytes between clean-ups of dead profiles and cache slots
        import inspect

        # transformers >= 5.x renamed past_key_values to cache
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # --------------------------------------------------------------------------------- public
    def next_byte_proba(self, text: str | bytes) -> np.ndarray:
        """Next-byte distributions of one text: array (n_bytes + 1, 257), rows sum to 1."""
        return self.next_byte_proba_batch([text])[0]

    def next_byte_log_proba(self, text: str | bytes) -> np.ndarray:
        """Natural log of :meth:`next_byte_proba` (``-inf`` where the probability is 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.next_byte_proba(text))

    def next_byte_log_proba_batch(self, texts: Iterable[str | bytes]) -> list[np.ndarray]:
        """Natural log of :meth:`next_byte_proba_batch`."""
        with np.errstate(divide="ignore"):
            return [np.log(p) for p in self.next_byte_proba_batch(texts)]

    def next_byte_proba_batch(self, texts: Iterable[str | bytes]) -> list[np.ndarray]:
        """Next-byte distributions of several texts; their LM calls are shared."""
        import time

        import torch

        t0 = time.perf_counter()
        self.stats_ = ConversionStats()
        if self.method == "lattice":  # one tree per text: its calls are large on their own
            out = []
            with torch.inference_mode():
                for k, t in enumerate(texts):
                    self._reset_tree({k: 0})
                    item = self._prepare(t, k)
                    self._run_lattice(item, k)
                    out.append(item.rows)
            self._cache = None
            self.stats_.seconds_total = time.perf_counter() - t0
            return out
        texts = list(texts)
        if not texts:
            return []
        self._reset_tree({k: k for k in range(len(texts))})
        items = [self._prepare(t, k) for k, t in enumerate(texts)]
        with torch.inference_mode():
            self._run(items)
        self._cache = None
        self.stats_.seconds_total = time.perf_counter() - t0
        return [it.rows for it in items]

    # ------------------------------------------------------------------------------ internals
    def _reset_tree(self, rows: dict[int, int]) -> None:
        """A fresh token tree and cache, with one cache row per text (``rows``: text -> row)."""
        from transformers.cache_utils import Cache

        if self._layer_cls is None:
            if not getattr(self.model, "_supports_attention_backend", False):
                raise TypeError(
                    f"{type(self.model).__name__} does not dispatch attention through "
                    "transformers' attention interface, which ByteLevelLM needs for its "
                    "tree-masked calls"
                )
            self._layer_cls = _tree_layer_class()
            _register_tree_attention()
        self._rows = rows
        self._layout = _TreeLayout(max(len(rows), 1))
        layer_cls, layout = self._layer_cls, self._layout
        self._cache = Cache(layer_class_to_replicate=lambda: layer_cls(layout))
        tb = self.token_bytes_
        self._root = _Node(None, tb.bos_token_id, 0, -1, 0)
        self._root_p: np.ndarray | None = None
        self._root_eos = 0.0

    def _prepare(self, text: str | bytes, k: int) -> _Text:
        tb = self.token_bytes_
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        x = tb.prefix + raw
        canon = self._canonical(text, x)
        bounds = list(np.cumsum([len(tb.token_bytes[t]) for t in canon]).astype(int))
        max_pos = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        if max_pos is not None and len(canon) + self.lookahead + 2 > max_pos:
            raise ValueError(
                f"text {k} has {len(canon)} tokens, more than the model's context ({max_pos}); "
                "split it into shorter texts"
            )
        return _Text(x=x, n_prefix=len(tb.prefix), canon=canon, bounds=bounds, root=self._root,
                     rows=np.zeros((len(raw) + 1, 257)))

    def _canonical(self, text: str | bytes, x: bytes) -> list[int]:
        """The tokenizer's own tokenization of the text (greedy longest match as a fallback)."""
        tb = self.token_bytes_
        ids = None
        tok = self.tokenizer
        try:
            if isinstance(text, str) and hasattr(tok, "encode_ordinary"):
                ids = list(tok.encode_ordinary(text))
            elif isinstance(text, str) and callable(tok) and not isinstance(tok, TokenBytes):
                ids = list(tok(text, add_special_tokens=False)["input_ids"])
        except Exception:  # any tokenizer failure: fall back to greedy
            ids = None
        if ids is not None:
            if all(0 <= t < len(tb) and tb.token_bytes[t] for t in ids) and b"".join(
                tb.token_bytes[t] for t in ids
            ) == x:
                return ids
        return self._greedy(x, 0, len(x))

    def _greedy(self, x: bytes, a: int, b: int, limit: int | None = None) -> list[int]:
        """Greedy longest-match tokenization of ``x[a:b]``."""
        trie = self._trie
        out: list[int] = []
        while a < b and (limit is None or len(out) < limit):
            best = None
            for d in range(1, min(b - a, trie.max_len) + 1):
                lo, hi, n_end, _, _ = trie._node(x[a : a + d])
                if hi <= lo:
                    break
                if n_end:
                    best = (d, int(trie.order[lo]))
            if best is None:
                raise ValueError(
                    f"byte 0x{x[a]:02X} at offset {a - len(self.token_bytes_.prefix)} cannot be "
                    "produced by any token of this tokenizer: the LM gives the text "
                    "probability zero"
                )
            d, t = best
            out.append(t)
            a += d
        return out

    def _plan(self, item: _Text, j: int) -> PathPlan:
        plan = item.plans.get(j)
        if plan is None:
            plan = self._trie.path_plan(item.x, j)
            item.plans[j] = plan
        return plan

    def _child(self, node: _Node, token: int, item_idx: int, item: _Text) -> _Node:
        ch = node.children.get((item_idx, token)) if node.parent is None else node.children.get(
            token
        )
        if ch is None:
            off = node.offset + len(self.token_bytes_.token_bytes[token])
            canon = -1
            if node.canon + 1 < len(item.canon) and item.canon[node.canon + 1] == token and (
                node.parent is None or node.canon >= 0
            ):
                canon = node.canon + 1
            ch = _Node(node, token, node.depth + 1, item_idx, off, canon)
            if node.parent is None:
                node.children[(item_idx, token)] = ch
            else:
                node.children[token] = ch
        return ch

    def _spine(self, node: _Node, item_idx: int, item: _Text, length: int) -> list[_Node]:
        """Node plus its likely continuation: the canonical tokenization of the next bytes."""
        out = [node]
        j = node.offset
        canon_start = node.canon + 1 if node.canon >= 0 or node.parent is None else None
        if canon_start is None:
            import bisect

            k = bisect.bisect_left(item.bounds, j)
            if k < len(item.bounds) and item.bounds[k] == j:
                canon_start = k + 1
                toks = []
            else:
                end = item.bounds[k] if k < len(item.bounds) else len(item.x)
                toks = self._greedy(item.x, j, end, limit=length)
                canon_start = k + 1
        else:
            toks = []
        toks = toks + item.canon[canon_start : canon_start + max(0, length - len(toks))]
        cur = node
        for t in toks[:length]:
            cur = self._child(cur, t, item_idx, item)
            out.append(cur)
        return out

    def _ensure(
        self, requests: list[tuple[_Node, int, _Text]], speculative: Sequence = ()
    ) -> None:
        """Evaluate the requested nodes, their likely continuations and the speculative nodes
        (states the beam will probably need in the next bytes) in few forward calls."""
        todo: list[_Node] = []
        seen = set()
        items: dict[int, _Text] = {}
        jobs = [(n, k, it, None) for n, k, it in requests]
        jobs += [(n, k, it, 0) for n, k, it in speculative]
        for node, idx, item, spine in jobs:
            items[idx] = item
            if node.cm is not None and node is not self._root:
                continue
            if node.slot is not None and node is not self._root:
                continue
            # the canonical path in long windows; off-path states with a short canonical
            # continuation (a longer one mostly evaluates states the beam never keeps)
            length = self.window if node.canon >= 0 or node.parent is None else self.lookahead
            if spine is not None and node.canon < 0:
                length = spine
            for n in self._spine(node, idx, item, length):
                chain = []
                m = n
                while m is not None and m.slot is None and id(m) not in seen:
                    chain.append(m)
                    seen.add(id(m))
                    m = m.parent
                todo.extend(reversed(chain))
        todo.sort(key=lambda n: n.depth)  # parents first
        for a in range(0, len(todo), self.batch_size):
            self._forward(todo[a : a + self.batch_size], items)

    def _forward(self, nodes: list[_Node], items: dict[int, _Text]) -> None:
        import time

        import torch

        t0 = time.perf_counter()
        lay = self._layout
        lens = lay.lens.copy()
        dst_row, dst_slot, src = [], [], []
        per_row: dict[int, list[int]] = {}
        for r, n in enumerate(nodes):
            if n.parent is None:  # the root: slot 0 of every row
                n.slot, n.runs = 0, ((0, 1),)
                dst_row += range(lay.n_rows)
                dst_slot += [0] * lay.n_rows
                src += [r] * lay.n_rows
                np.maximum(lens, 1, out=lens)
                per_row.setdefault(0, []).append(r)
                continue
            row = self._rows[n.text]
            n.slot = int(lens[row])
            lens[row] += 1
            n.runs = _extend_runs(n.parent.runs, n.slot)
            dst_row.append(row)
            dst_slot.append(n.slot)
            src.append(r)
            per_row.setdefault(row, []).append(r)
        width = int(lens.max())
        dev = next(self.model.parameters()).device
        lt = lambda v: torch.as_tensor(np.asarray(v, dtype=np.int64), device=dev)  # noqa: E731
        lay.width = width
        lay.dst, lay.src = (lt(dst_row), lt(dst_slot)), lt(src)
        lay.buckets = []
        for rows_b, chunks, w in _attention_buckets(per_row, lens):
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
            lay.buckets.append((lt(rows_b), lt(qidx), torch.from_numpy(allow).to(dev)[:, None],
                                lt(flat), lt(dst_q), w))
        ids = torch.tensor([[n.token for n in nodes]], device=dev)
        pos = torch.tensor([[n.depth for n in nodes]], device=dev)
        cfg = self.model.config
        before = cfg._attn_implementation
        cfg._attn_implementation = _TREE_ATTENTION  # only for this call
        try:
            out = self.model(
                input_ids=ids, position_ids=pos, use_cache=True, tree_layout=lay,
                **{self._cache_kw: self._cache},
            )
        finally:
            cfg._attn_implementation = before
        lay.lens = lens
        logits = out.logits[0]
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        self.stats_.n_forward_calls += 1
        self.stats_.n_tokens_evaluated += len(nodes)
        self.stats_.seconds_lm += time.perf_counter() - t0
        order = torch.from_numpy(self._trie.order).to(dev)
        eos = self.token_bytes_.eos_token_id
        # profiles, grouped by (text, offset) so one reduceat serves all states at that offset
        groups: dict[tuple[int, int], list[int]] = {}
        for r, n in enumerate(nodes):
            if n.parent is None:
                self._root_p = logp[r].double().exp()[order].cpu().numpy()
                self._root_eos = float(logp[r, eos].exp()) if eos is not None else 0.0
                continue
            groups.setdefault((n.text, n.offset), []).append(r)
        for (ti, off), rs in groups.items():
            item = items[ti]
            rows = logp[rs].double().exp()
            p_sorted = rows[:, order].cpu().numpy()
            plan = self._plan(item, off)
            cm, end_p = path_profile(plan, p_sorted)
            for k, r in enumerate(rs):
                n = nodes[r]
                n.plan = plan
                n.cm = cm[k]
                n.end_p = [e[k] for e in end_p]
                n.p_eos = float(rows[k, eos]) if eos is not None else 0.0
                item.alive.append(n)
        for n in nodes:  # weights of nodes evaluated without passing through the beam
            if n.logw is None:
                self._set_logw(n)

    def _set_logw(self, n: _Node) -> None:
        par = n.parent
        if par.logw is None:
            self._set_logw(par)
        level = n.offset - par.offset
        if par is self._root:
            plan = self._plan_root_for(n)
            ids, ps = plan.end_ids[level], self._root_p[plan.end_pos[level]]
        else:
            ids, ps = par.plan.end_ids[level], par.end_p[level]
        k = int(np.flatnonzero(ids == n.token)[0])
        n.logw = par.logw + (math.log(ps[k]) if ps[k] > 0 else -math.inf)

    def _plan_root_for(self, n: _Node) -> PathPlan:
        return self._plan(self._items[n.text], 0)

    def _root_profile(self, item: _Text) -> tuple[np.ndarray, list[np.ndarray]]:
        plan = self._plan(item, 0)
        cm, end_p = path_profile(plan, self._root_p[None])
        return cm[0], [e[0] for e in end_p]

    def _run(self, items: list[_Text]) -> None:
        self._items = items
        self.stats_.n_bytes = sum(len(it.x) - it.n_prefix for it in items)
        self.stats_.n_canonical_tokens = sum(len(it.canon) for it in items)
        self._ensure([(self._root, k, it) for k, it in enumerate(items)])
        # the root is shared: give each text its own profile of it
        root_prof = {}
        for k, it in enumerate(items):
            root_prof[k] = self._root_profile(it)
            it.hyps = [(None, 0)]  # None = this text's root
        k_beam = {"exact": math.inf, "boundary": 1}.get(self.method, self.beam_width)
        thr = self.prune_threshold if self.method == "beam" else 0.0
        active = list(range(len(items)))
        spec: list = []
        i = 0
        while active:
            requests = []
            still = []
            for k in active:
                it = items[k]
                self._emit_row(it, k, i, root_prof[k])
                if i == len(it.x):
                    continue
                cands = self._transition(it, k, i, root_prof[k])
                if not cands:
                    where = " in the beam" if self.method != "exact" else ""
                    raise ValueError(
                        f"text {k}: no token sequence{where}"
                        f" covers its first {i + 1 - it.n_prefix} bytes (byte 0x{it.x[i]:02X} at "
                        f"offset {i - it.n_prefix}); the LM gives this text probability zero"
                    )
                keep = prune_hypotheses(
                    [c[2] for c in cands], [c[3] for c in cands], k_beam, thr
                )
                if self.method == "beam" and self.merge:
                    keep = self._merge_pruned(cands, keep, thr)
                it.hyps = [(cands[h][0], cands[h][1]) for h in keep]
                self.stats_.max_beam = max(self.stats_.max_beam, len(it.hyps))
                self.stats_.max_new_states = max(
                    self.stats_.max_new_states, sum(d == 0 for _, d in it.hyps)
                )
                for node, d in it.hyps:
                    if d == 0 and node.cm is None:
                        requests.append((node, k, it))
                if self.method != "boundary":
                    total = float(np.logaddexp.reduce([cands[h][2] for h in keep]))
                    spec += self._speculate(it, k, root_prof[k], total, k_beam, thr)
                if i % self._compact_every == self._compact_every - 1:
                    self._free(it, i)
                still.append(k)
            if i % self._compact_every == self._compact_every - 1:
                self._compact(items)
            if requests:  # a call is needed anyway: add the states the next bytes will want
                # (speculated since the last call; those whose token already ended, or whose
                # parent's profile was freed, can no longer be used)
                spec = [s for s in spec if s[0].slot is None and s[0].offset > i
                        and (s[0].parent is self._root or s[0].parent.cm is not None)]
                self._ensure(requests, spec)
                spec = []
            active = still
            i += 1

    def _run_lattice(self, it: _Text, k: int) -> None:
        """Forward algorithm over the byte lattice, one next-token distribution per byte offset.

        Every token sequence that decodes to ``x[:o]`` is summed into the weight ``W(o)``
        (exactly, as in the forward algorithm of an HMM); they all continue with the next-token
        distribution of one *representative* sequence: the canonical tokenization at a canonical
        boundary, otherwise the canonical tokens up to the last boundary followed by the greedy
        tokenization of the rest. The representatives do not depend on any probability, so all
        of them are laid out as one token tree and evaluated in a few large calls.
        """
        x, n = it.x, len(it.x)
        self._items = {k: it}
        self.stats_.n_bytes += n - it.n_prefix
        self.stats_.n_canonical_tokens += len(it.canon)
        canon = self._spine(self._root, k, it, len(it.canon))[1:]
        rep: list[_Node] = [self._root] * (n + 1)
        a = 0
        for j, b in enumerate(it.bounds):
            base = self._root if j == 0 else canon[j - 1]
            rep[b] = canon[j]
            for o in range(a + 1, b):
                cur = base
                for t in self._greedy(x, a, o):
                    cur = self._child(cur, t, k, it)
                rep[o] = cur
            a = b
        todo, seen = [], set()
        for node in rep:
            chain = []
            while node is not None and node.slot is None and id(node) not in seen:
                seen.add(id(node))
                node.logw = 0.0  # weights come from the lattice, not from the tree
                chain.append(node)
                node = node.parent
            todo.extend(chain)
        todo.sort(key=lambda m: m.depth)
        for s in range(0, len(todo), self.batch_size):
            self._forward(todo[s : s + self.batch_size], {k: it})
        root_cm, root_end = self._root_profile(it)
        # profile of each offset's representative: child masses, end masses, path depth
        prof = [(root_cm, root_end, self._plan(it, 0).depth, self._root_eos)] + [
            (m.cm, m.end_p, m.plan.depth, m.p_eos) for m in rep[1:]
        ]
        log_w = np.full(n + 1, -math.inf)  # log W(o): all tokenizations of x[:o]
        log_w[0] = 0.0
        active: list[int] = []  # offsets whose next token can still be in progress
        for i in range(n + 1):
            _, end_p, depth, _ = prof[i]
            if log_w[i] > -math.inf:
                for e in range(1, depth + 1):
                    m = float(end_p[e].sum())
                    if m > 0:
                        log_w[i + e] = np.logaddexp(log_w[i + e], log_w[i] + math.log(m))
                active.append(i)
            active = [o for o in active if i - o <= prof[o][2]]
            if i < it.n_prefix:
                continue
            it.rows[i - it.n_prefix] = beam_row(
                [log_w[o] for o in active],
                [prof[o][0][i - o] for o in active],
                [prof[o][3] if o == i else 0.0 for o in active],
            )
            self.stats_.max_beam = max(self.stats_.max_beam, len(active))

    def _merge_pruned(self, cands: list[tuple], keep: list[int], thr: float) -> list[int]:
        """Keep what costs no LM call and merge the pruned new states instead of dropping them.

        A continuation ``(node, d >= 1)`` of an evaluated state needs no LM call (the state's
        profile covers its whole path), so all of them stay. The new states (``d == 0``) of one
        step all end at the same byte of the same text: they differ only in how they tokenized
        the bytes before it. The pruned ones are merged into the heaviest kept one, whose
        next-token distribution then stands in for theirs. If none was kept, the heaviest becomes
        the representative when the group together is above the threshold.
        """
        kept = set(keep)
        out = list(keep) + [
            h for h, c in enumerate(cands) if h not in kept and c[1] > 0 and c[2] > -math.inf
        ]
        new = [h for h, c in enumerate(cands) if c[1] == 0 and c[2] > -math.inf]
        pruned = [h for h in new if h not in kept]
        if not pruned:
            return out
        kept_new = [h for h in new if h in kept]
        if kept_new:
            rep = max(kept_new, key=lambda h: cands[h][2])
        else:
            rep = max(new, key=lambda h: cands[h][2])
            group = float(np.logaddexp.reduce([cands[h][2] for h in new]))
            total = float(np.logaddexp.reduce([c[2] for c in cands]))
            if thr > 0 and group < total + math.log(thr):
                return out
            out.append(rep)
            pruned = [h for h in pruned if h != rep]
            if not pruned:
                return out
        node = cands[rep][0]
        merged = np.logaddexp.reduce([cands[h][2] for h in pruned])
        node.logw = float(np.logaddexp(node.logw, merged))
        return out

    def _speculate(self, it: _Text, k: int, root_prof, total: float, k_beam: float, thr: float):
        """States that the kept hypotheses will create at their next token ends along the text
        and that are heavy enough to survive pruning then (their weights are already known)."""
        # a child is kept later only if it carries at least `thr` of the mass then
        bar = total + math.log(thr) if thr > 0 else -math.inf
        found = []
        for node, d in it.hyps:
            if node is None:
                plan, end_p, lw, par = self._plan(it, 0), root_prof[1], 0.0, self._root
            elif node.cm is None:  # being evaluated in this very call
                continue
            else:
                plan, end_p, lw, par = node.plan, node.end_p, node.logw, node
            for e in range(d + 1, plan.depth + 1):
                for t, p in zip(plan.end_ids[e], end_p[e], strict=True):
                    if p > 0 and lw + math.log(p) >= bar:
                        found.append((lw + math.log(p), par, int(t)))
        found.sort(key=lambda f: -f[0])
        if math.isfinite(k_beam):
            found = found[: int(k_beam)]
        out = []
        for lwc, par, t in found:
            ch = self._child(par, t, k, it)
            if ch.slot is None:
                if ch.logw is None:
                    ch.logw = lwc
                out.append((ch, k, it))
        return out

    def _compact(self, items: list[_Text]) -> None:
        """Drop the cache slots of states no live state descends from.

        Every query attends over its text's whole cache row (masked), so dead branches would make
        each call slower as the tree grows. Live: the root and the ancestors of every state that
        still holds a profile (only those can get children).
        """
        import torch

        live: dict[int, _Node] = {id(self._root): self._root}
        for it in items:
            for n in it.alive:
                m = n
                while m is not None and id(m) not in live:
                    live[id(m)] = m
                    m = m.parent
        lay = self._layout
        by_row: dict[int, list[_Node]] = {}
        for m in live.values():
            if m.slot is not None and m.parent is not None:
                by_row.setdefault(self._rows[m.text], []).append(m)
        n_live = sum(len(v) for v in by_row.values()) + lay.n_rows
        if n_live > 0.75 * lay.lens.sum():
            return
        # dead evaluated nodes must never be reached again with a stale slot
        for m in live.values():
            dead = [t for t, c in m.children.items() if c.slot is not None and id(c) not in live]
            for t in dead:
                del m.children[t]
        w = 1 + max((len(v) for v in by_row.values()), default=0)
        slot_idx = np.zeros((lay.n_rows, w), dtype=np.int64)  # padding repeats the root slot
        lens = np.minimum(lay.lens, 1)
        for row, ns in by_row.items():
            ns.sort(key=lambda m: m.slot)  # ascending old slots: parents before children
            slot_idx[row, 1 : 1 + len(ns)] = [m.slot for m in ns]
            lens[row] = 1 + len(ns)
        row_idx = np.broadcast_to(np.arange(lay.n_rows)[:, None], slot_idx.shape)
        for layer in self._cache.layers:
            if getattr(layer, "is_initialized", False):
                dev = layer._k.device
                layer.keep_slots(torch.from_numpy(np.ascontiguousarray(row_idx)).to(dev),
                                 torch.from_numpy(slot_idx).to(dev))
        for ns in by_row.values():
            for new, m in enumerate(ns, start=1):
                m.slot = new
                m.runs = _extend_runs(m.parent.runs, new)
        lay.lens = lens

    def _free(self, it: _Text, i: int) -> None:
        """Drop profiles that no hypothesis can use any more (their path is behind us)."""
        keep = []
        for n in it.alive:
            if n.offset + n.plan.depth < i:
                n.cm = n.end_p = None
                n.plan = None
            else:
                keep.append(n)
        it.alive = keep
        for j in [j for j in it.plans if j + 512 < i]:
            del it.plans[j]

    def _emit_row(self, it: _Text, k: int, i: int, root_prof) -> None:
        if i < it.n_prefix:
            return
        lws, masses, eos = [], [], []
        for node, d in it.hyps:
            if node is None:
                lws.append(0.0)
                masses.append(root_prof[0][d])
                eos.append(self._root_eos if d == 0 else 0.0)
            else:
                lws.append(node.logw)
                masses.append(node.cm[d])
                eos.append(node.p_eos if d == 0 else 0.0)
        it.rows[i - it.n_prefix] = beam_row(lws, masses, eos)

    def _transition(self, it: _Text, k: int, i: int, root_prof) -> list[tuple]:
        """Candidates at byte i + 1: (node, depth, log-weight, viable)."""
        cands = []
        boundary = self.method == "boundary"
        for node, d in it.hyps:
            if node is None:
                plan = self._plan(it, 0)
                end_p, end_ids, lw, par = root_prof[1], plan.end_ids, 0.0, self._root
                cm = root_prof[0]
            else:
                plan, cm, end_p, end_ids, lw, par = (
                    node.plan, node.cm, node.end_p, node.plan.end_ids, node.logw, node
                )
            if d >= plan.depth:
                continue
            d2 = d + 1
            c = float(cm[d2].sum())
            if boundary:
                nxt_canon = (node.canon if node is not None else -1) + 1
                if it.bounds[nxt_canon] == i + 1:
                    ch = self._child(par, it.canon[nxt_canon], k, it)
                    cands.append((ch, 0, 0.0, True))
                else:
                    cands.append((node, d2, 0.0, True))
                continue
            if c > 0:
                cands.append((node, d2, lw + math.log(c), bool(plan.has_end_after[d2])))
            for t, p in zip(end_ids[d2], end_p[d2], strict=True):
                if p > 0:
                    ch = self._child(par, int(t), k, it)
                    # always from this hypothesis: a speculative evaluation may have set it
                    # before the parent's weight absorbed merged mass
                    ch.logw = lw + math.log(p)
                    cands.append((ch, 0, ch.logw, True))
        return cands
