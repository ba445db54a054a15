"""The data frame: centred coordinates of order one, so that squared distances never overflow.

Every distance the classifier uses is a ratio or an argmin (inverse-distance weights
``d_min / d_i``, the line coordinate ``d1 / (d1 + d2)``, the nearest segment), so the rule does
not change when the space is shifted or scaled. The classifier therefore works in the
coordinates ``z = (x - centre) / 2**exponent`` of its training data: centring removes a
common offset before anything is squared (a float32 offset of 3,000 in 384 dimensions
otherwise cancels every digit of the distances), and a power-of-two scale (exact in binary
floating point) keeps data of any magnitude, ``1e-200`` or ``1e154``, away from underflow and
overflow.

A query far outside the training data (``|x - centre|`` beyond ``2**exponent``) gets a
coarser power-of-two scale of its own: ``to_frame`` then returns ``Z = (x - centre) / rho``
with ``|Z| < 1`` and the factor ``f = 2**exponent / rho <= 1`` by which the prototypes must be
shrunk to match. Distances of one query are all divided by the same ``rho``, so their ratios,
hence the rule, are unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Frame", "fit_frame", "from_frame", "normalize_rows", "on_unit_sphere", "to_frame"]


class Frame(NamedTuple):
    """Affine map ``z = (x - centre) / 2**exponent`` onto the training data's frame.

    Attributes
    ----------
    centre : ndarray of shape (n_features,)
        Mean of the training data.
    exponent : int
        ``2**exponent`` is above the largest ``|x - centre|`` coordinate of the training data
        (and at most twice it), so training data lands in ``(-1, 1)``.
    spread : float
        The largest ``|z|`` coordinate of the training data, in ``[0.5, 1)`` (1 when all rows
        are equal). ``z / spread`` is the same for any scaling of the data, not only for
        powers of two: DeepSLP heads read it, so their training is scale-invariant too.
    """

    centre: np.ndarray
    exponent: int
    spread: float = 1.0


def _binary_exponent(value: float) -> int:
    """The ``e`` with ``2**(e - 1) <= value < 2**e`` (0 for 0): frexp's exponent."""
    return int(np.frexp(value)[1])


def fit_frame(X: np.ndarray) -> Frame:
    """Centre and power-of-two scale of ``X``, computed without overflow for any finite ``X``.

    Examples
    --------
    >>> fit_frame(np.array([[1.0, 10.0], [3.0, 10.0]]))
    Frame(centre=array([ 2., 10.]), exponent=1, spread=0.5)
    """
    X = np.asarray(X, dtype=np.float64)
    # The mean of values near the float64 limit overflows when summed: sum in units of
    # 2**top, a power of two no smaller than the largest value.
    top = _binary_exponent(np.max(np.abs(X), initial=0.0))
    centre = np.ldexp(np.mean(np.ldexp(X, -top), axis=0), top)
    half = np.max(np.abs(np.ldexp(X, -1) - np.ldexp(centre, -1)), initial=0.0)
    if half == 0.0:  # all rows equal: any scale will do, take the data's own
        return Frame(centre, _binary_exponent(np.max(np.abs(centre), initial=0.0)))
    exponent = _binary_exponent(half) + 1
    return Frame(centre, exponent, float(np.ldexp(half, 1 - exponent)))


def to_frame(X: np.ndarray, frame: Frame, per_row: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Frame coordinates of the rows of ``X``, each row with the scale it needs.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Any finite values, float32 or float64; computed in float64.
    frame : Frame
    per_row : bool, default=True
        Give a row that lies outside the frame's box a coarser power-of-two scale of its own,
        so that ``|Z| < 1`` always. ``False`` is for points known to lie in the training data's
        range (centroids, prototypes): ``Z = (x - centre) / 2**exponent`` exactly, ``f = 1``.

    Returns
    -------
    Z : ndarray of shape (n_samples, n_features)
        ``(x - centre) / rho`` with ``rho = 2**exponent / f``.
    f : ndarray of shape (n_samples,)
        Shrink factor of each row, a power of two in ``(0, 1]``: the distance from ``x`` to a
        point ``p`` is ``rho * |Z - f * to_frame(p)|``.

    Examples
    --------
    >>> frame = Frame(np.zeros(2), 1)
    >>> Z, f = to_frame(np.array([[1.0, -1.0], [8.0, 0.0]]), frame)
    >>> Z
    array([[ 0.5, -0.5],
           [ 0.5,  0. ]])
    >>> f
    array([1.   , 0.125])
    """
    # (x - c) / 2 cannot overflow, whatever the signs and magnitudes of x and c.
    half = np.ldexp(np.asarray(X, dtype=np.float64), -1)
    half -= np.ldexp(frame.centre, -1)
    row_exp = np.full(len(half), frame.exponent - 1)
    if per_row and half.size:
        top = np.maximum(half.max(axis=1), -half.min(axis=1))
        row_exp = np.maximum(row_exp, np.frexp(top)[1])
    Z = np.ldexp(half, -row_exp[:, None], out=half)
    # A row 2**1074 times further out than the data would get f = 0: the smallest positive
    # float keeps f a valid divisor (the prototypes collapse onto the centre either way).
    f = np.ldexp(1.0, frame.exponent - 1 - row_exp)
    return Z, np.maximum(f, np.finfo(np.float64).smallest_subnormal)


def from_frame(Z: np.ndarray, frame: Frame) -> np.ndarray:
    """Inverse of :func:`to_frame` for rows with ``f = 1``: ``centre + Z * 2**exponent``.

    Examples
    --------
    >>> from_frame(np.array([[0.5, -0.5]]), Frame(np.array([2.0, 10.0]), 1))
    array([[3., 9.]])
    """
    return np.ldexp(Z, frame.exponent) + frame.centre


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (zero rows stay zero), safe for any finite values.

    Each row is first divided by its largest absolute entry, so the squares summed for the
    norm lie in ``[0, n_features]``: no overflow at ``1e200``, no underflow at ``1e-200``.

    Examples
    --------
    >>> normalize_rows(np.array([[3e200, 4e200], [0.0, 0.0], [0.0, -1e-300]]))
    array([[ 0.6,  0.8],
           [ 0. ,  0. ],
           [ 0. , -1. ]])
    """
    X = np.asarray(X, dtype=np.float64)
    top = np.max(np.abs(X), axis=1, keepdims=True, initial=0.0)
    Y = X / np.where(top > 0, top, 1.0)
    norms = np.sqrt(np.einsum("ij,ij->i", Y, Y))[:, None]
    return Y / np.where(norms > 0, norms, 1.0)


def on_unit_sphere(Q: np.ndarray, frame: Frame) -> np.ndarray:
    """Frame points moved onto the unit sphere of the original space (``metric="cosine"``).

    Examples
    --------
    >>> frame = Frame(np.array([0.5, 0.5]), 0)
    >>> on_unit_sphere(np.array([[2.5, -0.5]]), frame)
    array([[ 0.5, -0.5]])
    """
    return to_frame(normalize_rows(from_frame(Q, frame)), frame, per_row=False)[0]
