"""Soft labels of the two prototypes of a line, from a linear program solved by HiGHS.

On a line with prototypes ``p1`` (left) and ``p2`` (right) carrying soft labels ``a`` and
``b``, the two-neighbour SLaPkNN rule scores class ``j`` at a query with
``d1 = d(x, p1)``, ``d2 = d(x, p2)`` as ``a_j / d1 + b_j / d2``. Multiplying by
``d1 d2 / (d1 + d2)`` does not change the argmax and gives

    s_j(lambda) = (1 - lambda) * a_j + lambda * b_j,     lambda = d1 / (d1 + d2),

which is linear in ``(a, b)`` and needs no ``eps`` at the end points (the original LP of
Sucholutsky et al. adds ``eps = 1e-3`` to the distances, which makes the solution depend on the
scale of the embedding space). The program, for classes ``1..n`` at positions
``0 = lambda_1 < ... < lambda_n = 1``:

* every class wins at its own position: ``s_i(lambda_i) >= s_j(lambda_i) + margin``;
* decision boundaries sit at the midpoints ``m_i = (lambda_i + lambda_{i+1}) / 2``:
  ``s_i(m_i) = s_{i+1}(m_i)``;
* ``a`` and ``b`` are distributions;
* maximise ``sum_i margin_i + (sum of the two smallest margin_i)`` with
  ``margin_i = s_i(lambda_i) - sum_{j != i} s_j(lambda_i)`` (the reference objective).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

__all__ = ["LineLPResult", "line_scores", "solve_line_lp"]

#: Minimum win margin at a class's own position (scores live in [0, 1]).
WIN_MARGIN = 1e-4


class LineLPResult:
    """Outcome of :func:`solve_line_lp`.

    Attributes
    ----------
    a, b : ndarray of shape (n,)
        Soft labels of the left and right prototype over the line's classes.
    status : {"lp", "lp-no-midpoints"}
        ``"lp"``: all constraints hold. ``"lp-no-midpoints"``: the midpoint equalities were
        infeasible and were dropped; every class still wins at its own position.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, status: str) -> None:
        self.a, self.b, self.status = a, b, status

    def __repr__(self) -> str:
        return f"LineLPResult(a={self.a!r}, b={self.b!r}, status={self.status!r})"


def line_scores(a: np.ndarray, b: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Normalised class scores ``(1 - lambda) a + lambda b`` at positions ``lam``.

    Examples
    --------
    >>> line_scores(np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.25]))
    array([[0.75, 0.25]])
    """
    lam = np.asarray(lam, dtype=np.float64)[:, None]
    return (1.0 - lam) * a[None, :] + lam * b[None, :]


def _score_row(nv: int, n: int, j: int, lam: float) -> np.ndarray:
    """Coefficients of s_j(lambda) = (1 - lambda) a_j + lambda b_j over the LP variables."""
    r = np.zeros(nv)
    r[j] = 1.0 - lam
    r[n + j] = lam
    return r


def _equalities(positions: np.ndarray, nv: int, with_midpoints: bool):
    """Midpoint ties between neighbouring classes (optional) and sum(a) = sum(b) = 1."""
    n = len(positions)
    A_eq, b_eq = [], []
    if with_midpoints:
        for i in range(n - 1):
            m = 0.5 * (positions[i] + positions[i + 1])
            A_eq.append(_score_row(nv, n, i, m) - _score_row(nv, n, i + 1, m))
            b_eq.append(0.0)
    for block in (slice(0, n), slice(n, 2 * n)):
        r = np.zeros(nv)
        r[block] = 1.0
        A_eq.append(r)
        b_eq.append(1.0)
    return A_eq, b_eq


def _win_rows(positions: np.ndarray, nv: int) -> list[np.ndarray]:
    """Rows of ``s_j(lambda_i) - s_i(lambda_i)`` for every class ``i`` and rival ``j != i``."""
    n = len(positions)
    return [
        _score_row(nv, n, j, lam) - _score_row(nv, n, i, lam)
        for i, lam in enumerate(positions)
        for j in range(n)
        if j != i
    ]


def _solve(positions: np.ndarray, with_midpoints: bool, margin: float):
    n = len(positions)
    # Variables: a (n), b (n), t (1), u (n). Score row at lambda: [(1-l) e_j, l e_j, 0, 0].
    nv = 3 * n + 1
    A_ub = _win_rows(positions, nv)  # s_j - s_i <= -margin
    b_ub = [-margin] * len(A_ub)
    # margin_i = 2 s_i(lambda_i) - 1 because the scores sum to 1 at every lambda.
    # "sum of the two smallest margins" = max_t 2 t - sum_i max(0, t - margin_i): u_i >= t - m_i.
    c = np.zeros(nv)
    for i, lam in enumerate(positions):
        own = 2.0 * _score_row(nv, n, i, lam)
        r = -own
        r[2 * n] = 1.0
        r[2 * n + 1 + i] = -1.0
        A_ub.append(r)
        b_ub.append(-1.0)
        c -= own  # maximise sum of margins (constant -n dropped)
    A_eq, b_eq = _equalities(positions, nv, with_midpoints)
    c[2 * n] -= 2.0
    c[2 * n + 1 :] += 1.0
    bounds = [(0.0, 1.0)] * (2 * n) + [(None, None)] + [(0.0, None)] * n
    res = linprog(
        c, A_ub=np.array(A_ub), b_ub=np.array(b_ub), A_eq=np.array(A_eq), b_eq=np.array(b_eq),
        bounds=bounds, method="highs",
    )
    return res


def _max_margin(positions: np.ndarray, with_midpoints: bool) -> float:
    """Largest win margin any soft labels can reach (0 or less: not every class can win)."""
    n = len(positions)
    nv = 2 * n + 1  # a, b, gamma
    A_ub = _win_rows(positions, nv)  # s_j - s_i + gamma <= 0
    for r in A_ub:
        r[-1] = 1.0
    A_eq, b_eq = _equalities(positions, nv, with_midpoints)
    c = np.zeros(nv)
    c[-1] = -1.0
    bounds = [(0.0, 1.0)] * (2 * n) + [(None, 1.0)]
    res = linprog(c, A_ub=np.array(A_ub), b_ub=np.zeros(len(A_ub)), A_eq=np.array(A_eq),
                  b_eq=np.array(b_eq), bounds=bounds, method="highs")
    return float(res.x[-1]) if res.status == 0 else -np.inf


def solve_line_lp(positions: np.ndarray, margin: float = WIN_MARGIN) -> LineLPResult | None:
    """Soft labels for the two prototypes of a line carrying classes at ``positions``.

    Parameters
    ----------
    positions : ndarray of shape (n,)
        Position of each class on the line, as ``lambda = d1 / (d1 + d2)`` (see
        :func:`~sklearn_lts.prototypes._lines.line_positions`), strictly increasing, with the
        first at 0 and the last at 1 for the end classes.
    margin : float
        Win margin asked for. When classes sit so close together that no soft labels reach it,
        half of the largest reachable margin is used instead (found by a first, small LP), so
        the program is only declared infeasible when no positive margin exists at all.

    Returns
    -------
    result : LineLPResult or None
        ``None`` when no soft labels can make every class win at its own position (e.g. two
        classes at the same position); the caller then falls back (see the classifier docs).

    Examples
    --------
    Three classes on a line, the middle one at a quarter of the way:

    >>> r = solve_line_lp(np.array([0.0, 0.25, 1.0]))
    >>> r.status
    'lp'
    >>> s = line_scores(r.a, r.b, np.array([0.0, 0.25, 1.0]))
    >>> s.argmax(axis=1)
    array([0, 1, 2])
    """
    positions = np.asarray(positions, dtype=np.float64)
    n = len(positions)
    if n == 1:
        return LineLPResult(np.ones(1), np.ones(1), "lp")
    if np.any(np.diff(positions) <= 1e-12):
        return None
    for with_midpoints, status in ((True, "lp"), (False, "lp-no-midpoints")):
        reachable = _max_margin(positions, with_midpoints)
        if not reachable > 1e-9:
            continue
        res = _solve(positions, with_midpoints, min(margin, 0.5 * reachable))
        if res.status == 0:
            a = np.clip(res.x[:n], 0.0, None)
            b = np.clip(res.x[n : 2 * n], 0.0, None)
            return LineLPResult(a / a.sum(), b / b.sum(), status)
    return None
