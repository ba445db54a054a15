"""Pure beam math: trie-node masses along a path, which hypotheses a beam keeps, output rows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sklearn_lts.distill._trie import PathPlan

__all__ = ["path_profile", "prune_hypotheses", "beam_row", "extend_runs", "log_sum"]


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
        cut = log_sum(lw) + math.log(threshold)
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


def log_sum(log_weights: Sequence[float]) -> float:
    """``log(sum(exp(log_weights)))``, left to right (as :func:`numpy.logaddexp.reduce`).

    Examples
    --------
    >>> round(log_sum([math.log(1.0), math.log(3.0)]), 12) == round(math.log(4.0), 12)
    True
    """
    return float(np.logaddexp.reduce(log_weights))


def extend_runs(parent_runs: tuple, slot: int) -> tuple:
    """Ancestor slots of a node (as ``(start, stop)`` runs of its cache row) plus its own slot.

    Examples
    --------
    >>> extend_runs(((0, 3),), 3), extend_runs(((0, 3),), 7)
    (((0, 4),), ((0, 3), (7, 8)))
    """
    if parent_runs and parent_runs[-1][1] == slot:
        return parent_runs[:-1] + ((parent_runs[-1][0], slot + 1),)
    return parent_runs + ((slot, slot + 1),)
