"""BOS-started token windows: the one way the student sees text (training, scoring, transform).

A text of ``L`` student tokens is cut into windows of at most ``max_length`` tokens. Two views
of a window share this module:

* **predictive** (training and scoring): window ``[s, e)`` is fed as
  ``[BOS, t_s, ..., t_{e-2}]`` and position ``p`` predicts ``t_{s+p}``, so every token of the
  text is predicted exactly once, the first one from BOS alone (:func:`pad_windows`);
* **context** (hidden states and byte-head rows): ``[BOS, t_s, ..., t_{e-1}]``, the state at
  every token of the window plus BOS (:func:`context_windows`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._constants import IGNORE_INDEX

__all__ = ["Window", "WindowBatch", "make_windows", "pad_windows", "context_windows"]


class Window(NamedTuple):
    """Tokens ``[start, end)`` of document ``doc``."""

    doc: int
    start: int
    end: int


class WindowBatch(NamedTuple):
    """Right-padded predictive windows (int64 arrays of shape ``(n_windows, longest)``)."""

    input_ids: np.ndarray  # [BOS, t_s, ..., t_{e-2}], then padding
    attention_mask: np.ndarray  # 1 on real positions
    labels: np.ndarray  # [t_s, ..., t_{e-1}], then IGNORE_INDEX


def make_windows(n_tokens: Sequence[int], max_length: int) -> list[Window]:
    """Windows of at most ``max_length`` tokens covering each document (none for an empty one).

    Parameters
    ----------
    n_tokens : sequence of int
        Number of tokens of each document.
    max_length : int

    Returns
    -------
    list of Window

    Examples
    --------
    >>> make_windows([5, 0, 2], 2)
    [Window(doc=0, start=0, end=2), Window(doc=0, start=2, end=4), Window(doc=0, start=4, end=5), \
Window(doc=2, start=0, end=2)]
    """
    out = []
    for d, n in enumerate(n_tokens):
        out.extend(Window(d, s, min(s + max_length, n)) for s in range(0, n, max_length))
    return out


def pad_windows(tokens: Sequence[np.ndarray], bos_id: int, pad_id: int) -> WindowBatch:
    """Predictive inputs and labels of a batch of windows, given each window's tokens.

    Examples
    --------
    >>> b = pad_windows([np.array([7, 8, 9]), np.array([5])], bos_id=1, pad_id=0)
    >>> b.input_ids.tolist(), b.labels.tolist(), b.attention_mask.tolist()
    ([[1, 7, 8], [1, 0, 0]], [[7, 8, 9], [5, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """
    t_max = max(len(t) for t in tokens)
    ids = np.full((len(tokens), t_max), pad_id, dtype=np.int64)
    labels = np.full((len(tokens), t_max), IGNORE_INDEX, dtype=np.int64)
    attn = np.zeros((len(tokens), t_max), dtype=np.int64)
    for i, toks in enumerate(tokens):
        n = len(toks)
        ids[i, 0] = bos_id
        ids[i, 1:n] = toks[:-1]
        labels[i, :n] = toks
        attn[i, :n] = 1
    return WindowBatch(ids, attn, labels)


def context_windows(ids: np.ndarray, max_length: int, bos_id: int) -> Iterator[tuple[int, list]]:
    """``(start, [BOS] + ids[start:start + max_length - 1])`` covering ``ids``.

    Every window holds at most ``max_length`` positions; an empty text gives one window holding
    BOS alone, so every text has a state.

    Examples
    --------
    >>> list(context_windows(np.array([7, 8, 9]), 3, bos_id=1))
    [(0, [1, 7, 8]), (2, [1, 9])]
    >>> list(context_windows(np.array([], dtype=int), 3, bos_id=1))
    [(0, [1])]
    """
    step = max(max_length - 1, 1)
    for s in range(0, max(len(ids), 1), step):
        yield s, [bos_id] + [int(t) for t in ids[s : s + step]]
