"""Euclidean distances through one matrix product, exact where the product cannot be trusted.

``|z - p|^2 = |z|^2 + |p|^2 - 2 z.p`` costs one matrix product for a whole block of queries,
but its rounding error is absolute: relative to ``|z|^2 + |p|^2``, not to the distance. Near
zero it can exceed the distance itself, so a query sitting on a prototype would not be
recognised as such. :func:`near_zero` says which squared distances are too small to trust,
and :func:`distances_from_products` recomputes exactly those from the coordinates. Inputs are
frame coordinates (:mod:`~sklearn_lts.prototypes._frame`): centred and of order one, so the
sums neither overflow nor cancel a large common offset.
"""

from __future__ import annotations

import numpy as np

__all__ = ["distances_from_products", "near_zero", "row_norms_scaled"]

#: Unit roundoff of float64, the dtype every distance is accumulated in.
_U = 2.0**-53
#: Squared distances below this many times the expansion's error bound are recomputed.
_TRUST = 2.0**26


def near_zero(sq: np.ndarray, norms_sq: np.ndarray, n_features: int) -> np.ndarray:
    """Which squared distances from the expansion are too small to trust.

    The expansion ``|z|^2 + |p|^2 - 2 z.p``, accumulated in float64, is off by at most about
    ``(n_features + 2) * u * (|z|^2 + |p|^2)`` (``u = 2**-53``; the dot product of length
    ``n_features`` dominates). A squared distance ``sq`` with absolute error ``e`` gives the
    distance a relative error of about ``e / (2 sq)``. Flagging every ``sq`` below ``2**26``
    times the bound therefore leaves each distance kept from the expansion with a relative
    error under ``2**-27``, below float32 resolution (``2**-24``), so even float32 queries lose
    nothing to it; inverse-distance weights ``d_min / d_i`` inherit that accuracy. In 384
    dimensions this flags distances under about ``1.7e-3 * sqrt(|z|^2 + |p|^2)``: queries
    almost on a prototype, rare enough that recomputing them costs nothing measurable. The
    threshold is relative (no absolute term), so it does not depend on the data's scale.

    Parameters
    ----------
    sq : ndarray
        Squared distances computed by the expansion (may be slightly negative).
    norms_sq : ndarray, broadcastable to ``sq``
        ``|z|^2 + |p|^2`` for each pair.
    n_features : int
        Length of the dot products.

    Returns
    -------
    mask : ndarray of bool, shape of ``sq``

    Examples
    --------
    >>> near_zero(np.array([1e-12, 0.5]), np.array([2.0, 2.0]), n_features=3)
    array([ True, False])
    """
    return sq <= (_TRUST * (n_features + 2) * _U) * norms_sq


def row_norms_scaled(V: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, without overflow or underflow in the squares.

    Examples
    --------
    >>> row_norms_scaled(np.array([[3e-200, 4e-200], [0.0, 0.0]]))
    array([5.e-200, 0.e+000])
    """
    top = np.max(np.abs(V), axis=1, initial=0.0)
    safe = np.where(top > 0, top, 1.0)
    W = V / safe[:, None]
    return top * np.sqrt(np.einsum("ij,ij->i", W, W))


def distances_from_products(
    Z: np.ndarray, P: np.ndarray, G: np.ndarray, zz: np.ndarray | None = None
) -> np.ndarray:
    """Distances ``|Z_i - P_j|`` from the product ``G = Z @ P.T``, exact near zero.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Queries in frame coordinates (float64).
    P : ndarray of shape (n_points, n_features)
        Points in frame coordinates.
    G : ndarray of shape (n_samples, n_points)
        ``Z @ P.T``.
    zz : ndarray of shape (n_samples,), optional
        Squared norms of the rows of ``Z``, when the caller has them.

    Returns
    -------
    D : ndarray of shape (n_samples, n_points)
        Float64 distances; every pair flagged by :func:`near_zero` is recomputed from the
        coordinates, so a query equal to a point gets exactly 0.

    Examples
    --------
    >>> Z = np.array([[0.1, 0.2], [0.3, 0.4]])
    >>> distances_from_products(Z, Z, Z @ Z.T)
    array([[0.        , 0.28284271],
           [0.28284271, 0.        ]])
    """
    zz = np.einsum("ij,ij->i", Z, Z) if zz is None else zz
    pp = np.einsum("ij,ij->i", P, P)
    sq = G * -2.0
    sq += zz[:, None]
    sq += pp[None, :]
    # Rows whose smallest sq passes against the largest |p|^2 have no flagged pair: only the
    # few others need the pairwise test.
    rows = np.flatnonzero(near_zero(sq.min(axis=1), zz + pp.max(), Z.shape[1]))
    close = near_zero(sq[rows], zz[rows, None] + pp[None, :], Z.shape[1])
    np.maximum(sq, 0.0, out=sq)
    D = np.sqrt(sq, out=sq)
    if close.any():
        r, cols = np.nonzero(close)
        r = rows[r]
        D[r, cols] = row_norms_scaled(Z[r] - P[cols])
    return D
