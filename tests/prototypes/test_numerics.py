"""Numerical reliability: offsets, magnitudes, float32, near-zero distances, chunked predict."""

import warnings

import numpy as np
import pytest
import sklearn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.datasets import load_iris
from sklearn.neighbors import NearestCentroid

from sklearn_lts import SoftLabelPrototypeClassifier
from sklearn_lts.prototypes._distances import distances_from_products, near_zero
from sklearn_lts.prototypes._frame import FAR_RADIUS, fit_frame, normalize_rows, to_frame
from sklearn_lts.prototypes._slapknn import euclidean_distances_fast

CONFIGS = [
    {},
    {"n_prototypes": "auto"},
    {"n_prototypes": 2},
    {"n_prototypes": 6, "routing": "global", "random_state": 0},
    {"metric": "cosine"},
    {"soft_labels": "neural", "n_epochs": 20, "random_state": 0},
]


def config_id(params):
    return ",".join(f"{k}={v}" for k, v in params.items()) or "default"


def offset_blobs(n_classes=4, per_class=8, d=384, offset=3000.0, seed=0):
    """Classes 0.3 apart in 384 dimensions, with unit noise, all shifted by a common offset."""
    rng = np.random.RandomState(seed)
    centres = 0.3 * rng.randn(n_classes, d)
    y = np.repeat(np.arange(n_classes), per_class)
    return centres[y] + rng.randn(len(y), d) + offset, y


# ---------------------------------------------------------------- the near-zero helper
def test_near_zero_flags_exactly_the_untrustworthy_distances():
    """Oracle: every distance kept from the expansion is within 2**-27 of the exact one."""
    rng = np.random.RandomState(0)
    d = 384
    P = rng.uniform(-1, 1, (20, d))
    # queries at distances from 1 down to 1e-12 of a prototype, in random directions
    steps = 10.0 ** -np.arange(13)
    direction = normalize_rows(rng.randn(len(steps) * len(P), d))
    Z = np.repeat(P, len(steps), axis=0) + np.tile(steps, len(P))[:, None] * direction
    G = Z @ P.T
    zz = np.einsum("ij,ij->i", Z, Z)[:, None]
    pp = np.einsum("ij,ij->i", P, P)[None, :]
    sq = zz + pp - 2 * G
    exact = np.linalg.norm(Z[:, None, :] - P[None, :, :], axis=-1)
    kept = ~near_zero(sq, zz + pp, d)
    rel = np.abs(np.sqrt(np.maximum(sq, 0)) - exact) / exact
    assert np.all(rel[kept] < 2.0**-27)
    assert kept.sum() > 0.9 * kept.size  # only near-coincident pairs are flagged
    # all queries within 1e-6 of their prototype are flagged, the far ones are not
    own = np.repeat(np.arange(len(P)), len(steps))
    step = np.tile(steps, len(P))
    assert np.all(~kept[np.arange(len(Z)), own][step <= 1e-4])
    assert np.all(kept[np.arange(len(Z)), own][step >= 1e-1])
    D = distances_from_products(Z, P, G)
    np.testing.assert_allclose(D, exact, rtol=2.0**-27)


@pytest.mark.parametrize("power", [-400, -20, 0, 20, 400])
def test_near_zero_is_scale_invariant(power):
    rng = np.random.RandomState(1)
    sq = rng.uniform(0, 1e-5, 50)
    norms = rng.uniform(0.5, 2.0, 50)
    s2 = np.ldexp(1.0, 2 * power)
    np.testing.assert_array_equal(near_zero(sq * s2, norms * s2, 384), near_zero(sq, norms, 384))


def test_exact_match_is_zero_at_any_scale_and_offset():
    rng = np.random.RandomState(0)
    for scale, offset in [(1.0, 0.0), (1e-200, 0.0), (1e154, 0.0), (1.0, 3000.0)]:
        P = rng.randn(6, 50) * scale + offset
        D = euclidean_distances_fast(P, P)
        assert np.all(np.diag(D) == 0.0)
        off = ~np.eye(6, dtype=bool)
        assert np.all(D[off] > 0)


def test_distances_float32_offset_match_brute_force():
    X, _ = offset_blobs(d=64)
    X32 = X.astype(np.float32)
    P = X[:5]
    exact = np.linalg.norm(X32.astype(np.float64)[:, None] - P[None], axis=-1)
    np.testing.assert_allclose(euclidean_distances_fast(X32, P), exact, rtol=1e-12)


def test_frame_maps_any_finite_data_into_the_unit_box():
    X = np.array([[1.7e308, -1.7e308, 1e-300], [-1.7e308, 1.7e308, 0.0]])
    frame = fit_frame(X)
    rows = to_frame(X, frame)
    assert np.all(np.isfinite(rows.zz)) and np.max(np.abs(rows.Z)) < 1.0
    # near the data: exactly (x - centre) / 2**exponent
    np.testing.assert_array_equal(to_frame(X / 2, frame).Z, rows.Z / 2)
    # a query whose x - centre overflows keeps its direction, at radius FAR_RADIUS
    tiny = fit_frame(np.array([[0.0, 0, 1e-300], [0.0, 0, 2e-300]]))
    q = to_frame(np.array([[5e-324, 1.7e308, -1.7e308]]), tiny)
    np.testing.assert_allclose(q.Z, [[0.0, FAR_RADIUS / np.sqrt(2), -FAR_RADIUS / np.sqrt(2)]])
    assert to_frame(np.array([[0.0, 1e300, 0.0]]), tiny, clamp=False).zz[0] == np.inf


# ---------------------------------------------------------------- the estimator
@pytest.mark.parametrize("params", CONFIGS, ids=config_id)
@pytest.mark.parametrize(
    "scale, dtype", [(1e154, np.float64), (3e19, np.float32), (1e-200, np.float64)]
)
def test_magnitude_does_not_change_the_classifier(params, scale, dtype):
    """The rule is scale-invariant: scaled data must give the unscaled predictions."""
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SoftLabelPrototypeClassifier(**params).fit(X, y)
        Xs = (X * scale).astype(dtype)
        clf = SoftLabelPrototypeClassifier(**params).fit(Xs, y)
    proba = clf.predict_proba(Xs)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_allclose(proba, ref.predict_proba(X), atol=1e-6)
    assert clf.score(Xs, y) == ref.score(X, y) > 0.85


@pytest.mark.parametrize("scale", [1e154, 1e-200, 1e300])
def test_queries_far_from_the_training_scale(scale):
    X, y = load_iris(return_X_y=True)
    for params in CONFIGS:
        clf = SoftLabelPrototypeClassifier(**params).fit(X, y)
        proba = clf.predict_proba(X * scale)
        assert np.all(np.isfinite(proba)), params
        np.testing.assert_allclose(proba.sum(1), 1.0)


def test_float32_offset_keeps_float64_accuracy():
    X, y = offset_blobs()
    X32 = X.astype(np.float32)
    assert SoftLabelPrototypeClassifier().fit(X, y).score(X, y) == 1.0
    assert NearestCentroid().fit(X32, y).score(X32, y) == 1.0
    clf = SoftLabelPrototypeClassifier().fit(X32, y)
    assert clf.score(X32, y) == 1.0
    # float32 queries are computed as accurately as the same values in float64
    np.testing.assert_allclose(
        clf.predict_proba(X32), clf.predict_proba(X32.astype(np.float64)), rtol=1e-12
    )


finite64 = st.floats(allow_nan=False, allow_infinity=False)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def finite_problems(draw):
    """Any finite training and query matrices, float32 or float64, and a setting."""
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    elements = finite64 if dtype == np.float64 else finite32
    n_classes = draw(st.integers(2, 4))
    d = draw(st.integers(1, 4))
    X = draw(arrays(dtype, (3 * n_classes, d), elements=elements))
    Q = draw(arrays(dtype, (5, d), elements=elements))
    scale = draw(st.sampled_from([1.0, 1e-300, 1e-30, 1e30, 1e300]))
    top = np.finfo(dtype).max  # a scaled copy of X among the queries
    with np.errstate(over="ignore"):
        Q = np.vstack([Q, np.clip(X.astype(np.float64) * scale, -top, top)])
    params = draw(st.sampled_from(CONFIGS[:5] + [{"soft_labels": "neural", "n_epochs": 3}]))
    return X, np.repeat(np.arange(n_classes), 3), Q.astype(dtype), params


# scikit-learn's finite check sums the input first: +max and -max floats give inf - inf there
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(finite_problems())
def test_property_any_finite_input_gives_distributions(problem):
    X, y, Q, params = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SoftLabelPrototypeClassifier(**params).fit(X, y)
    proba = clf.predict_proba(Q)
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(clf.predict(Q), clf.classes_[proba.argmax(1)])
    assert np.all(np.isfinite(clf.predict_proba(X)))


# ---------------------------------------------------------------- chunked prediction
@pytest.mark.parametrize("params", CONFIGS, ids=config_id)
def test_tiny_chunks_give_identical_results(params):
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(**params).fit(X, y)
    whole = clf.predict_proba(X), clf.predict(X), clf.decision_function(X)
    # about 7 rows per chunk
    with sklearn.config_context(working_memory=7 * 8 * 4 * (4 + 40) / 2**20):
        chunked = clf.predict_proba(X), clf.predict(X), clf.decision_function(X)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_memmap_input_is_validated_chunk_by_chunk(tmp_path):
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier().fit(X, y)
    mm = np.memmap(tmp_path / "q.f32", dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    with sklearn.config_context(working_memory=1e-3):
        np.testing.assert_array_equal(clf.predict(mm), clf.predict(X.astype(np.float32)))
        mm[77, 2] = np.nan  # a bad value deep inside is still found
        with pytest.raises(ValueError, match="NaN"):
            clf.predict(mm)
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((3, 5)))


def test_chunks_respect_working_memory(monkeypatch):
    """Rows are handed over in chunks sized by sklearn's working_memory (and capped)."""
    import sklearn_lts.prototypes._classifier as classifier

    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier().fit(X, y)
    sizes = []
    real = classifier.block_proba

    def recording(ps, heads, rows, *args):
        sizes.append(len(rows.Z))
        return real(ps, heads, rows, *args)

    monkeypatch.setattr(classifier, "block_proba", recording)
    with sklearn.config_context(working_memory=0.01):  # 10 KiB: a handful of rows
        clf.predict(X)
    assert sum(sizes) == len(X) and 1 < max(sizes) < 40
    sizes.clear()
    clf.predict(np.repeat(X, 150, axis=0))  # 22,500 rows, default working memory
    assert max(sizes) == classifier._MAX_CHUNK_ROWS and sum(sizes) == 22_500


def test_every_flagged_pair_is_recomputed_from_the_coordinates():
    """The contract of distances_from_products: each pair near_zero flags gets the exact
    distance; pairs sit on both sides of the threshold and the points' norms differ a lot."""
    rng = np.random.RandomState(2)
    d = 64
    P = rng.uniform(-1, 1, (8, d)) * np.logspace(-3, 0, 8)[:, None]
    own = rng.randint(len(P), size=400)
    step = np.logspace(-7, -1, 400) * np.sqrt(np.einsum("ij,ij->i", P[own], P[own]))
    Z = P[own] + step[:, None] * normalize_rows(rng.randn(400, d))
    G = Z @ P.T
    zz = np.einsum("ij,ij->i", Z, Z)[:, None]
    pp = np.einsum("ij,ij->i", P, P)[None, :]
    flagged = near_zero(zz + pp - 2 * G, zz + pp, d)
    assert 0.2 < flagged[np.arange(400), own].mean() < 0.8
    D = distances_from_products(Z, P, G)
    exact = np.sqrt(np.einsum("nkd,nkd->nk", Z[:, None] - P[None], Z[:, None] - P[None]))
    np.testing.assert_allclose(D[flagged], exact[flagged], rtol=1e-15)


@pytest.mark.parametrize("routing", ["line", "global"])
@pytest.mark.parametrize("k", [1, 2])
def test_queries_far_away_follow_the_limit_of_the_rule(routing, k):
    """At |x| ~ 1e300 all distances are |x| to 1e-300 relative: the k nearest prototypes (the
    largest projections on x; for line routing, on the line whose end projects furthest) vote
    with equal weights. Far queries are computed at FAR_RADIUS, within ~1e-8 of that limit."""
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(n_prototypes=6, routing=routing, n_neighbors=k,
                                       random_state=0).fit(X, y)
    direction = normalize_rows(np.random.RandomState(0).randn(50, 4))
    proj = direction @ clf.prototypes_.T
    expected = []
    for row in proj:
        ids = np.arange(len(row))
        if routing == "line":
            ids = max((line["prototypes"] for line in clf.lines_), key=lambda p: row[p].max())
        nearest = ids[np.argsort(-row[ids])[:k]]
        expected.append(clf.prototype_labels_[nearest].mean(0))
    np.testing.assert_allclose(clf.predict_proba(direction * 1e300), expected, atol=1e-6)
