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
from sklearn_lts.prototypes._frame import FramedRows
from sklearn_lts.prototypes._lines import point_segment_distances
from sklearn_lts.prototypes._neural import line_heads_proba, neural_labels
from sklearn_lts.prototypes._slapknn import slapknn_proba, soft_vote

__all__ = ["block_proba"]


def block_proba(
    ps: PrototypeSet, heads: list | None, rows: FramedRows, n_neighbors: int, routing: str
) -> np.ndarray:
    """Class probabilities of a block of queries in frame coordinates.

    Parameters
    ----------
    ps : PrototypeSet
        With its ``route`` set (line routing).
    heads : list or None
        DeepSLP heads per line (``None``: fixed soft labels).
    rows : FramedRows
        The queries (see :func:`~sklearn_lts.prototypes._frame.to_frame`).
    n_neighbors : int
    routing : {"line", "global"}

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        Rows sum to 1.
    """
    if routing == "global" or len(ps.table) == 1:
        return _global_proba(ps, heads, rows, n_neighbors, routing)
    return _routed_proba(ps, heads, rows, n_neighbors)


def _global_proba(ps, heads, rows, n_neighbors, routing) -> np.ndarray:
    """SLaPkNN over all prototypes (also line routing when there is a single line)."""
    Z = rows.Z
    M = len(ps.points)
    D = distances_from_products(Z, ps.points, Z @ ps.points.T, rows.zz)
    if heads is None:
        return slapknn_proba(D, ps.labels, n_neighbors)
    if len(heads) == 1 and heads[0] is not None and routing == "line":
        return line_heads_proba(heads[0], ps.columns[0], Z, D[:, 0], D[:, 1],
                                ps.labels.shape[1], n_neighbors)
    k = min(n_neighbors, M)
    if k < M:
        idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(M), D.shape)
    return soft_vote(np.take_along_axis(D, idx, axis=1), neural_labels(ps, heads, Z, idx))


def _routed_proba(ps, heads, rows, n_neighbors) -> np.ndarray:
    """HSLaPkNN: each query votes with the prototypes of its nearest line segment only."""
    Z, route = rows.Z, ps.route
    M = len(ps.points)
    G = Z @ route.points.T
    D = distances_from_products(Z, ps.points, G[:, :M], rows.zz)
    seg = point_segment_distances(
        Z, ps.starts, ps.ends, XS=G[:, route.start_col], XE=G[:, route.end_col], xx=rows.zz
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
        on_line = line == li
        if pair is None or not on_line.any():
            continue
        plain[on_line] = False
        out[on_line] = line_heads_proba(
            pair, ps.columns[li], Z[on_line], D[on_line, 0], D[on_line, 1],
            ps.labels.shape[1], n_neighbors,
        )
    if plain.any():
        out[plain] = slapknn_proba(D[plain], ps.labels, n_neighbors, ids=safe[plain])
    return out
