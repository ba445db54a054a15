"""Exact and beam-summed next-byte distributions from a token-level causal LM.

Notation. The text (after the tokenizer's dummy prefix, if any) has bytes ``x[0:n]``. A *state*
is a token sequence ``s`` (after BOS) that decodes exactly to ``x[:j]``; its weight ``W_s`` is its
probability under the LM and ``p_s`` its next-token distribution. A *hypothesis* ``(s, d)`` at
byte ``i = j + d`` stands for all token sequences that start with ``s`` and whose next token
starts with ``x[j:i]`` (``d >= 1``: and continues past ``i``; ``d = 0``: anything). Row ``i`` of
the result is

    sum over hypotheses (s, d) of  W_s * [mass_s(x[j:i] + b) for b in 0..255,  (d == 0) * p_s(EOS)]

normalised, where ``mass_s(u)`` is the total ``p_s`` of the tokens whose bytes start with ``u``.
Over *all* hypotheses this is exactly the covering sum (non-canonical tokenizations included).

One concept per module:

* ``_lm``: :class:`ByteLevelLM`, the API, and which search each method runs;
* ``_checks``: what it accepts (parameter constraints, texts, vocabularies, context length);
* ``_math``: pure math (trie masses along a path, pruning, output rows);
* ``_state``: named records (tree nodes and their profiles, texts, hypotheses, counters);
* ``_vocab`` / ``_tokenize``: the byte table and trie of a tokenizer (cached), canonical and
  greedy tokenizations;
* ``_tree``: growing a text's token tree;
* ``_cache`` / ``_attention`` / ``_runner``: the shared key/value cache (one row per text), the
  tree-masked attention, and the forward calls that evaluate tree nodes;
* ``_beam`` (``"beam"``, ``"exact"``), ``_boundary`` (``"boundary"``), ``_lattice``
  (``"lattice"``): the searches.
"""

from ._lm import ByteLevelLM
from ._math import beam_row, path_profile, prune_hypotheses
from ._state import ConversionStats

__all__ = ["ByteLevelLM", "ConversionStats", "path_profile", "prune_hypotheses", "beam_row"]
