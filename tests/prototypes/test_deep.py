import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris

from sklearn_lts import SoftLabelPrototypeClassifier
from sklearn_lts.prototypes._deep import (
    head_proba,
    heads_forward,
    line_mix_weights,
    train_line_heads,
)
from tests.prototypes.conftest import digit_episodes


def test_training_decreases_loss_and_is_deterministic():
    rng = np.random.RandomState(0)
    X = rng.randn(24, 10)
    y = np.repeat(np.arange(3), 8)
    X[np.arange(24), y] += 3.0
    w1 = rng.rand(24)
    h1, h2, losses = train_line_heads(X, y, 3, w1, n_epochs=60, seed=1)
    assert losses[-1] < 0.5 * losses[0]
    g1, g2, losses2 = train_line_heads(X, y, 3, w1, n_epochs=60, seed=1)
    assert losses == losses2
    for (W, b), (V, c) in zip(h1 + h2, g1 + g2):
        np.testing.assert_array_equal(W, V)
        np.testing.assert_array_equal(b, c)


def test_heads_forward_matches_torch_mlp():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    X = rng.randn(5, 4)
    _, h2, _ = train_line_heads(X, np.array([0, 1, 0, 1, 0]), 2, np.full(5, 0.5),
                                hidden=7, n_epochs=3, seed=0)
    (W1, b1), (W2, b2) = h2
    ref = torch.relu(torch.as_tensor(X) @ torch.as_tensor(W1).T.double() + torch.as_tensor(b1))
    ref = ref @ torch.as_tensor(W2).T.double() + torch.as_tensor(b2)
    np.testing.assert_allclose(heads_forward(h2, X), ref.numpy(), rtol=1e-6)


def test_mix_weights_zero_distance():
    w1, w2 = line_mix_weights(np.array([0.0]), np.array([5.0]))
    assert w1[0] == 1.0 and w2[0] == 0.0


@pytest.mark.parametrize("routing", ["line", "global"])
@pytest.mark.parametrize("M", ["auto", "n_classes", 2, 6])
def test_neural_probabilities_and_pickle(routing, M):
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(
        n_prototypes=M, soft_labels="neural", routing=routing, n_epochs=50, random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(np.vstack([X, clf.prototypes_]))
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert len(clf.heads_) == len(clf.lines_)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    again = clone(clf).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_lp_init_starts_from_the_lp_rule():
    X, y = load_iris(return_X_y=True)
    lp = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X, y)
    deep = SoftLabelPrototypeClassifier(n_prototypes=2, soft_labels="neural", n_epochs=1,
                                        learning_rate=1e-9).fit(X, y)
    # one negligible step away from constant log-label heads: same decisions as the LP
    assert np.mean(deep.predict(X) == lp.predict(X)) > 0.97


def test_neural_beats_lp_when_less_than_one_shot():
    # Two prototypes for four digit classes: fixed soft labels can only split one line
    # coordinate into intervals; input-dependent heads use every feature.
    X, y, mask, episodes = digit_episodes(4, 8, range(3))
    X = X / 16.0
    acc = {"lp": [], "neural": []}
    for idx in episodes:
        for sl in acc:
            clf = SoftLabelPrototypeClassifier(n_prototypes=2, soft_labels=sl, random_state=0)
            acc[sl].append(clf.fit(X[idx], y[idx]).score(X[mask], y[mask]))
    assert np.mean(acc["neural"]) > np.mean(acc["lp"]) + 0.1
    assert np.mean(acc["neural"]) > 0.8


class RecordingOptimizer:
    """Stands in for AdamW: records each step's gradients and changes nothing."""

    steps: list = []

    def __init__(self, params, lr, weight_decay):
        self.params = list(params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        RecordingOptimizer.steps.append([p.grad.detach().clone() for p in self.params])


def test_each_head_gradient_is_scaled_by_its_loss_share(monkeypatch):
    """Reference rule: head k's gradients are those of the mean cross-entropy times
    r_k = sum_n w_k(x_n) l_n / sum_n l_n (w_2 = 1 - w_1), recomputed here by autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    X = rng.randn(30, 4)
    y = rng.randint(0, 3, 30)
    w1 = rng.rand(30) ** 4  # mostly near the second prototype: r_1 is far from 1/2
    monkeypatch.setattr(torch.optim, "AdamW", RecordingOptimizer)
    RecordingOptimizer.steps = []
    h1, h2, _ = train_line_heads(X, y, 3, w1, n_epochs=1, seed=0)  # xavier start
    (W1, b1), (W2, b2) = (
        [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in layer]
        for layer in (h1[0], h2[0])
    )
    Xt, a = torch.as_tensor(X), torch.as_tensor(w1)[:, None]
    p = a * torch.softmax(Xt @ W1.T + b1, 1) + (1 - a) * torch.softmax(Xt @ W2.T + b2, 1)
    losses = -torch.log(p[torch.arange(30), torch.as_tensor(y)])
    grads = torch.autograd.grad(losses.mean(), [W1, b1, W2, b2])
    r1 = float((losses * a[:, 0]).sum().detach() / losses.sum().detach())
    assert abs(r1 - 0.5) > 0.2
    got1, got2 = RecordingOptimizer.steps
    for got, want, r in ((got1, grads[:2], r1), (got2, grads[2:], 1 - r1)):
        for g, w in zip(got, want):
            torch.testing.assert_close(g, r * w, rtol=1e-10, atol=1e-12)


def test_heads_follow_their_seed_not_the_global_rng():
    torch = pytest.importorskip("torch")
    X, y = load_iris(return_X_y=True)

    def heads(seed, global_seed):
        torch.manual_seed(global_seed)
        clf = SoftLabelPrototypeClassifier(
            soft_labels="neural", head_init="xavier", hidden_size=4, n_epochs=5,
            random_state=seed,
        ).fit(X, y)
        return [a for pair in clf.heads_ if pair for head in pair for layer in head
                for a in layer]

    state = torch.random.get_rng_state()
    a = heads(0, global_seed=1)
    assert torch.equal(torch.random.get_rng_state(), torch.manual_seed(1).get_state())
    b = heads(0, global_seed=2)
    c = heads(1, global_seed=1)
    torch.random.set_rng_state(state)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


def test_head_proba_is_the_softmax_of_the_head():
    rng = np.random.RandomState(0)
    head = [(rng.randn(5, 3), rng.randn(5)), (rng.randn(4, 5), rng.randn(4))]
    Z = rng.uniform(-1, 1, (6, 3)) * np.logspace(0, 250, 6)[:, None]
    logits = heads_forward(head, Z)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    proba = head_proba(head, Z)
    np.testing.assert_allclose(proba, expected, rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(1), 1.0)


def test_each_line_starts_from_its_own_random_heads():
    """Line l is seeded with seed + l: lines of the same shape do not share an initialisation."""
    X, y = load_iris(return_X_y=True)
    clf = SoftLabelPrototypeClassifier(
        n_prototypes=6, soft_labels="neural", head_init="xavier", n_epochs=1,
        learning_rate=1e-12, random_state=0,
    ).fit(X, y)
    first_layers = [pair[0][0][0] for pair in clf.heads_ if pair is not None]
    assert len(first_layers) == 3 and all(w.shape == (2, 4) for w in first_layers)
    for i in range(3):
        for j in range(i):
            assert not np.allclose(first_layers[i], first_layers[j])
