"""``method="boundary"``: the canonical tokenization's own states only.

The teacher's next-token distribution at its own canonical token boundaries, trie mass ratios
inside a token: a beam of width 1 that follows the canonical tokenization (no alternative
tokenizations, no pruning, merging or speculation).
"""

from __future__ import annotations

from ._beam import BeamSearch
from ._runner import ModelRunner
from ._state import Candidate, TextState
from ._tree import child
from ._vocab import Vocabulary

__all__ = ["BoundarySearch"]


class BoundarySearch(BeamSearch):
    """A :class:`~._beam.BeamSearch` whose only hypothesis follows the canonical tokenization."""

    def __init__(self, runner: ModelRunner, vocab: Vocabulary, *, window: int, lookahead: int,
                 compact_every: int):
        super().__init__(runner, vocab, width=1, threshold=0.0, merge=False, speculate=False,
                         window=window, lookahead=lookahead, compact_every=compact_every)

    def _candidates(self, text: TextState, i: int) -> list[Candidate]:
        """The canonical state at byte ``i + 1``: a new one where a canonical token ends there,
        else the current one read one byte further."""
        cands = []
        for node, d in text.hyps:
            if d >= node.profile.plan.depth:
                continue
            nxt = node.canon + 1  # the root's canon is -1
            if text.bounds[nxt] == i + 1:
                cands.append(Candidate(child(node, text.canon[nxt], self.vocab), 0, 0.0, True))
            else:
                cands.append(Candidate(node, d + 1, 0.0, True))
        return cands
