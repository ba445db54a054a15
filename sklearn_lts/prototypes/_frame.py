"""The data frame: centred coordinates of order one, so that squared distances never overflow.

Every distance the classifier uses is a ratio or an argmin (inverse-distance weights
``d_min / d_i``, the line coordinate ``d1 / (d1 + d2)``, the nearest segment), so the rule does
not change when the space is shifted or scaled. The classifier therefore works in the
coordinates ``z = (x - centre) / 2**exponent`` of its training data: centring removes a
common offset before anything is squared (a float32 offset of 3,000 in 384 dimensions
otherwise cancels every digit of the distances), and a power-of-two scale (exact in binary
floating point) keeps data of any magnitude, ``1e-200`` or ``1e154``, away from underflow and
overflow.

A query absurdly far from the data (more than ``2**26`` spreads from its centre, where
float64 can no longer tell its distances to different prototypes apart) is moved along its
own direction onto the sphere of that radius: the rule there is within about ``1e-8`` of its
limit at infinity, which is what such a query gets (the ``k`` prototypes that lie furthest in
its direction vote with equal weights), and no square can overflow, whatever the input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Frame",
    "FramedRows",
    "fit_frame",
    "from_frame",
    "normalize_rows",
    "on_unit_sphere",
    "to_frame",
    "FAR_RADIUS",
]


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


class FramedRows(NamedTuple):
    """Rows in frame coordinates (see :func:`to_frame`).

    Attributes
    ----------
    Z : ndarray of shape (n_samples, n_features)
        ``(x - centre) / 2**exponent``, far rows moved onto the sphere of radius ``2**26``.
    zz : ndarray of shape (n_samples,)
        Squared norm of each row of ``Z``.
    """

    Z: np.ndarray
    zz: np.ndarray


#: Radius (in spreads of the data) beyond which a query is moved onto the sphere: there the
#: SLaPkNN weights differ from their limit (all equal) by about 1/radius, and float64 still
#: resolves the ranking of the prototypes to about radius * 2**-52; 2**26 balances the two.
FAR_RADIUS = 2.0**26


def _times_power_of_two(Z: np.ndarray, k: int) -> None:
    """``Z *= 2**k`` in place, exactly (a multiplication when ``2**k`` is a normal float)."""
    if -1022 <= k <= 1023:
        Z *= 2.0**k
    else:
        np.ldexp(Z, k, out=Z)


def to_frame(X: np.ndarray, frame: Frame, clamp: bool = True) -> FramedRows:
    """Frame coordinates ``(x - centre) / 2**exponent`` of the rows of ``X``, in float64.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Any finite values, float32 or float64.
    frame : Frame
    clamp : bool, default=True
        Move each row further than ``FAR_RADIUS`` from the centre (or whose ``x - centre``
        overflows) onto the sphere of that radius, keeping its direction. ``False`` leaves
        such rows as they are (their squares may overflow to ``inf``).

    Returns
    -------
    FramedRows
        ``Z`` and ``zz``.

    Examples
    --------
    >>> frame = Frame(np.zeros(2), 1)
    >>> rows = to_frame(np.array([[1.0, -1.0], [0.0, -1e300]]), frame)
    >>> rows.Z[0], rows.Z[1] == [0.0, -2.0**26]
    (array([ 0.5, -0.5]), array([ True,  True]))
    """
    with np.errstate(over="ignore", invalid="ignore"):
        Z = np.subtract(X, frame.centre, dtype=np.float64)
        _times_power_of_two(Z, -frame.exponent)
        zz = np.einsum("ij,ij->i", Z, Z)
    far = ~(zz <= FAR_RADIUS**2)  # overflowed rows (inf) count as far
    if clamp and far.any():
        # (x - c) / 2 cannot overflow, whatever the signs and magnitudes of x and c.
        half = np.ldexp(np.asarray(X, dtype=np.float64)[far], -1) - np.ldexp(frame.centre, -1)
        Z[far] = FAR_RADIUS * normalize_rows(half)
        zz[far] = np.einsum("ij,ij->i", Z[far], Z[far])
    return FramedRows(Z, zz)


def from_frame(Z: np.ndarray, frame: Frame) -> np.ndarray:
    """Inverse of :func:`to_frame` (rows within ``FAR_RADIUS``): ``centre + Z * 2**exponent``.

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
    return to_frame(normalize_rows(from_frame(Q, frame)), frame).Z
