"""From prototypical lines to prototypes: positions of classes on a line, soft labels, routing.

Each :class:`~sklearn_lts.prototypes._lines.Line` becomes one or two prototypes (or one per
class when its linear program is infeasible), and :func:`build_prototypes` gathers them in a
:class:`PrototypeSet`: the arrays prediction needs, in frame coordinates.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from sklearn_lts.prototypes._lines import Line, line_positions
from sklearn_lts.prototypes._soft_labels import solve_line_lp

__all__ = [
    "LineFallbackWarning",
    "PrototypeSet",
    "Route",
    "build_prototypes",
    "class_positions",
    "make_route",
]


class LineFallbackWarning(UserWarning):
    """A line's linear program was infeasible and the line fell back to one-hot prototypes."""


class PrototypeSet(NamedTuple):
    """Everything prediction needs, in frame coordinates.

    Attributes
    ----------
    points : ndarray of shape (n_prototypes, n_features)
        Prototype locations.
    labels : ndarray of shape (n_prototypes, n_classes)
        Soft label of each prototype (rows sum to 1).
    starts, ends : ndarray of shape (n_lines, n_features)
        Segment of each line, for routing.
    table : ndarray of shape (n_lines, width)
        Row indices of each line's prototypes, padded with ``n_prototypes``.
    columns : list of ndarray
        Class indices carried by each line, in their order along it.
    lines : list of dict
        The ``lines_`` entries of the classifier.
    route : Route or None
        The points one matrix product must reach for line routing (see :func:`make_route`).
    """

    points: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    table: np.ndarray
    columns: list
    lines: list
    route: Route | None = None


class Route(NamedTuple):
    """The distinct points behind prototype and segment distances, and where segments end.

    Attributes
    ----------
    points : ndarray of shape (n_points, n_features)
        The prototypes first, then the segment end points that are not prototypes.
    start_col, end_col : ndarray of shape (n_lines,)
        Row of ``points`` at each line's start and end.
    """

    points: np.ndarray
    start_col: np.ndarray
    end_col: np.ndarray


def make_route(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Route:
    """Share one product between prototypes and segment ends: most segments end at prototypes.

    Examples
    --------
    >>> P = np.array([[0.0], [1.0]])
    >>> r = make_route(P, np.array([[0.0], [5.0]]), np.array([[1.0], [5.0]]))
    >>> r.points[:, 0], r.start_col, r.end_col
    (array([0., 1., 5.]), array([0, 2]), array([1, 2]))
    """
    rows = list(points)
    index: dict[bytes, int] = {}
    for i, p in enumerate(points):
        index.setdefault(p.tobytes(), i)

    def column(p: np.ndarray) -> int:
        if p.tobytes() not in index:
            index[p.tobytes()] = len(rows)
            rows.append(p)
        return index[p.tobytes()]

    start_col = np.array([column(p) for p in starts], dtype=np.intp)
    end_col = np.array([column(p) for p in ends], dtype=np.intp)
    return Route(np.vstack(rows), start_col, end_col)


class _LinePrototypes(NamedTuple):
    points: list
    labels: list
    classes: list
    positions: np.ndarray
    status: str


def class_positions(
    ln: Line, classes: list[int], centroids: np.ndarray, Z: np.ndarray, y: np.ndarray, mode: str
) -> np.ndarray:
    """Position of each class on a line, in the coordinate of the two-prototype rule.

    ``mode="centroid"`` (the reference): the class centroid's position, end classes exactly at
    0 and 1. ``mode="support"``: the median position of the class's training points.

    Examples
    --------
    >>> C = np.array([[0.0], [4.0], [1.0]])
    >>> ln = Line(C[0], C[1], [0, 1, 2], 0, 1)
    >>> Z, y = np.array([[0.0], [4.0], [2.0], [3.0]]), np.array([0, 1, 2, 2])
    >>> class_positions(ln, [0, 1, 2], C, Z, y, "centroid")
    array([0.  , 1.  , 0.25])
    >>> class_positions(ln, [0, 1, 2], C, Z, y, "support")
    array([0.   , 1.   , 0.625])
    """
    if mode == "centroid":
        pos = line_positions(centroids[classes], ln.start, ln.end)
        pos[classes.index(ln.start_class)] = 0.0
        pos[classes.index(ln.end_class)] = 1.0
        return pos
    return np.array([np.median(line_positions(Z[y == c], ln.start, ln.end)) for c in classes])


def _one_hot(c: int, n: int) -> np.ndarray:
    v = np.zeros(n)
    v[c] = 1.0
    return v


def _line_prototypes(
    ln: Line, centroids: np.ndarray, Z: np.ndarray, y: np.ndarray, mode: str, names: np.ndarray
) -> _LinePrototypes:
    """The prototypes of one line, their soft labels, and the line's ``lines_`` fields."""
    n = len(names)
    classes = sorted(set(ln.classes))
    if ln.is_point:
        return _LinePrototypes([ln.start], [_one_hot(classes[0], n)], classes, [0.0], "point")
    if len(classes) == 1:
        label = _one_hot(classes[0], n)
        return _LinePrototypes([ln.start, ln.end], [label, label], classes, [0.0, 1.0],
                               "single-class")
    pos = class_positions(ln, classes, centroids, Z, y, mode)
    order = np.argsort(pos, kind="stable")
    ordered = [classes[i] for i in order]
    pos = pos[order]
    res = solve_line_lp(pos)
    if res is None:
        warnings.warn(
            f"The soft-label LP of the line carrying classes {list(names[ordered])} is "
            f"infeasible (positions {np.round(pos, 4)}); using one one-hot prototype per class "
            "on that line instead.",
            LineFallbackWarning,
            stacklevel=5,
        )
        return _LinePrototypes([centroids[c] for c in ordered],
                               [_one_hot(c, n) for c in ordered], ordered, pos,
                               "fallback-one-hot")
    a, b = np.zeros(n), np.zeros(n)
    a[ordered] = res.a
    b[ordered] = res.b
    return _LinePrototypes([ln.start, ln.end], [a, b], ordered, pos, res.status)


def build_prototypes(
    lines: list[Line],
    centroids: np.ndarray,
    Z: np.ndarray,
    y: np.ndarray,
    mode: str,
    names: np.ndarray,
) -> PrototypeSet:
    """Prototypes, soft labels and routing table of all lines.

    Parameters
    ----------
    lines : list of Line
    centroids : ndarray of shape (n_classes, n_features)
    Z, y : ndarray
        Training points (frame coordinates) and their class indices.
    mode : {"support", "centroid"}
        See :func:`class_positions`.
    names : ndarray of shape (n_classes,)
        Class labels (``classes_``), for the ``lines_`` entries and warnings.

    Returns
    -------
    PrototypeSet
    """
    points, labels, entries, columns = [], [], [], []
    for ln in lines:
        lp = _line_prototypes(ln, centroids, Z, y, mode, names)
        idx = np.arange(len(points), len(points) + len(lp.points), dtype=np.intp)
        points.extend(lp.points)
        labels.extend(lp.labels)
        columns.append(np.asarray(lp.classes, dtype=np.intp))
        entries.append({
            "prototypes": idx,
            "classes": names[columns[-1]],
            "positions": np.asarray(lp.positions, dtype=np.float64),
            "status": lp.status,
        })
    width = max(len(entry["prototypes"]) for entry in entries)
    table = np.full((len(entries), width), len(points), dtype=np.intp)
    for li, entry in enumerate(entries):
        table[li, : len(entry["prototypes"])] = entry["prototypes"]
    return PrototypeSet(
        np.vstack(points), np.vstack(labels), np.vstack([ln.start for ln in lines]),
        np.vstack([ln.end for ln in lines]), table, columns, entries,
    )
