"""``method="lattice"``: the forward algorithm over byte offsets.

Every token sequence that decodes to ``x[:o]`` is summed into the weight ``W(o)`` (exactly, as
in the forward algorithm of an HMM); they all continue with the next-token distribution of one
*representative* sequence: the canonical tokenization at a canonical boundary, otherwise the
canonical tokens up to the last boundary followed by the greedy tokenization of the rest. The
representatives do not depend on any probability, so all of them are laid out as one token tree
and evaluated in a few large calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._math import beam_row
from ._runner import ModelRunner
from ._state import Node, Profile, TextState
from ._tokenize import greedy_ids
from ._tree import child, spine, unevaluated
from ._vocab import Vocabulary

__all__ = ["run_lattice", "representatives", "lattice_rows"]


def run_lattice(text: TextState, runner: ModelRunner, vocab: Vocabulary) -> None:
    """Fill ``text.proba`` (the text has a cache of its own)."""
    reps = representatives(text, vocab)
    runner.evaluate(unevaluated(reps))
    max_active = lattice_rows([n.profile for n in reps], text.n_prefix, text.proba)
    runner.stats.max_beam = max(runner.stats.max_beam, max_active)


def representatives(text: TextState, vocab: Vocabulary) -> list[Node]:
    """The representative state of every byte offset ``0..len(text.x)``."""
    canon = spine(text.root, len(text.canon), vocab)[1:]
    rep: list[Node] = [text.root] * (len(text.x) + 1)
    a = 0
    for j, b in enumerate(text.bounds):
        base = text.root if j == 0 else canon[j - 1]
        rep[b] = canon[j]
        for o in range(a + 1, b):
            cur = base
            for t in greedy_ids(vocab, text.x, a, o):
                cur = child(cur, t, vocab)
            rep[o] = cur
        a = b
    return rep


def lattice_rows(profiles: Sequence[Profile], n_prefix: int, out: np.ndarray) -> int:
    """Forward algorithm: rows from the representatives' profiles, one per byte offset.

    ``out[i - n_prefix]`` gets row ``i`` (offsets before ``n_prefix`` have none). Returns the
    most offsets whose next token was in progress at one byte.
    """
    n = len(profiles) - 1
    log_w = np.full(n + 1, -math.inf)  # log W(o): all tokenizations of x[:o]
    log_w[0] = 0.0
    active: list[int] = []  # offsets whose next token can still be in progress
    max_active = 0
    for i in range(n + 1):
        prof = profiles[i]
        if log_w[i] > -math.inf:
            for e in range(1, prof.plan.depth + 1):
                m = float(prof.end_p[e].sum())
                if m > 0:
                    log_w[i + e] = np.logaddexp(log_w[i + e], log_w[i] + math.log(m))
            active.append(i)
        active = [o for o in active if i - o <= profiles[o].plan.depth]
        if i < n_prefix:
            continue
        out[i - n_prefix] = beam_row(
            [log_w[o] for o in active],
            [profiles[o].child_mass[i - o] for o in active],
            [profiles[o].p_eos if o == i else 0.0 for o in active],
        )
        max_active = max(max_active, len(active))
    return max_active
