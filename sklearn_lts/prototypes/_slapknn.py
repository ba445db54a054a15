"""The soft-label inverse-distance kNN rule (SLaPkNN), vectorised and zero-distance safe.

Sucholutsky & Schonlau (AAAI 2021) score a query ``x`` against prototypes ``p_i`` carrying
soft labels ``y_i`` as ``sum_{i in kNN(x)} y_i / d(x, p_i)``. We return the scores divided by
their sum, so that each row is a probability distribution; the argmax is unchanged.
"""

from __future__ import annotations

import numpy as np

from sklearn_lts.prototypes._distances import distances_from_products
from sklearn_lts.prototypes._frame import fit_frame, to_frame

__all__ = [
    "euclidean_distances_fast",
    "inverse_distance_weights",
    "slapknn_proba",
    "soft_vote",
]


def euclidean_distances_fast(X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``X`` and ``P`` through one matrix product.

    Both are first mapped to the frame of ``P`` (centred on its mean, scaled by a power of
    two, see :mod:`~sklearn_lts.prototypes._frame`), so a large common offset does not cancel
    the distances and no magnitude overflows or underflows; the product is accumulated in
    float64 and pairs too close for it are recomputed exactly
    (:func:`~sklearn_lts.prototypes._distances.distances_from_products`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Any finite float32 or float64 values.
    P : ndarray of shape (n_points, n_features)

    Returns
    -------
    D : ndarray of shape (n_samples, n_points)
        Float64 distances, relative error below ``2**-27``; an exact match gives exactly 0.
        A query whose squared distance from the points' centre exceeds the float64 range
        (``1e154`` times their spread) gets ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> euclidean_distances_fast(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[5., 0.]])
    """
    P = np.asarray(P, dtype=np.float64)
    frame = fit_frame(P)
    Q = to_frame(P, frame).Z
    Z, zz = to_frame(X, frame, clamp=False)
    with np.errstate(over="ignore", invalid="ignore"):
        D = np.ldexp(distances_from_products(Z, Q, Z @ Q.T, zz), frame.exponent)
    D[~np.isfinite(zz)] = np.inf
    return D


def inverse_distance_weights(D: np.ndarray) -> np.ndarray:
    """Row-normalised inverse-distance weights ``(1/d_i) / sum_j (1/d_j)``, safe at ``d = 0``.

    A distance of exactly zero is the limit of the rule: the prototypes at distance zero share
    all the weight equally and the others get none. No division by zero happens: the weights
    are computed as ``d_min / d_i``, which lies in ``[0, 1]``.

    Parameters
    ----------
    D : ndarray of shape (n_samples, k)
        Non-negative distances to the prototypes taking part in the vote; ``inf`` marks a
        prototype that does not take part.

    Returns
    -------
    W : ndarray of shape (n_samples, k)
        Rows sum to 1.

    Examples
    --------
    >>> inverse_distance_weights(np.array([[1.0, 3.0], [0.0, 2.0]]))
    array([[0.75, 0.25],
           [1.  , 0.  ]])
    """
    D = np.asarray(D, dtype=np.float64)
    d_min = D.min(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        W = np.where(d_min > 0, d_min / D, (D == 0).astype(np.float64))
    W = np.nan_to_num(W, nan=0.0, posinf=0.0)
    return W / W.sum(axis=1, keepdims=True)


def slapknn_proba(
    D: np.ndarray,
    soft_labels: np.ndarray,
    n_neighbors: int | None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities of the SLaPkNN rule from a distance matrix.

    Parameters
    ----------
    D : ndarray of shape (n_samples, n_candidates)
        Distances from each query to its candidate prototypes; ``inf`` excludes a candidate
        for that query (used to restrict a query to the prototypes of one line).
    soft_labels : ndarray of shape (n_prototypes, n_classes)
        One distribution over classes per prototype (rows sum to 1).
    n_neighbors : int or None
        Number of nearest candidates that vote; ``None`` means all of them.
    ids : ndarray of shape (n_samples, n_candidates), optional
        Row of ``soft_labels`` behind each column of ``D``; by default column ``j`` is
        prototype ``j`` (then ``n_candidates == n_prototypes``).

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        ``sum_i w_i y_i`` over the ``k`` nearest candidates with ``w`` from
        :func:`inverse_distance_weights`; rows sum to 1.

    Examples
    --------
    Two prototypes, each a 50/50 mix of classes with one class favoured; a query a quarter of
    the way from the first prototype:

    >>> D = np.array([[1.0, 3.0]])
    >>> Y = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> slapknn_proba(D, Y, n_neighbors=2)
    array([[0.7, 0.3]])
    >>> slapknn_proba(np.array([[3.0, 1.0]]), Y, n_neighbors=1, ids=np.array([[0, 1]]))
    array([[0.1, 0.9]])
    """
    D = np.asarray(D)  # neighbours are selected in the input dtype, weights in float64
    Y = np.asarray(soft_labels, dtype=np.float64)
    width = D.shape[1]
    k = width if n_neighbors is None else min(int(n_neighbors), width)
    if k == width and ids is None:  # every prototype votes: no gather, a broadcast view
        return soft_vote(D.astype(np.float64), np.broadcast_to(Y, (D.shape[0], *Y.shape)))
    if ids is None:
        ids = np.broadcast_to(np.arange(width), D.shape)
    if k < width:
        part = np.argpartition(D, k - 1, axis=1)[:, :k]
        D = np.take_along_axis(D, part, axis=1)
        ids = np.take_along_axis(ids, part, axis=1)
    return soft_vote(D.astype(np.float64), Y[ids])


def soft_vote(D: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Inverse-distance vote of given neighbours: ``sum_i w_i y_i`` with normalised weights.

    Parameters
    ----------
    D : ndarray of shape (n_samples, k)
        Distances to each query's voting prototypes (``inf``: does not vote).
    Y : ndarray of shape (n_samples, k, n_classes)
        Their soft labels.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)

    Examples
    --------
    >>> soft_vote(np.array([[1.0, 1.0]]), np.array([[[1.0, 0.0], [0.0, 1.0]]]))
    array([[0.5, 0.5]])
    """
    W = inverse_distance_weights(D)
    return np.einsum("nk,nkc->nc", W, Y)
