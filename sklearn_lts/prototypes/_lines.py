"""Prototypical lines: class centroids, grouping classes into lines, point-to-segment distances.

The construction follows Sucholutsky et al. (IJCNN 2021) as used by Singh et al.
(arXiv:2210.17437): class centroids are grouped by complete-linkage clustering, each group
becomes a line through its two furthest-apart centroids, and every other class is attached to
the nearest line segment. Two prototypes sit on each line, at its end points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

__all__ = [
    "Line",
    "class_centroids",
    "group_classes",
    "line_positions",
    "lines_from_anchors",
    "lines_from_centroids",
    "point_segment_distances",
    "split_off_point",
]


@dataclass
class Line:
    """One prototypical line.

    Attributes
    ----------
    start, end : ndarray of shape (n_features,)
        End points of the segment; the line's prototypes sit there. For a *point line*
        (a single prototype) ``end`` is ``start``.
    classes : list of int
        Class indices carried by the line, the two end classes included.
    start_class, end_class : int
        Class of the anchor at each end.
    is_point : bool
        True when the line has one prototype only.
    """

    start: np.ndarray
    end: np.ndarray
    classes: list[int]
    start_class: int
    end_class: int
    is_point: bool = False


def class_centroids(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean of the rows of ``X`` for each class ``0..n_classes-1``.

    Examples
    --------
    >>> class_centroids(np.array([[0.0], [2.0], [10.0]]), np.array([0, 0, 1]), 2)
    array([[ 1.],
           [10.]])
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, y, X)
    return sums / counts[:, None]


def point_segment_distances(
    X: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    XS: np.ndarray | None = None,
    XE: np.ndarray | None = None,
    xx: np.ndarray | None = None,
) -> np.ndarray:
    """Euclidean distance from each row of ``X`` to each segment ``[starts[l], ends[l]]``.

    Vectorised through matrix products, so it costs about as much as one distance matrix.
    A degenerate segment (``start == end``) is a point. Computed in float64 by expanding the
    squares: give centred coordinates of order one (the classifier passes frame coordinates,
    see :mod:`~sklearn_lts.prototypes._frame`), not raw data with a large offset.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    starts, ends : ndarray of shape (n_segments, n_features)
    XS, XE : ndarray of shape (n_samples, n_segments), optional
        ``X @ starts.T`` and ``X @ ends.T`` when the caller already has them (the classifier
        takes them from the product with its prototypes, which are the segment end points).
    xx : ndarray of shape (n_samples,), optional
        Squared norms of the rows of ``X``, when the caller has them.

    Returns
    -------
    D : ndarray of shape (n_samples, n_segments)

    Examples
    --------
    >>> point_segment_distances(np.array([[1.0, 1.0], [3.0, 0.0]]),
    ...                         np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]]))
    array([[1.],
           [1.]])
    """
    X = np.asarray(X, dtype=np.float64)
    S = np.asarray(starts, dtype=np.float64)
    E = np.asarray(ends, dtype=np.float64)
    V = E - S  # segment directions
    XS = X @ S.T if XS is None else XS
    XE = X @ E.T if XE is None else XE
    xx = (np.einsum("ij,ij->i", X, X) if xx is None else xx)[:, None]
    d2 = xx + (S * S).sum(1) - 2 * XS  # ||x - s||^2
    proj = (XE - XS) - (S * V).sum(1)  # <x - s, v>
    vv = (V * V).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(vv > 0, proj / vv, 0)
    np.clip(t, 0, 1, out=t)
    d2 -= t * (2 * proj - t * vv)  # ||x - s - t v||^2
    return np.sqrt(np.maximum(d2, 0, out=d2), out=d2)


def line_positions(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Position of points along a line in the coordinate of the two-prototype rule.

    ``lambda = d(x, start) / (d(x, start) + d(x, end))``: 0 at ``start``, 1 at ``end``, and
    equal to the fraction ``t / R`` of the way along the segment for points on it. For a point
    off the line it is the coordinate in which the inverse-distance rule with the line's two
    prototypes sees it: its class scores are ``(1 - lambda) * a + lambda * b``.

    Examples
    --------
    >>> line_positions(np.array([[0.0, 0.0], [1.0, 0.0], [4.0, 0.0]]),
    ...                np.array([0.0, 0.0]), np.array([4.0, 0.0]))
    array([0.  , 0.25, 1.  ])
    """
    d1 = np.linalg.norm(points - start, axis=1)
    d2 = np.linalg.norm(points - end, axis=1)
    total = d1 + d2
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(total > 0, d1 / total, 0.5)
    return lam


def group_classes(centroids: np.ndarray, n_groups: int, merge_singletons: bool) -> list[list[int]]:
    """Group centroids by complete-linkage clustering into at most ``n_groups`` groups.

    With ``merge_singletons`` every group of one class is merged, in turn, into the group whose
    mean is closest (the rule of the reference R code), so that each group can form a line.

    Examples
    --------
    >>> C = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> group_classes(C, 2, merge_singletons=True)
    [[0, 1], [2, 3]]
    """
    n = len(centroids)
    if n_groups >= n or n < 2:
        groups = [[i] for i in range(n)]
    else:
        Z = linkage(pdist(centroids), method="complete")
        labels = fcluster(Z, t=n_groups, criterion="maxclust")
        groups = [list(np.flatnonzero(labels == g)) for g in np.unique(labels)]
    if merge_singletons:
        while len(groups) > 1 and any(len(g) == 1 for g in groups):
            i = next(i for i, g in enumerate(groups) if len(g) == 1)
            single = groups.pop(i)
            mean = centroids[single[0]]
            dists = [np.linalg.norm(centroids[g].mean(0) - mean) for g in groups]
            groups[int(np.argmin(dists))].extend(single)
    groups = [sorted(int(c) for c in g) for g in groups]
    return sorted(groups)


def _furthest_pair(points: np.ndarray, ids: list[int]) -> tuple[int, int]:
    sub = points[ids]
    D = np.linalg.norm(sub[:, None, :] - sub[None, :, :], axis=-1)
    i, j = np.unravel_index(np.argmax(D), D.shape)
    i, j = sorted((int(i), int(j)))
    return ids[i], ids[j]


def _attach(lines: list[Line], centroids: np.ndarray, free: list[int]) -> None:
    """Attach each free class to the line whose segment is nearest to its centroid."""
    if not free:
        return
    starts = np.stack([ln.start for ln in lines])
    ends = np.stack([ln.end for ln in lines])
    D = point_segment_distances(centroids[free], starts, ends)
    for row, c in enumerate(free):
        lines[int(np.argmin(D[row]))].classes.append(c)


def lines_from_centroids(
    centroids: np.ndarray,
    n_lines: int | None,
    split_class: callable,
) -> list[Line]:
    """Build prototypical lines over class centroids.

    Parameters
    ----------
    centroids : ndarray of shape (n_classes, n_features)
    n_lines : int or None
        ``None`` is the paper's construction: ``n_classes - 1`` groups, singletons merged.
        An int asks for exactly that many lines (at most ``n_classes``): a group of a single
        class then becomes a line between two sub-centroids of that class (``split_class``).
    split_class : callable
        ``split_class(c) -> (start, end)``: two sub-centroids of class ``c``.

    Returns
    -------
    lines : list of Line
    """
    n_classes = len(centroids)
    if n_lines is None:
        groups = group_classes(centroids, max(n_classes - 1, 1), merge_singletons=True)
    else:
        groups = group_classes(centroids, n_lines, merge_singletons=False)
    lines: list[Line] = []
    free: list[int] = []
    for g in groups:
        if len(g) == 1:
            start, end = split_class(g[0])
            lines.append(Line(start, end, [g[0]], g[0], g[0]))
            continue
        a, b = _furthest_pair(centroids, g)
        lines.append(Line(centroids[a].copy(), centroids[b].copy(), [a, b], a, b))
        free.extend(c for c in g if c not in (a, b))
    _attach(lines, centroids, sorted(free))
    return lines


def split_off_point(lines: list[Line], centroids: np.ndarray) -> list[Line]:
    """Give the attached class furthest from its line a prototype (a point line) of its own.

    Used for an odd number of prototypes below the number of classes: the odd prototype goes
    where a line serves a class worst. End classes are never moved. Modifies ``lines``.

    Examples
    --------
    >>> C = np.array([[0.0, 0.0], [4.0, 0.0], [1.0, 0.5], [2.0, 3.0]])
    >>> ln = Line(C[0], C[1], [0, 1, 2, 3], 0, 1)
    >>> [(l.classes, l.is_point) for l in split_off_point([ln], C)]
    [([0, 1, 2], False), ([3], True)]
    """
    best = None
    for li, ln in enumerate(lines):
        for c in ln.classes:
            if c in (ln.start_class, ln.end_class):
                continue
            d = point_segment_distances(centroids[c][None], ln.start[None], ln.end[None])[0, 0]
            if best is None or d > best[0]:
                best = (d, li, c)
    if best is not None:
        _, li, c = best
        lines[li].classes.remove(c)
        lines.append(Line(centroids[c], centroids[c], [c], c, c, is_point=True))
    return lines


def lines_from_anchors(
    anchors: np.ndarray, anchor_classes: np.ndarray, share_leftover: bool = False
) -> list[Line]:
    """Pair labelled anchors (e.g. within-class k-means centres) into two-prototype lines.

    Pairs are formed greedily by increasing distance, preferring pairs of different classes
    (where a soft boundary is worth having). An odd anchor left over becomes a point line,
    or, with ``share_leftover``, shares a line with its nearest anchor of another class,
    which then ends two lines. Line routing needs the latter: it sends a query to the
    nearest segment or point, a segment is never further than its ends, so a lone point
    loses queries to every segment (one class in three under-predicted).

    Examples
    --------
    >>> A = np.array([[0.0], [1.0], [5.0], [6.0]])
    >>> [(ln.start_class, ln.end_class) for ln in lines_from_anchors(A, np.array([0, 1, 0, 1]))]
    [(0, 1), (0, 1)]
    >>> A, cls = np.array([[0.0], [1.0], [5.0]]), np.array([0, 1, 2])
    >>> [(ln.start_class, ln.end_class, ln.is_point) for ln in lines_from_anchors(A, cls)]
    [(0, 1, False), (2, 2, True)]
    >>> [(ln.start_class, ln.end_class) for ln in lines_from_anchors(A, cls, share_leftover=True)]
    [(1, 0), (1, 2)]
    """
    n = len(anchors)
    D = np.linalg.norm(anchors[:, None, :] - anchors[None, :, :], axis=-1)
    same = anchor_classes[:, None] == anchor_classes[None, :]
    # Different-class pairs first, then by distance; a stable lexsort keeps this deterministic.
    iu, ju = np.triu_indices(n, k=1)
    order = np.lexsort((ju, iu, D[iu, ju], same[iu, ju]))
    used = np.zeros(n, dtype=bool)
    lines: list[Line] = []
    for o in order:
        i, j = int(iu[o]), int(ju[o])
        if used[i] or used[j]:
            continue
        used[i] = used[j] = True
        lines.append(_anchor_line(anchors, anchor_classes, i, j))
    for i in np.flatnonzero(~used):
        c = int(anchor_classes[i])
        others = np.flatnonzero(anchor_classes != c)
        if not (share_leftover and len(others)):
            lines.append(Line(anchors[i].copy(), anchors[i].copy(), [c], c, c, is_point=True))
            continue
        j = int(others[np.argmin(D[i, others])])  # first of equal distances: deterministic
        # Both lines start at the shared anchor. Queries nearest to it are equally far from
        # both segments; computed from the same start, those distances tie exactly and the
        # earlier line takes them, whatever the scale of the data.
        for li, ln in enumerate(lines):
            if not ln.is_point and np.array_equal(ln.end, anchors[j]):
                lines[li] = Line(ln.end, ln.start, ln.classes[::-1], ln.end_class,
                                 ln.start_class)
                break
        lines.append(_anchor_line(anchors, anchor_classes, j, int(i)))
    return lines


def _anchor_line(anchors: np.ndarray, anchor_classes: np.ndarray, i: int, j: int) -> Line:
    """The line from anchor ``i`` to anchor ``j``."""
    ci, cj = int(anchor_classes[i]), int(anchor_classes[j])
    classes = [ci] if ci == cj else [ci, cj]
    return Line(anchors[i].copy(), anchors[j].copy(), classes, ci, cj)
