"""Beam summing over covering hypotheses, byte by byte, for many texts at once.

A *hypothesis* ``(s, d)`` at byte ``i = j + d`` stands for all token sequences that start with
the state ``s`` (which decodes to ``x[:j]``) and whose next token starts with ``x[j:i]``
(``d >= 1``: and continues past ``i``; ``d = 0``: anything). Row ``i`` is the weighted sum of the
hypotheses' next-byte masses (:func:`~._math.beam_row`). The beam keeps the ``K`` heaviest
(Vieira et al.'s beam summing), with pruned new states merged into a kept state at the same byte
rather than dropped; ``K = inf`` sums all of them (``method="exact"``).

Evaluations are speculative: whenever a state is needed, its likely continuation (the canonical
tokenization of the next bytes) is evaluated in the same call, a long window of it on the
canonical path, and so are the children the kept hypotheses will create at their next token
ends, so the beam rarely waits for the LM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._math import beam_row, log_sum, prune_hypotheses
from ._runner import ModelRunner
from ._state import Candidate, Hypothesis, Node, TextState
from ._tree import child, spine, unevaluated
from ._vocab import Vocabulary

__all__ = ["BeamSearch", "merge_pruned"]


class BeamSearch:
    """Covering beam over the token trees of several texts (one cache row each).

    Parameters
    ----------
    runner : ModelRunner
    vocab : Vocabulary
    width : float
        ``K``: most new states kept per byte (``math.inf``: all).
    threshold : float
        New states lighter than this fraction of the covering mass are not evaluated.
    merge : bool
        Fold pruned new states into a kept one (:func:`merge_pruned`) instead of dropping them.
    speculate : bool
        Evaluate the children the kept hypotheses will need in the next bytes ahead of time.
    window, lookahead : int
        Tokens of canonical continuation evaluated with a node on / off the canonical path.
    compact_every : int
        Bytes between clean-ups of dead profiles and cache slots.
    """

    def __init__(self, runner: ModelRunner, vocab: Vocabulary, *, width: float, threshold: float,
                 merge: bool, speculate: bool, window: int, lookahead: int, compact_every: int):
        self.runner, self.vocab = runner, vocab
        self.width, self.threshold, self.merge, self.speculate = width, threshold, merge, speculate
        self.window, self.lookahead, self.compact_every = window, lookahead, compact_every

    def run(self, texts: Sequence[TextState]) -> None:
        """Fill ``text.proba`` of every text."""
        self._ensure([t.root for t in texts])
        for t in texts:
            t.hyps = [Hypothesis(t.root, 0)]
        active, spec, i = list(texts), [], 0
        while active:
            requests: list[Node] = []
            compact_now = i % self.compact_every == self.compact_every - 1
            still = [t for t in active if self._advance(t, i, requests, spec, compact_now)]
            if compact_now:
                self.runner.compact(texts)
            if requests:  # a call is needed anyway: add the states the next bytes will want
                # (speculated since the last call; those whose token already ended, or whose
                # parent's profile was freed, can no longer be used)
                spec = [s for s in spec if s.slot is None and s.offset > i
                        and s.parent.profile is not None]
                self._ensure(requests, spec)
                spec = []
            active = still
            i += 1

    def _advance(self, text: TextState, i: int, requests: list[Node], spec: list[Node],
                 compact_now: bool) -> bool:
        """Emit row ``i`` of ``text`` and move its beam to byte ``i + 1``.

        New states that need an evaluation go to ``requests``, speculative ones to ``spec``.
        Returns whether the text has bytes left.
        """
        emit_row(text, i)
        if i == len(text.x):
            return False
        cands = self._candidates(text, i)
        if not cands:
            where = " in the beam" if math.isfinite(self.width) else ""
            raise ValueError(
                f"text {text.text_id}: no token sequence{where}"
                f" covers its first {i + 1 - text.n_prefix} bytes (byte 0x{text.x[i]:02X} at "
                f"offset {i - text.n_prefix}); the LM gives this text probability zero"
            )
        keep = prune_hypotheses([c.log_weight for c in cands], [c.viable for c in cands],
                                self.width, self.threshold)
        if self.merge:
            keep = merge_pruned(cands, keep, self.threshold)
        text.hyps = [Hypothesis(cands[h].node, cands[h].depth) for h in keep]
        stats = self.runner.stats
        stats.max_beam = max(stats.max_beam, len(text.hyps))
        stats.max_new_states = max(stats.max_new_states, sum(h.depth == 0 for h in text.hyps))
        requests += [h.node for h in text.hyps if h.depth == 0 and h.node.profile is None]
        if self.speculate:
            spec += self._speculate(text, log_sum([cands[h].log_weight for h in keep]))
        if compact_now:
            free_profiles(text, i)
        return True

    def _ensure(self, requests: Sequence[Node], speculative: Sequence[Node] = ()) -> None:
        """Evaluate the requested nodes, their likely continuations and the speculative nodes
        (states the beam will probably need in the next bytes) in few forward calls."""
        heads: list[Node] = []
        jobs = [(n, False) for n in requests] + [(n, True) for n in speculative]
        for node, guess in jobs:
            if node.profile is not None or node.slot is not None:
                continue
            # the canonical path in long windows; off-path states with a short canonical
            # continuation (a longer one mostly evaluates states the beam never keeps), and
            # none at all for speculative ones
            length = self.window if node.on_canonical_path else self.lookahead
            if guess and not node.on_canonical_path:
                length = 0
            heads += spine(node, length, self.vocab)
        todo = unevaluated(heads)
        self.runner.evaluate(todo)
        for n in todo:  # weights of nodes evaluated without passing through the beam
            if n.logw is None:
                set_weight(n)

    def _candidates(self, text: TextState, i: int) -> list[Candidate]:
        """Hypotheses at byte ``i + 1``: each one read one byte further, and the new states of
        the tokens that end there."""
        cands = []
        for node, d in text.hyps:
            prof = node.profile
            if d >= prof.plan.depth:
                continue
            d2 = d + 1
            c = float(prof.child_mass[d2].sum())
            if c > 0:
                cands.append(Candidate(node, d2, node.logw + math.log(c),
                                       bool(prof.plan.has_end_after[d2])))
            for t, p in zip(prof.plan.end_ids[d2], prof.end_p[d2], strict=True):
                if p > 0:
                    ch = child(node, int(t), self.vocab)
                    # always from this hypothesis: a speculative evaluation may have set it
                    # before the parent's weight absorbed merged mass
                    ch.logw = node.logw + math.log(p)
                    cands.append(Candidate(ch, 0, ch.logw, True))
        return cands

    def _speculate(self, text: TextState, total: float) -> list[Node]:
        """States that the kept hypotheses will create at their next token ends along the text
        and that are heavy enough to survive pruning then (their weights are already known)."""
        # a child is kept later only if it carries at least `threshold` of the mass then
        bar = total + math.log(self.threshold) if self.threshold > 0 else -math.inf
        found = []
        for node, d in text.hyps:
            prof = node.profile
            if prof is None:  # being evaluated in this very call
                continue
            for e in range(d + 1, prof.plan.depth + 1):
                for t, p in zip(prof.plan.end_ids[e], prof.end_p[e], strict=True):
                    if p > 0 and node.logw + math.log(p) >= bar:
                        found.append((node.logw + math.log(p), node, int(t)))
        found.sort(key=lambda f: -f[0])
        if math.isfinite(self.width):
            found = found[: int(self.width)]
        out = []
        for lw, par, t in found:
            ch = child(par, t, self.vocab)
            if ch.slot is None:
                if ch.logw is None:
                    ch.logw = lw
                out.append(ch)
        return out


def merge_pruned(cands: list[Candidate], keep: list[int], threshold: float) -> list[int]:
    """Keep what costs no LM call and merge the pruned new states instead of dropping them.

    A continuation ``(node, d >= 1)`` of an evaluated state needs no LM call (the state's
    profile covers its whole path), so all of them stay. The new states (``d == 0``) of one
    step all end at the same byte of the same text: they differ only in how they tokenized
    the bytes before it. The pruned ones are merged into the heaviest kept one (whose
    ``logw`` grows by their weight), whose next-token distribution then stands in for theirs.
    If none was kept, the heaviest becomes the representative when the group together is above
    the threshold.
    """
    kept = set(keep)
    out = list(keep) + [
        h for h, c in enumerate(cands) if h not in kept and c.depth > 0 and c.log_weight > -math.inf
    ]
    new = [h for h, c in enumerate(cands) if c.depth == 0 and c.log_weight > -math.inf]
    pruned = [h for h in new if h not in kept]
    if not pruned:
        return out
    kept_new = [h for h in new if h in kept]
    if kept_new:
        rep = max(kept_new, key=lambda h: cands[h].log_weight)
    else:
        rep = max(new, key=lambda h: cands[h].log_weight)
        group = log_sum([cands[h].log_weight for h in new])
        total = log_sum([c.log_weight for c in cands])
        if threshold > 0 and group < total + math.log(threshold):
            return out
        out.append(rep)
        pruned = [h for h in pruned if h != rep]
        if not pruned:
            return out
    node = cands[rep].node
    node.logw = float(np.logaddexp(node.logw, log_sum([cands[h].log_weight for h in pruned])))
    return out


def set_weight(node: Node) -> None:
    """``node.logw`` from its parent's weight and profile (the parent's first, if needed)."""
    par = node.parent
    if par.logw is None:
        set_weight(par)
    level = node.offset - par.offset
    ids, ps = par.profile.plan.end_ids[level], par.profile.end_p[level]
    k = int(np.flatnonzero(ids == node.token)[0])
    node.logw = par.logw + (math.log(ps[k]) if ps[k] > 0 else -math.inf)


def emit_row(text: TextState, i: int) -> None:
    """Row ``i`` (counted in the scored bytes, prefix included) from the current hypotheses."""
    if i < text.n_prefix:
        return
    lws, masses, eos = [], [], []
    for node, d in text.hyps:
        lws.append(node.logw)
        masses.append(node.profile.child_mass[d])
        eos.append(node.profile.p_eos if d == 0 else 0.0)
    text.proba[i - text.n_prefix] = beam_row(lws, masses, eos)


def free_profiles(text: TextState, i: int) -> None:
    """Drop profiles that no hypothesis can use any more (their path is behind byte ``i``)."""
    keep = []
    for n in text.alive:
        if n.offset + n.profile.plan.depth < i:
            n.profile = None
        else:
            keep.append(n)
    text.alive = keep
    for j in [j for j in text.plans if j + 512 < i]:
        del text.plans[j]
