"""Anchors inside a class: k-means sub-centroids, for classes that carry several prototypes.

Used when ``n_prototypes >= n_classes`` (several anchors per class, paired into lines by
:func:`~sklearn_lts.prototypes._lines.lines_from_anchors`) and when a line must be built from
a single class (:func:`split_class`). Every function works in frame coordinates
(:mod:`~sklearn_lts.prototypes._frame`) and takes a ``project`` callable that puts centres
where prototypes may live (onto the unit sphere for ``metric="cosine"``, else unchanged).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

__all__ = ["allocate", "class_anchors", "kmeans_centres", "split_class"]

Project = Callable[[np.ndarray], np.ndarray]


def kmeans_centres(points: np.ndarray, n: int, rng: np.random.RandomState) -> np.ndarray:
    """Up to ``n`` k-means centres of ``points`` (their mean when one centre is all there is).

    Fewer than ``n`` centres come back when ``points`` has fewer distinct rows. ``rng`` is
    drawn from only when k-means actually runs.

    Examples
    --------
    >>> kmeans_centres(np.array([[0.0], [2.0], [2.0]]), 3, np.random.RandomState(0))[:, 0]
    array([2., 0.])
    """
    n = min(n, len(np.unique(points, axis=0)))
    if n <= 1:
        return points.mean(axis=0)[None, :]
    km = KMeans(n_clusters=n, n_init=4, random_state=rng.randint(2**31 - 1))
    # A few dozen points: OpenMP threads cost more than they save (4x slower on a busy 2-core
    # machine), so cluster on one thread.
    with threadpool_limits(1, user_api="openmp"):
        km.fit(points)
    return km.cluster_centers_


def split_class(
    c: int, Z: np.ndarray, y: np.ndarray, rng: np.random.RandomState, project: Project
) -> tuple[np.ndarray, np.ndarray]:
    """Two sub-centroids of class ``c``: the ends of a line that carries that class alone.

    Examples
    --------
    >>> Z = np.array([[0.0], [0.1], [1.0], [1.1]])
    >>> start, end = split_class(0, Z, np.zeros(4, dtype=int), np.random.RandomState(0),
    ...                          project=lambda Q: Q)
    >>> sorted([round(float(start[0]), 6), round(float(end[0]), 6)])
    [0.05, 1.05]
    """
    centres = project(kmeans_centres(Z[y == c], 2, rng))
    return centres[0], centres[-1]


def allocate(M: int, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Spread ``M`` prototypes over classes: evenly, remainders to the largest classes.

    Examples
    --------
    >>> allocate(5, np.array([0, 1, 1, 2]), 3)
    array([2, 2, 1])
    """
    counts = np.bincount(y, minlength=n_classes)
    per = np.full(n_classes, M // n_classes)
    order = np.argsort(-counts, kind="stable")
    per[order[: M % n_classes]] += 1
    return per


def class_anchors(
    Z: np.ndarray,
    y: np.ndarray,
    per_class: np.ndarray,
    rng: np.random.RandomState,
    project: Project,
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class[c]`` k-means anchors in each class ``c``, and the class of each anchor.

    Warns (``UserWarning``) when the classes have too few distinct points for that many.

    Examples
    --------
    >>> Z = np.array([[0.0], [1.0], [5.0], [6.0]])
    >>> A, cls = class_anchors(Z, np.array([0, 0, 1, 1]), np.array([1, 1]),
    ...                        np.random.RandomState(0), project=lambda Q: Q)
    >>> A[:, 0], cls
    (array([0.5, 5.5]), array([0, 1]))
    """
    anchors, anchor_classes = [], []
    for c, n in enumerate(per_class):
        centres = project(kmeans_centres(Z[y == c], int(n), rng))
        anchors.append(centres)
        anchor_classes.extend([c] * len(centres))
    anchors = np.vstack(anchors)
    M = int(np.sum(per_class))
    if len(anchors) < M:
        warnings.warn(
            f"n_prototypes={M} exceeds what the training data supports; using "
            f"{len(anchors)} prototypes (one per distinct training point at most).",
            UserWarning,
            stacklevel=4,
        )
    return anchors, np.asarray(anchor_classes)
