"""Class probabilities of a block of queries: routing, distances, the SLaPkNN vote.

One matrix product per block serves the prototype distances and the segment distances (the
segment end points are stacked under the prototypes). Queries arrive in frame coordinates
with their shrink factors (:func:`~sklearn_lts.prototypes._frame.to_frame`), so every
distance of a query is divided by the same power of two and the rule is unchanged.
"""

from __future__ import annotations

import numpy as np

from sklearn_lts.prototypes._build import PrototypeSet
from sklearn_lts.prototypes._distances import distances_from_products
from sklearn_lts.prototypes._lines import point_segment_distances
from sklearn_lts.prototypes._neural import line_heads_proba, neural_labels
from sklearn_lts.prototypes._slapknn import slapknn_proba, soft_vote

__all__ = ["block_proba"]


def block_proba(
    ps: PrototypeSet,
    heads: list | None,
    Z: np.ndarray,
    f: np.ndarray,
    n_neighbors: int,
    routing: str,
) -> np.ndarray:
    """Class probabilities of queries ``Z`` (frame coordinates, shrink factors ``f``).

    Parameters
    ----------
    ps : PrototypeSet
    heads : list or None
        DeepSLP heads per line (``None``: fixed soft labels).
    Z : ndarray of shape (n_samples, n_features)
    f : ndarray of shape (n_samples,)
    n_neighbors : int
    routing : {"line", "global"}

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        Rows sum to 1.
    """
    if routing == "global" or len(ps.table) == 1:
        return _global_proba(ps, heads, Z, f, n_neighbors, routing)
    return _routed_proba(ps, heads, Z, f, n_neighbors)


def _global_proba(ps, heads, Z, f, n_neighbors, routing) -> np.ndarray:
    """SLaPkNN over all prototypes (also line routing when there is a single line)."""
    M = len(ps.points)
    D = distances_from_products(Z, ps.points, Z @ ps.points.T, f)
    if heads is None:
        return slapknn_proba(D, ps.labels, n_neighbors)
    if len(heads) == 1 and heads[0] is not None and routing == "line":
        return line_heads_proba(heads[0], ps.columns[0], Z, f, D[:, 0], D[:, 1],
                                ps.labels.shape[1], n_neighbors)
    k = min(n_neighbors, M)
    if k < M:
        idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(M), D.shape)
    return soft_vote(np.take_along_axis(D, idx, axis=1), neural_labels(ps, heads, Z, f, idx))


def _routed_proba(ps, heads, Z, f, n_neighbors) -> np.ndarray:
    """HSLaPkNN: each query votes with the prototypes of its nearest line segment only."""
    M, L = len(ps.points), len(ps.table)
    G = Z @ np.vstack([ps.points, ps.starts, ps.ends]).T
    D = distances_from_products(Z, ps.points, G[:, :M], f)
    seg = point_segment_distances(
        Z, ps.starts, ps.ends, XS=G[:, M : M + L], XE=G[:, M + L :], row_scale=f
    )
    line = np.argmin(seg, axis=1)
    table = ps.table[line]  # (n, max prototypes per line); M pads
    valid = table < M
    safe = np.where(valid, table, 0)
    D = np.where(valid, np.take_along_axis(D, safe, axis=1), np.inf)
    if heads is None:
        return slapknn_proba(D, ps.labels, n_neighbors, ids=safe)
    out = np.empty((len(Z), ps.labels.shape[1]))
    plain = np.ones(len(Z), dtype=bool)
    for li, pair in enumerate(heads):
        rows = line == li
        if pair is None or not rows.any():
            continue
        plain[rows] = False
        out[rows] = line_heads_proba(pair, ps.columns[li], Z[rows], f[rows], D[rows, 0],
                                     D[rows, 1], ps.labels.shape[1], n_neighbors)
    if plain.any():
        out[plain] = slapknn_proba(D[plain], ps.labels, n_neighbors, ids=safe[plain])
    return out

