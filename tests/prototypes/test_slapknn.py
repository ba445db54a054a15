import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_lts.prototypes._slapknn import (
    euclidean_distances_fast,
    inverse_distance_weights,
    slapknn_proba,
)


def brute_force_slapknn(X, P, Y, k):
    """Direct transcription of the rule: sum over the k nearest of y_i / d_i, normalised."""
    out = []
    for x in X:
        d = np.array([np.linalg.norm(x - p) for p in P])
        nearest = sorted(range(len(P)), key=lambda i: (d[i], i))[:k]
        if any(d[i] == 0 for i in nearest):
            score = sum(Y[i] for i in nearest if d[i] == 0)
        else:
            score = sum(Y[i] / d[i] for i in nearest)
        out.append(score / score.sum())
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_matches_brute_force(k):
    rng = np.random.RandomState(k)
    P = rng.randn(5, 4)
    Y = rng.dirichlet(np.ones(3), size=5)
    X = rng.randn(50, 4)
    got = slapknn_proba(euclidean_distances_fast(X, P), Y, k)
    np.testing.assert_allclose(got, brute_force_slapknn(X, P, Y, k), rtol=1e-10, atol=1e-12)


def test_zero_distance_takes_prototype_label_without_warnings():
    P = np.array([[0.0, 0.0], [1.0, 0.0]])
    Y = np.array([[0.8, 0.2], [0.1, 0.9]])
    with np.errstate(all="raise"):
        proba = slapknn_proba(euclidean_distances_fast(P, P), Y, 2)
    np.testing.assert_allclose(proba, Y)


def test_two_prototypes_at_same_point_share_weight():
    W = inverse_distance_weights(np.array([[0.0, 0.0, 3.0]]))
    np.testing.assert_allclose(W, [[0.5, 0.5, 0.0]])


def test_inf_distance_excludes_prototype():
    D = np.array([[1.0, np.inf, 2.0]])
    Y = np.eye(3)
    np.testing.assert_allclose(slapknn_proba(D, Y, 3), [[2 / 3, 0.0, 1 / 3]])


def test_fast_distances_are_exact_on_duplicates():
    rng = np.random.RandomState(0)
    P = rng.randn(7, 384) * 50
    D = euclidean_distances_fast(P, P)
    assert np.all(np.diag(D) == 0.0)
    np.testing.assert_allclose(D, np.linalg.norm(P[:, None] - P[None], axis=-1), atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    D=arrays(np.float64, (6, 4), elements=st.floats(0, 1e6, allow_nan=False)),
    k=st.integers(1, 4),
    seed=st.integers(0, 10),
)
def test_rows_are_distributions(D, k, seed):
    Y = np.random.RandomState(seed).dirichlet(np.ones(3), size=4)
    proba = slapknn_proba(D, Y, k)
    assert np.all(np.isfinite(proba))
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
