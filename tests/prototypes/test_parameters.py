"""Every parameter of the classifier matters, and matches a brute-force reference if one exists."""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import load_iris
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_lts import SoftLabelPrototypeClassifier
from tests.prototypes.test_slapknn import brute_force_slapknn

IRIS_X, IRIS_Y = load_iris(return_X_y=True)


def unit_rows(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def brute_force_hslapknn(X, clf, k):
    """HSLaPkNN transcribed from its definition, one query at a time.

    Each query goes to the nearest segment between its line's two prototypes, then the ``k``
    nearest prototypes of that line vote with weights ``1 / d`` (a prototype at ``d = 0``
    takes all the weight).
    """
    P, Y = clf.prototypes_, clf.prototype_labels_
    out = []
    for x in X:
        seg = []
        for line in clf.lines_:
            s, e = P[line["prototypes"][0]], P[line["prototypes"][-1]]
            v = e - s
            t = 0.0 if v @ v == 0 else min(1.0, max(0.0, (x - s) @ v / (v @ v)))
            seg.append(np.linalg.norm(x - (s + t * v)))
        ids = clf.lines_[int(np.argmin(seg))]["prototypes"]
        d = np.array([np.linalg.norm(x - P[i]) for i in ids])
        nearest = np.argsort(d, kind="stable")[:k]
        if np.any(d[nearest] == 0):
            w = (d[nearest] == 0).astype(float)
        else:
            w = 1.0 / d[nearest]
        score = (w[:, None] * Y[ids[nearest]]).sum(0)
        out.append(score / score.sum())
    return np.array(out)


# ---------------------------------------------------------------- references
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_global_routing_matches_brute_force(k, metric):
    clf = SoftLabelPrototypeClassifier(
        n_prototypes=6, routing="global", n_neighbors=k, metric=metric, random_state=0
    ).fit(IRIS_X, IRIS_Y)
    Q = unit_rows(IRIS_X) if metric == "cosine" else IRIS_X
    expected = brute_force_slapknn(Q, clf.prototypes_, clf.prototype_labels_, k)
    np.testing.assert_allclose(clf.predict_proba(IRIS_X), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("M", [4, 6, "auto"])
def test_line_routing_matches_brute_force(k, M):
    clf = SoftLabelPrototypeClassifier(n_prototypes=M, n_neighbors=k, random_state=0)
    clf.fit(IRIS_X, IRIS_Y)
    assert all(line["status"] != "fallback-one-hot" for line in clf.lines_)
    expected = brute_force_hslapknn(IRIS_X, clf, k)
    np.testing.assert_allclose(clf.predict_proba(IRIS_X), expected, rtol=1e-9, atol=1e-12)


def test_n_neighbors_counts_under_line_routing():
    """k = 1 reads the nearer prototype's label only: one-hot-like rows, unlike k = 2."""
    k1, k2 = (
        SoftLabelPrototypeClassifier(n_prototypes=6, n_neighbors=k, random_state=0)
        .fit(IRIS_X, IRIS_Y)
        .predict_proba(IRIS_X)
        for k in (1, 2)
    )
    assert not np.allclose(k1, k2)
    clf = SoftLabelPrototypeClassifier(n_prototypes=6, n_neighbors=1, random_state=0)
    labels = clf.fit(IRIS_X, IRIS_Y).prototype_labels_
    # with k = 1 every row of predict_proba is one prototype's label
    rows = k1[:, None, :] - labels[None, :, :]
    assert np.all(np.min(np.abs(rows).max(axis=2), axis=1) < 1e-12)


@pytest.mark.parametrize("M", ["n_classes", 6, 2, "auto"])
def test_cosine_prototypes_are_renormalised_class_means(M):
    clf = SoftLabelPrototypeClassifier(n_prototypes=M, metric="cosine", random_state=0)
    clf.fit(IRIS_X * np.linspace(1, 50, len(IRIS_X))[:, None], IRIS_Y)  # row scale is ignored
    np.testing.assert_allclose(np.linalg.norm(clf.prototypes_, axis=1), 1.0, rtol=1e-12)
    if M == "n_classes":  # a prototype at each class mean; with 3 classes one ends two lines
        means = np.vstack([unit_rows(IRIS_X)[IRIS_Y == c].mean(0) for c in range(3)])
        owner = clf.prototype_labels_.argmax(1)
        assert sorted(set(owner)) == [0, 1, 2] and len(owner) == 4
        np.testing.assert_allclose(clf.prototypes_, unit_rows(means)[owner], rtol=1e-12)


@pytest.mark.parametrize("routing", ["line", "global"])
def test_cosine_ignores_the_length_of_queries(routing):
    clf = SoftLabelPrototypeClassifier(metric="cosine", routing=routing).fit(IRIS_X, IRIS_Y)
    factor = np.random.RandomState(0).uniform(0.01, 100, len(IRIS_X))[:, None]
    np.testing.assert_allclose(clf.predict_proba(IRIS_X * factor), clf.predict_proba(IRIS_X),
                               rtol=1e-9, atol=1e-12)
    euclid = SoftLabelPrototypeClassifier(routing=routing).fit(IRIS_X, IRIS_Y)
    assert not np.allclose(euclid.predict_proba(IRIS_X * factor), euclid.predict_proba(IRIS_X))


@pytest.mark.parametrize("mode", ["support", "centroid"])
def test_class_positions_follow_their_definition(mode):
    """Positions are lambda = d1 / (d1 + d2) of the class centroid, or the median over the
    class's points, measured from the line's two prototypes (end classes at 0 and 1)."""
    X = np.vstack([IRIS_X[IRIS_Y == c] for c in range(3)])
    y = np.repeat(np.arange(3), 50)
    clf = SoftLabelPrototypeClassifier(n_prototypes=2, class_positions=mode).fit(X, y)
    (line,) = clf.lines_
    p1, p2 = clf.prototypes_[line["prototypes"]]

    def lam(points):
        d1, d2 = np.linalg.norm(points - p1, axis=1), np.linalg.norm(points - p2, axis=1)
        return d1 / (d1 + d2)

    if mode == "centroid":
        expected = lam(np.vstack([X[y == c].mean(0) for c in line["classes"]]))
        expected[[0, -1]] = [0.0, 1.0]
    else:
        expected = np.array([np.median(lam(X[y == c])) for c in line["classes"]])
    np.testing.assert_allclose(line["positions"], expected, atol=1e-12)


# ---------------------------------------------------------------- every parameter matters
NEURAL = {"soft_labels": "neural", "n_epochs": 30, "random_state": 0}
PAIRS = [
    ("n_prototypes", 2, 6, {"random_state": 0}),
    ("n_prototypes", "auto", "n_classes", {}),
    ("soft_labels", "lp", "neural", {"n_epochs": 30, "random_state": 0}),
    ("class_positions", "support", "centroid", {"n_prototypes": 2}),
    ("n_neighbors", 1, 2, {"n_prototypes": 6, "random_state": 0}),
    ("n_neighbors", 2, 3, {"n_prototypes": 6, "routing": "global", "random_state": 0}),
    ("n_neighbors", 1, 2, {"n_prototypes": 6, "random_state": 0, **NEURAL}),
    ("routing", "line", "global", {"n_prototypes": 6, "random_state": 0}),
    ("metric", "euclidean", "cosine", {}),
    ("hidden_size", None, 4, NEURAL),
    ("head_init", "lp", "xavier", NEURAL),
    ("learning_rate", 1e-2, 1e-1, NEURAL),
    ("n_epochs", 10, 60, NEURAL),
    ("weight_decay", 0.0, 10.0, {**NEURAL, "head_init": "xavier"}),
    ("random_state", 0, 1, {"n_prototypes": 12}),
    ("random_state", 0, 1, {**NEURAL, "head_init": "xavier"}),
]


@pytest.mark.parametrize(
    "name, a, b, base", PAIRS, ids=[f"{n}={a}/{b}-{i}" for i, (n, a, b, _) in enumerate(PAIRS)]
)
def test_each_parameter_changes_the_result(name, a, b, base):
    results = []
    for value in (a, b):
        clf = SoftLabelPrototypeClassifier(**{**base, name: value}).fit(IRIS_X, IRIS_Y)
        results.append(clf.predict_proba(IRIS_X))
        assert clf.score(IRIS_X, IRIS_Y) > 0.6
    assert np.max(np.abs(results[0] - results[1])) > 1e-3


def test_every_parameter_is_covered():
    names = set(SoftLabelPrototypeClassifier().get_params())
    assert names == {name for name, *_ in PAIRS}


# ---------------------------------------------------------------- validation
def test_validation_is_scikit_learns():
    assert SoftLabelPrototypeClassifier._validate_params is BaseEstimator._validate_params
    assert set(SoftLabelPrototypeClassifier._parameter_constraints) == set(
        SoftLabelPrototypeClassifier().get_params()
    )
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        # parameters are checked first, before the (here invalid) data
        SoftLabelPrototypeClassifier(n_neighbors=0).fit([["a"]], [0])


@pytest.mark.parametrize(
    "params",
    [
        {"weight_decay": -1.0},
        {"learning_rate": 0.0},
        {"n_prototypes": 2.5},
        {"n_neighbors": 1.5},
        {"hidden_size": 2.0, "soft_labels": "neural"},
        {"random_state": "seed"},
        {"n_epochs": None},
    ],
)
def test_more_bad_parameters(params):
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        SoftLabelPrototypeClassifier(**params).fit(IRIS_X, IRIS_Y)


def test_numpy_integers_and_random_states_are_accepted():
    ref = SoftLabelPrototypeClassifier(
        n_prototypes=6, n_neighbors=1, soft_labels="neural", hidden_size=3, n_epochs=5,
        random_state=7,
    ).fit(IRIS_X, IRIS_Y)
    for seed in (np.int64(7), np.random.RandomState(7)):
        clf = SoftLabelPrototypeClassifier(
            n_prototypes=np.int64(6), n_neighbors=np.int64(1), soft_labels="neural",
            hidden_size=np.int32(3), n_epochs=np.int64(5), random_state=seed,
        ).fit(IRIS_X, IRIS_Y)
        np.testing.assert_array_equal(clf.predict_proba(IRIS_X), ref.predict_proba(IRIS_X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # None is a valid seed too
        SoftLabelPrototypeClassifier(n_prototypes=6, random_state=None).fit(IRIS_X, IRIS_Y)
