"""DeepSLP glue: train the heads of a prototype set, and evaluate them at queries.

The maths of a head (training, forward pass) is in :mod:`~sklearn_lts.prototypes._deep`;
here a :class:`~sklearn_lts.prototypes._build.PrototypeSet` gets one pair of heads per line
that has LP soft labels, and prediction mixes the heads' labels as the SLaPkNN rule does. All
coordinates are frame coordinates (:mod:`~sklearn_lts.prototypes._frame`), heads included:
a head sees ``(x - centre) / 2**exponent``, so training does not depend on the data's offset
or scale.
"""

from __future__ import annotations

import numpy as np

from sklearn_lts.prototypes._build import PrototypeSet
from sklearn_lts.prototypes._deep import head_proba, line_mix_weights, train_line_heads

__all__ = ["fit_line_heads", "line_heads_proba", "neural_labels"]

_SOFT_LABEL_STATUSES = ("lp", "lp-no-midpoints")


def fit_line_heads(
    ps: PrototypeSet,
    Z: np.ndarray,
    y: np.ndarray,
    *,
    hidden: int | None,
    head_init: str,
    learning_rate: float,
    n_epochs: int,
    weight_decay: float,
    seed: int,
    spread: float = 1.0,
) -> tuple[list, np.ndarray]:
    """Train two heads per soft-label line; lines without soft labels keep theirs.

    Line ``l`` is trained with seed ``seed + l``, so the result depends on ``seed`` only.
    Heads are trained on ``Z / spread`` (see :class:`~sklearn_lts.prototypes._frame.Frame`)
    and returned reading ``Z``: the factor is folded into their first layer.

    Returns
    -------
    heads : list
        Per line, ``None`` or the pair of trained heads (lists of ``(W, b)``).
    labels : ndarray of shape (n_prototypes, n_classes)
        Soft labels with each head's label at its own prototype.
    """
    labels = ps.labels.copy()
    heads = []
    for li, (entry, cols) in enumerate(zip(ps.lines, ps.columns)):
        if entry["status"] not in _SOFT_LABEL_STATUSES:
            heads.append(None)
            continue
        lookup = np.full(labels.shape[1], -1)
        lookup[cols] = np.arange(len(cols))
        mask = lookup[y] >= 0
        p1, p2 = ps.points[entry["prototypes"]]
        w1, _ = line_mix_weights(np.linalg.norm(Z[mask] - p1, axis=1),
                                 np.linalg.norm(Z[mask] - p2, axis=1))
        init = None
        if head_init == "lp":
            init = tuple(labels[p][cols] for p in entry["prototypes"])
        h1, h2, _ = train_line_heads(
            Z[mask] / spread, lookup[y[mask]], len(cols), w1, hidden=hidden,
            learning_rate=learning_rate, n_epochs=n_epochs, weight_decay=weight_decay,
            seed=seed + li, init_labels=init,
        )
        for head in (h1, h2):
            head[0] = (head[0][0] / spread, head[0][1])
        heads.append((h1, h2))
        for proto, head in zip(entry["prototypes"], (h1, h2)):
            labels[proto] = 0.0
            labels[proto, cols] = head_proba(head, ps.points[proto][None])[0]
    return heads, labels


def line_heads_proba(
    pair: tuple,
    cols: np.ndarray,
    Z: np.ndarray,
    d1: np.ndarray,
    d2: np.ndarray,
    n_classes: int,
    n_neighbors: int,
) -> np.ndarray:
    """DeepSLP rule on one line: distance-weighted mix of its two heads' soft labels.

    ``d1, d2`` are the distances to the line's two prototypes; with ``n_neighbors=1`` only
    the nearer prototype's head votes.
    """
    w1, w2 = line_mix_weights(d1, d2)
    if n_neighbors == 1:
        w1 = (d1 <= d2).astype(np.float64)
        w2 = 1.0 - w1
    out = np.zeros((len(Z), n_classes))
    out[:, cols] = w1[:, None] * head_proba(pair[0], Z) + w2[:, None] * head_proba(pair[1], Z)
    return out


def neural_labels(ps: PrototypeSet, heads: list, Z: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Soft labels of the selected prototypes ``idx``, each evaluated at its query.

    Parameters
    ----------
    idx : ndarray of shape (n_samples, k)
        Prototypes voting for each query (global routing).

    Returns
    -------
    Y : ndarray of shape (n_samples, k, n_classes)
    """
    Y = ps.labels[idx].copy()
    for pair, entry, cols in zip(heads, ps.lines, ps.columns):
        if pair is None:
            continue
        for proto, head in zip(entry["prototypes"], pair):
            hit = idx == proto
            rows = hit.any(axis=1)
            if rows.any():
                lab = np.zeros((int(rows.sum()), ps.labels.shape[1]))
                lab[:, cols] = head_proba(head, Z[rows])
                Y[hit] = lab[np.nonzero(hit[rows])[0]]
    return Y
