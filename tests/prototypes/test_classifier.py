import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_lts import SoftLabelPrototypeClassifier
from sklearn_lts.prototypes import LineFallbackWarning
from sklearn_lts.prototypes._soft_labels import line_scores
from tests.prototypes.conftest import digit_episodes

ESTIMATORS = [
    SoftLabelPrototypeClassifier(),
    SoftLabelPrototypeClassifier(n_prototypes="auto"),
    SoftLabelPrototypeClassifier(n_prototypes=2),
    SoftLabelPrototypeClassifier(n_prototypes=3, routing="global"),
    SoftLabelPrototypeClassifier(n_prototypes=6, random_state=0),
    SoftLabelPrototypeClassifier(n_prototypes=2, class_positions="centroid"),
    SoftLabelPrototypeClassifier(n_neighbors=1, metric="cosine"),
    SoftLabelPrototypeClassifier(n_neighbors=3, routing="global", metric="cosine"),
    SoftLabelPrototypeClassifier(soft_labels="neural", n_epochs=30, random_state=0),
    SoftLabelPrototypeClassifier(
        n_prototypes=4, soft_labels="neural", routing="global", hidden_size=8, n_epochs=30
    ),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: {})
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LineFallbackWarning)
        check(estimator)


def collinear_classes(n_classes, per_class=5, spacing=3.0, seed=0):
    rng = np.random.RandomState(seed)
    X = np.vstack(
        [
            np.c_[c * spacing + 0.2 * rng.randn(per_class), 0.2 * rng.randn(per_class)]
            for c in range(n_classes)
        ]
    )
    y = np.repeat(np.arange(n_classes), per_class)
    return X, y


@pytest.mark.parametrize("n_classes", [3, 4, 5, 7])
@pytest.mark.parametrize("routing", ["line", "global"])
def test_two_prototypes_separate_many_collinear_classes(n_classes, routing):
    X, y = collinear_classes(n_classes)
    clf = SoftLabelPrototypeClassifier(n_prototypes=2, routing=routing).fit(X, y)
    assert clf.prototypes_.shape == (2, 2)
    assert clf.lines_[0]["status"] == "lp"
    # every class is recognised, both on its training points and on fresh points
    assert clf.score(X, y) == 1.0
    Xt, yt = collinear_classes(n_classes, per_class=50, seed=1)
    assert clf.score(Xt, yt) == 1.0


@pytest.mark.parametrize("class_positions", ["support", "centroid"])
def test_lp_constraints_hold_on_fitted_line(class_positions):
    X, y = collinear_classes(5)
    clf = SoftLabelPrototypeClassifier(n_prototypes=2, class_positions=class_positions).fit(X, y)
    line = clf.lines_[0]
    a, b = clf.prototype_labels_[line["prototypes"]]
    cols = np.searchsorted(clf.classes_, line["classes"])
    pos = line["positions"]
    s = line_scores(a[cols], b[cols], pos)
    assert np.array_equal(s.argmax(1), np.arange(len(pos)))  # each class wins at its centroid
    mid = 0.5 * (pos[1:] + pos[:-1])
    sm = line_scores(a[cols], b[cols], mid)
    np.testing.assert_allclose(sm[np.arange(4), np.arange(4)], sm[np.arange(4), np.arange(1, 5)],
                               atol=1e-9)  # boundaries at midpoints


@pytest.mark.parametrize("M", ["n_classes", "auto", 2, 3, 5, 10, 17, 40])
@pytest.mark.parametrize("routing", ["line", "global"])
def test_centroids_are_classified_as_their_class(M, routing):
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(
        n_prototypes=M, routing=routing, class_positions="centroid", random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert clf.prototype_labels_.shape == (clf.prototypes_.shape[0], 3)
    np.testing.assert_allclose(clf.prototype_labels_.sum(1), 1.0)
    if M == "n_classes":
        # line routing: the class left over shares a line, its partner's centroid ends two
        assert clf.prototypes_.shape[0] == (4 if routing == "line" else 3)
    elif M != "auto" and M >= 3:
        assert clf.prototypes_.shape[0] == M
    if routing == "line":
        centroids = np.vstack([X[y == c].mean(0) for c in range(3)])
        if isinstance(M, str) or M >= 3:
            assert np.array_equal(clf.predict(centroids), [0, 1, 2])


def test_odd_class_count_does_not_starve_the_leftover_class():
    """Three symmetric classes: the class whose centroid is left over after pairing must get
    its third of the predictions. As a lone point (the construction ``routing="global"``
    keeps) line routing gave it 26 %: a segment is never further than its ends."""
    rng = np.random.RandomState(0)
    centres = np.eye(3, 50)
    shares = []
    for _ in range(20):
        X = np.vstack([c + 0.5 * rng.randn(8, 50) for c in centres])
        Q = np.vstack([c + 0.5 * rng.randn(300, 50) for c in centres])
        y = np.repeat(np.arange(3), 8)
        (lone,) = [ln["classes"][0] for ln in SoftLabelPrototypeClassifier(
            routing="global").fit(X, y).lines_ if ln["status"] == "point"]
        clf = SoftLabelPrototypeClassifier().fit(X, y)
        assert [ln["status"] for ln in clf.lines_].count("point") == 0
        assert lone in clf.lines_[-1]["classes"]
        shares.append(np.mean(clf.predict(Q) == lone))
    assert 0.30 < np.mean(shares) < 0.37


def test_support_positions_beat_centroid_positions_less_than_one_shot():
    X, y, mask, episodes = digit_episodes(4, 8, range(5))
    X = StandardScaler().fit_transform(X)
    scores = {"support": [], "centroid": []}
    for idx in episodes:
        for pos in scores:
            clf = SoftLabelPrototypeClassifier(n_prototypes=2, class_positions=pos)
            scores[pos].append(clf.fit(X[idx], y[idx]).score(X[mask], y[mask]))
    assert np.mean(scores["support"]) > np.mean(scores["centroid"]) + 0.1


def test_less_than_one_shot_on_real_data():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.RandomState(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 8, replace=False) for c in range(4)])
    mask = np.isin(y, range(4))
    clf = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X[idx], y[idx])
    assert clf.prototypes_.shape[0] == 2
    # four classes from two prototypes, well above the 25 % chance level
    assert clf.score(X[mask], y[mask]) > 0.5


@pytest.mark.parametrize("class_positions", ["support", "centroid"])
def test_infeasible_line_falls_back_and_drops_nothing(class_positions):
    # classes 1 and 2 have the same centroid: no soft labels can make both win there
    X = np.array([[0.0, 0], [10, 0], [5, 1], [5, -1], [5, 1.0], [5, -1.0]])
    y = np.array([0, 3, 1, 1, 2, 2])
    with pytest.warns(LineFallbackWarning):
        clf = SoftLabelPrototypeClassifier(n_prototypes=2, class_positions=class_positions)
        clf.fit(X, y)
    assert clf.lines_[0]["status"] == "fallback-one-hot"
    proba = clf.predict_proba(np.random.RandomState(0).randn(100, 2) * 5)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert set(clf.predict(X)) >= {0, 3}


def test_zero_distance_query():
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(routing="global").fit(X, y)
    with np.errstate(divide="raise", invalid="raise"):
        proba = clf.predict_proba(clf.prototypes_)
    np.testing.assert_allclose(proba, clf.prototype_labels_)


def test_grid_search_pipeline_clone_pickle():
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("slp", SoftLabelPrototypeClassifier())])
    gs = GridSearchCV(pipe, {"slp__n_prototypes": [2, 3, 6, "auto", "n_classes"]}, cv=3).fit(X, y)
    assert gs.best_score_ > 0.8
    assert gs.best_params_["slp__n_prototypes"] in (2, 3, 6, "auto", "n_classes")
    clf = SoftLabelPrototypeClassifier(n_prototypes=6, random_state=0).fit(X, y)
    c = clone(clf)
    assert c.get_params() == clf.get_params() and not hasattr(c, "prototypes_")
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_random_state_determinism():
    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    a = SoftLabelPrototypeClassifier(n_prototypes=25, random_state=3).fit(X, y)
    b = SoftLabelPrototypeClassifier(n_prototypes=25, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.prototypes_, b.prototypes_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_string_labels_and_column_order():
    X, y = collinear_classes(3)
    names = np.array(["zeta", "alpha", "mid"])[y]
    clf = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X, names)
    assert list(clf.classes_) == ["alpha", "mid", "zeta"]
    assert np.array_equal(clf.predict(X), names)
    proba = clf.predict_proba(X)
    assert np.array_equal(clf.classes_[proba.argmax(1)], names)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_prototypes": 1}, "n_prototypes"),
        ({"n_prototypes": "many"}, "n_prototypes"),
        ({"soft_labels": "magic"}, "soft_labels"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"routing": "nearest"}, "routing"),
        ({"metric": "manhattan"}, "metric"),
        ({"class_positions": "mean"}, "class_positions"),
        ({"soft_labels": "neural", "hidden_size": 0}, "hidden_size"),
        ({"soft_labels": "neural", "n_epochs": 0}, "n_epochs"),
        ({"soft_labels": "neural", "head_init": "zeros"}, "head_init"),
        ({"soft_labels": "neural", "learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_bad_parameters_raise_at_fit(params, match):
    clf = SoftLabelPrototypeClassifier(**params)  # no validation in __init__
    with pytest.raises(ValueError, match=match):
        clf.fit(*collinear_classes(3))


@settings(max_examples=25, deadline=None)
@given(
    n_classes=st.integers(2, 6),
    M=st.one_of(st.sampled_from(["auto", "n_classes"]), st.integers(2, 14)),
    routing=st.sampled_from(["line", "global"]),
    metric=st.sampled_from(["euclidean", "cosine"]),
    k=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_property_probabilities(n_classes, M, routing, metric, k, seed):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_classes * 4, 5)
    y = np.repeat(np.arange(n_classes), 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SoftLabelPrototypeClassifier(
            n_prototypes=M, routing=routing, metric=metric, n_neighbors=k, random_state=seed
        ).fit(X, y)
    Xt = np.vstack([rng.randn(30, 5), clf.prototypes_, np.zeros((1, 5))])
    proba = clf.predict_proba(Xt)
    assert proba.shape == (len(Xt), n_classes)
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert np.array_equal(clf.predict(Xt), clf.classes_[proba.argmax(1)])
    # determinism with random_state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf2 = clone(clf).fit(X, y)
    np.testing.assert_array_equal(clf2.predict_proba(Xt), proba)
