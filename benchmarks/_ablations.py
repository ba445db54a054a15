"""Ideas measured against the LogisticRegression anchor on Leopard that did not beat it.

Kept so that the numbers in ``results/fewshot_ablations.md`` can be reproduced with
``python benchmarks/fewshot.py --methods ... --out benchmarks/results/fewshot_ablations``.
None of these is part of the package: none beat ``LogisticRegression(C=1)`` at 4 and 8 shots.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.covariance import ledoit_wolf
from sklearn.linear_model._base import LinearClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def _support(est: BaseEstimator, X, y):
    """Validated support set: X, encoded labels, class centroids and one-hot targets."""
    X, y = validate_data(est, X, y)
    est.classes_, y_enc = np.unique(y, return_inverse=True)
    C = len(est.classes_)
    mu = np.stack([X[y_enc == c].mean(0) for c in range(C)])
    return X, mu, np.eye(C)[y_enc]


class CenterL2(TransformerMixin, BaseEstimator):
    """Subtract the support-set mean, then scale rows to unit norm (SimpleShot's CL2N)."""

    def fit(self, X, y=None):
        X = validate_data(self, X)
        self.mean_ = X.mean(axis=0)
        return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False) - self.mean_
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class WithinClassWhitening(TransformerMixin, BaseEstimator):
    """Whiten with the pooled within-class covariance of the support set, shrunk towards a
    scaled identity (``shrinkage=None``: Ledoit-Wolf), i.e. a Mahalanobis metric as in LDA."""

    def __init__(self, shrinkage: float | None = None):
        self.shrinkage = shrinkage

    def fit(self, X, y):
        X, y = validate_data(self, X, y)
        R = np.concatenate([X[y == c] - X[y == c].mean(0) for c in np.unique(y)])
        if self.shrinkage is None:
            S, _ = ledoit_wolf(R, assume_centered=True)
        else:
            S0 = R.T @ R / len(R)
            S = (1 - self.shrinkage) * S0 + self.shrinkage * np.trace(S0) / len(S0) * np.eye(
                len(S0))
        w, V = np.linalg.eigh(S)
        self.components_ = V / np.sqrt(np.maximum(w, 1e-12))
        return self

    def transform(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False) @ self.components_


class CEPrototypes(ClassifierMixin, BaseEstimator):
    """One prototype per class, placed by minimising cross-entropy of
    ``softmax(-||x - p_c||^2 / tau)`` on the support set plus ``(lam / 2) ||W - W0||^2`` with
    ``W = 2 P / tau`` (the logistic-regression penalty at ``lam=1``), shrunk towards the class
    centroids (``target="centroid"``) or their common mean (``target="mean"``). Predicts the
    nearest prototype, which is what SLaPkNN does with one-hot labels."""

    def __init__(self, tau: float = 0.1, lam: float = 1.0, target: str = "centroid"):
        self.tau = tau
        self.lam = lam
        self.target = target

    def fit(self, X, y):
        X, mu, Y = _support(self, X, y)
        C, d = mu.shape
        anchor = np.broadcast_to(mu.mean(0), mu.shape) if self.target == "mean" else mu
        k = self.lam * 2 / self.tau**2

        def objective(p):
            P = p.reshape(C, d)
            logits = (2 * X @ P.T - (P**2).sum(1)) / self.tau
            lse = logsumexp(logits, axis=1, keepdims=True)
            G = np.exp(logits - lse) - Y
            grad = (2 * G.T @ X - 2 * G.sum(0)[:, None] * P) / self.tau + k * (P - anchor)
            loss = -(Y * (logits - lse)).sum() + 0.5 * k * ((P - anchor) ** 2).sum()
            return loss, grad.ravel()

        res = minimize(objective, mu.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": 500})
        self.prototypes_ = res.x.reshape(C, d)
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        d2 = -2 * X @ self.prototypes_.T + (self.prototypes_**2).sum(1)
        return self.classes_[d2.argmin(1)]


class PriorLogisticRegression(LinearClassifierMixin, BaseEstimator):
    """Multinomial logistic regression whose weights are shrunk towards the nearest-centroid
    solution instead of towards zero: penalty ``(lam / 2) ||W - alpha (mu_c - mean mu)||^2``.

    ``alpha=0, lam=1`` is ``LogisticRegression(C=1)``; growing ``alpha`` moves it towards
    NearestCentroid. Any linear rule is a nearest-prototype rule under squared euclidean
    distance (prototypes ``W / 2`` plus a common shift that absorbs the intercepts), so this is
    the family that soft-label prototypes with learned locations can reach.
    """

    def __init__(self, alpha: float = 1.0, lam: float = 1.0):
        self.alpha = alpha
        self.lam = lam

    def fit(self, X, y):
        X, mu, Y = _support(self, X, y)
        C, d = mu.shape
        W0 = self.alpha * (mu - mu.mean(0))

        def objective(p):
            W, b = p[: C * d].reshape(C, d), p[C * d :]
            logits = X @ W.T + b
            lse = logsumexp(logits, axis=1, keepdims=True)
            G = np.exp(logits - lse) - Y
            loss = -(Y * (logits - lse)).sum() + 0.5 * self.lam * ((W - W0) ** 2).sum()
            grad = np.concatenate([(G.T @ X + self.lam * (W - W0)).ravel(), G.sum(0)])
            return loss, grad

        res = minimize(objective, np.concatenate([W0.ravel(), np.zeros(C)]), jac=True,
                       method="L-BFGS-B", options={"maxiter": 1000})
        W, b = res.x[: C * d].reshape(C, d), res.x[C * d :]
        if C == 2:  # LinearClassifierMixin's binary convention: one score column
            W, b = W[1:] - W[:1], b[1:] - b[:1]
        self.coef_, self.intercept_ = W, b
        return self
