"""The soft-label inverse-distance kNN rule (SLaPkNN), vectorised and zero-distance safe.

Sucholutsky & Schonlau (AAAI 2021) score a query ``x`` against prototypes ``p_i`` carrying
soft labels ``y_i`` as ``sum_{i in kNN(x)} y_i / d(x, p_i)``. We return the scores divided by
their sum, so that each row is a probability distribution; the argmax is unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "euclidean_distances_fast",
    "inverse_distance_weights",
    "slapknn_proba",
    "soft_vote",
]


def euclidean_distances_fast(
    X: np.ndarray, P: np.ndarray, XP: np.ndarray | None = None
) -> np.ndarray:
    """Euclidean distances between the rows of ``X`` and ``P`` through one matrix product.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    P : ndarray of shape (n_points, n_features)
    XP : ndarray of shape (n_samples, n_points), optional
        ``X @ P.T`` when the caller already has it (it shares one product between several
        uses). Computed in the dtype of ``X`` (float32 stays float32) otherwise.

    Returns
    -------
    D : ndarray of shape (n_samples, n_points)
        Non-negative distances, in the dtype of ``X`` (float32 or float64). Rows of ``X``
        that are equal to a row of ``P`` up to rounding get their distance recomputed exactly,
        so an exact match gives exactly 0.

    Examples
    --------
    >>> import numpy as np
    >>> euclidean_distances_fast(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[5., 0.]])
    """
    X = np.asarray(X)
    P = np.asarray(P, dtype=X.dtype)
    if XP is None:
        XP = X @ P.T
    # Computed in the input's float dtype: float32 halves the memory traffic, and its
    # relative error (~1e-7 of the squared norms) does not change which prototypes are near.
    dt = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    pp = np.einsum("ij,ij->i", P, P).astype(dt)
    sq = np.einsum("ij,ij->i", X, X).astype(dt)[:, None] + pp[None, :] - 2 * XP.astype(dt)
    np.maximum(sq, 0, out=sq)
    D = np.sqrt(sq, out=sq)
    # The expansion loses precision near 0; recompute near-matches exactly so that a query
    # sitting on a prototype is recognised as such (it then takes that prototype's label).
    tol = 1e-3 * np.sqrt(1.0 + pp) if X.dtype == np.float32 else 1e-6 * np.sqrt(1.0 + pp)
    close = D <= tol[None, :]
    if close.any():
        rows, cols = np.nonzero(close)
        diff = X[rows].astype(np.float64) - P[cols].astype(np.float64)
        D[rows, cols] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
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


def slapknn_proba(D: np.ndarray, soft_labels: np.ndarray, n_neighbors: int | None) -> np.ndarray:
    """Class probabilities of the SLaPkNN rule from a distance matrix.

    Parameters
    ----------
    D : ndarray of shape (n_samples, n_prototypes)
        Distances from each query to each prototype; ``inf`` excludes a prototype for that
        query (used to restrict a query to the prototypes of one line).
    soft_labels : ndarray of shape (n_prototypes, n_classes)
        One distribution over classes per prototype (rows sum to 1).
    n_neighbors : int or None
        Number of nearest prototypes that vote; ``None`` means all of them.

    Returns
    -------
    proba : ndarray of shape (n_samples, n_classes)
        ``sum_i w_i y_i`` over the ``k`` nearest prototypes with ``w`` from
        :func:`inverse_distance_weights`; rows sum to 1.

    Examples
    --------
    Two prototypes, each a 50/50 mix of classes with one class favoured; a query a quarter of
    the way from the first prototype:

    >>> D = np.array([[1.0, 3.0]])
    >>> Y = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> slapknn_proba(D, Y, n_neighbors=2)
    array([[0.7, 0.3]])
    """
    D = np.asarray(D)  # neighbours are selected in the input dtype, weights in float64
    Y = np.asarray(soft_labels, dtype=np.float64)
    n_protos = D.shape[1]
    k = n_protos if n_neighbors is None else min(int(n_neighbors), n_protos)
    if k < n_protos:
        idx = np.argpartition(D, k - 1, axis=1)[:, :k]
        D = np.take_along_axis(D, idx, axis=1)
        return soft_vote(D.astype(np.float64), Y[idx])
    return soft_vote(D.astype(np.float64), np.broadcast_to(Y, (D.shape[0], *Y.shape)))


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
