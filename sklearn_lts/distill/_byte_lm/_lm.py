"""ByteLevelLM: the public API, and the dispatch of each method to its search."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.utils._param_validation import validate_parameter_constraints

from sklearn_lts._device import resolve_device

from ._beam import BeamSearch
from ._boundary import BoundarySearch
from ._checks import PARAMETER_CONSTRAINTS, check_context, check_text, check_texts, check_vocabulary
from ._lattice import run_lattice
from ._runner import ModelRunner, eval_mode
from ._state import ConversionStats, TextState
from ._tokenize import canonical_ids
from ._vocab import vocabulary

__all__ = ["ByteLevelLM"]


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
        Its tokenizer (see :func:`~sklearn_lts.distill.token_bytes` for the supported
        families).
    method : {"beam", "exact", "lattice", "boundary"}, default="beam"
        ``"exact"`` sums every tokenization (exponential in the worst case: short strings and
        tests). ``"beam"`` keeps the ``beam_width`` most probable covering hypotheses.
        ``"lattice"`` sums every tokenization too, but lets all token sequences that end at the
        same byte share one next-token distribution (a forward algorithm over byte offsets):
        about 3 token evaluations per text token in a few large calls, approximate where
        different tokenizations of the same bytes disagree.
        ``"boundary"`` is the cheap approximation: the teacher's distribution at its own
        canonical token boundaries, trie mass ratios inside a token.
    beam_width : int, default=10
        ``K`` for ``method="beam"``: at each byte, new states (token sequences that just ended
        there, each costing one LM evaluation) are kept only if they rank among the ``K``
        heaviest hypotheses. Continuations of states already evaluated cost nothing and are
        always kept.
    prune_threshold : float, default=1e-3
        For ``method="beam"``: new states lighter than this fraction of the total covering mass
        are not evaluated either (merged, or dropped with ``merge=False``; 0 keeps all ``K``).
        Every kept state costs an LM evaluation, so this is the main speed knob; with merging,
        it also sets most of the remaining error (measured: K=10 and K=32 at 1e-3 are equally
        far from a K=64 beam at 1e-5).
    batch_size : int, default=256
        Most tokens per forward call.
    lookahead : int, default=0
        Tokens of canonical continuation evaluated speculatively with every new off-path state
        (0: measured cheaper on SmolLM2, as most such guesses are never used).
    window : int, default=128
        Tokens of the canonical tokenization evaluated per call along the canonical path.
    merge : bool, default=True
        For ``method="beam"``: fold the weight of pruned new states into the heaviest kept state
        that ends at the same byte (they decode to the same bytes and differ only in how they
        tokenized them), instead of dropping them. ``False`` is the plain beam of Vieira et al.,
        which leaves exact zeros for bytes that only pruned states could produce.
    device : str or None, default=None
        ``None`` keeps the model where it is; ``"auto"`` moves it to CUDA, else Apple's MPS,
        else the CPU (the meaning of ``device`` everywhere in the library); any other torch
        device string moves it there.
    bos_token_id, eos_token_id : int or None, default=None
        Override the tokenizer's BOS/EOS (default: BOS, else EOS; and EOS).

    Raises
    ------
    ValueError
        If a parameter is out of its range, if the tokenizer has text tokens beyond the model's
        output layer or BOS/EOS is not a token of the model, and (when scoring) if a text may
        need more positions than the model has.
    TypeError
        If a text is not a str or bytes.

    Attributes
    ----------
    token_bytes_ : TokenBytes
    stats_ : ConversionStats
        Counters of the last call.

    Notes
    -----
    Rows are float64 and sum to 1 within 1e-12. The model scores in eval mode (no dropout)
    and without autograd; its train/eval flags are put back after each call. For tokenizers
    with a dummy prefix (SentencePiece), the text is scored as the model sees it: conditioned on
    the prefix space.
    Special and added tokens other than EOS never produce text, so their mass is left out
    (the rows are renormalised). The text must fit in the model's context: with
    ``method="beam"`` or ``"exact"``, a token sequence can have one token per byte, so a text
    may have at most ``max_position_embeddings - 1`` bytes; with ``"boundary"`` and
    ``"lattice"``, its tokenization must fit.

    How the LM is called: all states of a text live in one token tree rooted at BOS, the
    key/value cache has one row per text, and each forward call evaluates new tree nodes of
    many texts at once with a tree-shaped attention mask (each node attends to its ancestors
    only, with its depth as position id).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel
    >>> from sklearn_lts.distill import ByteLevelLM, token_bytes
    >>> vocab = {bytes([i]): i for i in range(256)} | {b"ab": 256, b"<eos>": 257}
    >>> torch.manual_seed(0) and None
    >>> model = GPT2LMHeadModel(GPT2Config(vocab_size=258, n_layer=1, n_embd=16, n_head=2))
    >>> tb = token_bytes(vocab, bos_token_id=257, eos_token_id=257)
    >>> P = ByteLevelLM(model, tb, method="exact").next_byte_proba("ab")
    >>> P.shape, bool(np.allclose(P.sum(1), 1))
    ((3, 257), True)
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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
        device: str | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
    ):
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
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self._validate_params()
        if device is not None:
            model.to(resolve_device(device))
        out = model.get_output_embeddings()
        n_out = out.weight.shape[0] if out is not None else model.config.vocab_size
        self._vocab = vocabulary(tokenizer, n_out, bos_token_id, eos_token_id)
        check_vocabulary(self._vocab.tb, n_out, bos_token_id, eos_token_id)
        self.token_bytes_ = self._vocab.tb
        self.stats_ = ConversionStats()
        self._runner: ModelRunner | None = None
        self._compact_every = 16  # bytes between clean-ups of dead profiles and cache slots

    # --------------------------------------------------------------------------------- public
    def next_byte_proba(self, text: str | bytes) -> np.ndarray:
        """Next-byte distributions of one text: array (n_bytes + 1, 257), rows sum to 1."""
        check_text(text)
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
        t0 = time.perf_counter()
        self._validate_params()
        texts = check_texts(texts)
        self.stats_ = ConversionStats()
        runner = self._runner = ModelRunner(self.model, self._vocab, self.batch_size)
        if self.method == "lattice":  # one tree per text: its calls are large on their own
            out = []
            with eval_mode(self.model):
                for text_id, t in enumerate(texts):
                    runner.reset(1, self.stats_)
                    state = self._text_state(t, text_id, cache_row=0)
                    run_lattice(state, runner, self._vocab)
                    out.append(state.proba)
        else:
            if not texts:
                return []
            runner.reset(len(texts), self.stats_)
            states = [self._text_state(t, text_id, cache_row=text_id)
                      for text_id, t in enumerate(texts)]
            with eval_mode(self.model):
                self._search(runner).run(states)
            out = [s.proba for s in states]
        runner.release()
        self.stats_.seconds_total = time.perf_counter() - t0
        return out

    # ------------------------------------------------------------------------------ internals
    def _validate_params(self) -> None:
        """Check every parameter against :attr:`_parameter_constraints` (InvalidParameterError,
        a ValueError, naming the parameter)."""
        validate_parameter_constraints(
            self._parameter_constraints,
            {name: getattr(self, name) for name in self._parameter_constraints},
            caller_name=type(self).__name__,
        )

    def _text_state(self, text: str | bytes, text_id: int, cache_row: int) -> TextState:
        """The bytes scored and canonical tokenization of a text, checked against the context."""
        tb = self._vocab.tb
        raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        x = tb.prefix + raw
        canon = canonical_ids(self.tokenizer, self._vocab, text, x)
        bounds = list(np.cumsum([len(tb.token_bytes[t]) for t in canon]).astype(int))
        state = TextState(text_id, x, len(tb.prefix), canon, bounds, cache_row, self._vocab.trie,
                          tb.bos_token_id)
        cfg = self.model.config
        max_pos = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        check_context(self.method, state, max_pos)
        self.stats_.n_bytes += len(raw)
        self.stats_.n_canonical_tokens += len(canon)
        return state

    def _search(self, runner: ModelRunner) -> BeamSearch:
        """The beam of ``method``: exact (no pruning), beam or boundary."""
        common = dict(window=self.window, lookahead=self.lookahead,
                      compact_every=self._compact_every)
        if self.method == "boundary":
            return BoundarySearch(runner, self._vocab, **common)
        return BeamSearch(
            runner, self._vocab,
            width=math.inf if self.method == "exact" else self.beam_width,
            threshold=self.prune_threshold if self.method == "beam" else 0.0,
            merge=self.method == "beam" and self.merge, speculate=True, **common,
        )
