import numpy as np
import pytest

from sklearn_lts.prototypes._lines import (
    class_centroids,
    group_classes,
    line_positions,
    lines_from_anchors,
    lines_from_centroids,
    point_segment_distances,
)


def brute_point_segment(x, s, e):
    """Minimise ||x - (s + t (e - s))|| over a fine grid of t in [0, 1], then refine."""
    ts = np.linspace(0, 1, 20001)
    pts = s[None] + ts[:, None] * (e - s)[None]
    return np.min(np.linalg.norm(pts - x[None], axis=1))


def test_point_segment_matches_grid_oracle():
    rng = np.random.RandomState(0)
    X = rng.randn(20, 5)
    S, E = rng.randn(3, 5), rng.randn(3, 5)
    E[2] = S[2]  # a degenerate segment is a point
    D = point_segment_distances(X, S, E)
    for i in range(20):
        for j in range(3):
            assert abs(D[i, j] - brute_point_segment(X[i], S[j], E[j])) < 1e-3


def test_positions_match_projection_on_segment():
    s, e = np.array([1.0, 1.0]), np.array([5.0, 4.0])
    t = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    pts = s[None] + t[:, None] * (e - s)[None]
    np.testing.assert_allclose(line_positions(pts, s, e), t, atol=1e-12)


def test_class_centroids():
    X = np.array([[0.0, 1], [2, 3], [10, 10]])
    np.testing.assert_allclose(class_centroids(X, np.array([1, 1, 0]), 2), [[10, 10], [1, 2]])


def test_group_classes_merges_singletons():
    C = np.array([[0.0], [1.0], [2.0], [50.0], [51.0]])
    groups = group_classes(C, 4, merge_singletons=True)
    assert all(len(g) >= 2 for g in groups)
    assert sorted(c for g in groups for c in g) == [0, 1, 2, 3, 4]


def test_auto_lines_cover_every_class_once():
    rng = np.random.RandomState(1)
    C = rng.randn(7, 10)
    lines = lines_from_centroids(C, None, split_class=lambda c: (C[c], C[c]))
    carried = sorted(c for ln in lines for c in ln.classes)
    assert carried == list(range(7))
    for ln in lines:  # end points are the furthest pair of the group's centroids
        assert ln.start_class in ln.classes and ln.end_class in ln.classes


@pytest.mark.parametrize("n_anchors", [4, 5])
def test_anchor_pairing_prefers_different_classes(n_anchors):
    A = np.arange(n_anchors, dtype=float)[:, None]
    cls = np.arange(n_anchors) % 2
    lines = lines_from_anchors(A, cls)
    assert sum(1 if ln.is_point else 2 for ln in lines) == n_anchors
    assert all(ln.start_class != ln.end_class for ln in lines if not ln.is_point)


def test_group_classes_merges_singleton_into_the_nearest_group():
    # complete linkage into 3 groups: {0, 1}, {2, 3} and the singleton {4}, which is 3.5
    # from the mean of {0, 1} and 6.5 from the mean of {2, 3}
    C = np.array([[0.0], [1.0], [10.0], [11.0], [4.0]])
    assert group_classes(C, 3, merge_singletons=False) == [[0, 1], [2, 3], [4]]
    assert group_classes(C, 3, merge_singletons=True) == [[0, 1, 4], [2, 3]]


def test_group_classes_merge_oracle():
    """Each singleton of the linkage groups ends in the group whose mean is nearest."""
    rng = np.random.RandomState(3)
    checked = 0
    for _ in range(40):
        C = rng.randn(7, 3) * rng.uniform(0.1, 3, 3)
        before = group_classes(C, 4, merge_singletons=False)
        singles = [g[0] for g in before if len(g) == 1]
        after = group_classes(C, 4, merge_singletons=True)
        if len(singles) != 1 or len(before) < 3:
            continue
        (s,) = singles
        rest = [g for g in before if len(g) > 1]
        target = min(rest, key=lambda g: np.linalg.norm(C[g].mean(0) - C[s]))
        assert sorted(target + [s]) in after
        checked += 1
    assert checked >= 5
