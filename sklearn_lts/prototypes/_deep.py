"""DeepSLP: soft labels produced by small neural heads (Singh et al., arXiv:2210.17437 v3/v4).

Each line's two prototypes ``p1, p2`` get a head ``f_k`` (a linear layer, or a small MLP) over
the line's classes, whose softmax is the prototype's soft label *at the query*. A query's class
distribution is the two-neighbour SLaPkNN rule with these input-dependent labels,

    P(x) = w1(x) softmax(f1(x)) + w2(x) softmax(f2(x)),   w1 = d2 / (d1 + d2),  w2 = 1 - w1.

The reference code instead mixes unnormalised logits divided by raw distances
(``f1/d1 + f2/d2``): examples near a prototype get huge logits, a query on a prototype divides
by zero, and fixed labels (constant heads) do not reproduce the SLaPkNN rule. Mixing
distributions with normalised weights is scale-free, safe at ``d = 0``, the same rule the
global routing uses, and lets the heads start exactly from the LP soft labels
(``init_labels``), so training refines a sound rule instead of a random one.

Training is cross-entropy on the support points of the line's classes, with the reference's
loss-ratio gradient scaling: each head's gradients are multiplied by its share
``r_k = sum_n w_k(x_n) l_n / sum_n l_n`` of the (distance-weighted) loss, so that the
prototype nearer the misclassified points gets the larger update.

Heads are trained with torch and stored as NumPy arrays: prediction needs no torch, and a
fitted classifier pickles as plain arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["head_proba", "heads_forward", "line_mix_weights", "train_line_heads"]


def line_mix_weights(d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised inverse-distance weights of a line's two prototypes, safe at zero distance.

    Examples
    --------
    >>> line_mix_weights(np.array([1.0, 0.0, 0.0]), np.array([3.0, 2.0, 0.0]))
    (array([0.75, 1.  , 0.5 ]), array([0.25, 0.  , 0.5 ]))
    """
    total = d1 + d2
    with np.errstate(invalid="ignore", divide="ignore"):
        w1 = np.where(total > 0, d2 / total, 0.5)
    return w1, 1.0 - w1


def _make_head(n_features: int, n_out: int, hidden: int | None):
    from torch import nn

    if not hidden:
        head = nn.Linear(n_features, n_out)
        nn.init.xavier_uniform_(head.weight)  # as the reference code
        nn.init.zeros_(head.bias)
        return head
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def _to_numpy(head) -> list[tuple[np.ndarray, np.ndarray]]:
    from torch import nn

    layers = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in layers]


def heads_forward(layers: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray) -> np.ndarray:
    """Apply a head stored as ``[(W, b), ...]`` (ReLU between layers) to ``X``.

    Examples
    --------
    >>> heads_forward([(np.eye(2), np.zeros(2))], np.array([[1.0, -1.0]]))
    array([[ 1., -1.]])
    """
    out = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(layers):
        out = out @ W.T.astype(np.float64) + b
        if i < len(layers) - 1:
            out = np.maximum(out, 0.0)
    return out


def head_proba(layers: list[tuple[np.ndarray, np.ndarray]], Z: np.ndarray) -> np.ndarray:
    """Softmax of a head at ``Z``: its soft label at each query.

    Computed from the max-shifted logits, so huge logits (a query far from the data) give
    probabilities of 0 and 1, never NaN.

    Examples
    --------
    >>> head = [(np.array([[1.0], [-1.0]]), np.array([0.0, 0.0]))]
    >>> head_proba(head, np.array([[0.0], [1e300]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    out = heads_forward(layers, Z)
    out -= out.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    return out / out.sum(axis=1, keepdims=True)


def train_line_heads(
    X: np.ndarray,
    y: np.ndarray,
    n_out: int,
    w1: np.ndarray,
    *,
    hidden: int | None = None,
    learning_rate: float = 1e-2,
    n_epochs: int = 100,
    weight_decay: float = 1e-2,
    seed: int = 0,
    init_labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[list, list, list[float]]:
    """Train the two heads of one line on its support points (full batch, AdamW).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Support points of the line's classes.
    y : ndarray of shape (n_samples,)
        Their class index among the line's ``n_out`` classes.
    n_out : int
        Number of classes on the line.
    w1 : ndarray of shape (n_samples,)
        Weight of the first prototype for each point (see :func:`line_mix_weights`).
    hidden : int or None
        Hidden width of an MLP head; ``None`` gives the reference's single linear layer.
    learning_rate, n_epochs, weight_decay : float, int, float
        AdamW settings; one full-batch step per epoch (support sets are tiny).
    seed : int
        Seeds the head initialisation: training is deterministic.
    init_labels : (ndarray, ndarray) or None
        Start from fixed soft labels (e.g. the LP solution) instead of the reference's Xavier
        initialisation: each head's output layer starts with zero weights and the log of the
        label as bias, so training refines a sound rule rather than a random one.

    Returns
    -------
    head1, head2 : list of (W, b)
        The trained heads as NumPy arrays, for :func:`heads_forward`.
    losses : list of float
        Mean cross-entropy per epoch.
    """
    import torch  # imported here: prediction, and the LP path, need no torch

    n_threads = torch.get_num_threads()
    # Heads are tiny: thread start-up and spin-waiting cost more than the maths (20x slower on
    # a busy 2-core machine), so train on one thread and restore the caller's setting.
    torch.set_num_threads(1)
    try:
        return _train(
            X, y, n_out, w1, hidden, learning_rate, n_epochs, weight_decay, seed, init_labels
        )
    finally:
        torch.set_num_threads(n_threads)


def _train(X, y, n_out, w1, hidden, learning_rate, n_epochs, weight_decay, seed, init_labels):
    import torch
    from torch import nn

    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        f1 = _make_head(X.shape[1], n_out, hidden).double()
        f2 = _make_head(X.shape[1], n_out, hidden).double()
    finally:
        torch.random.set_rng_state(gen_state)  # leave the caller's global RNG untouched
    if init_labels is not None:
        with torch.no_grad():
            for f, label in zip((f1, f2), init_labels):
                last = [m for m in f.modules() if isinstance(m, nn.Linear)][-1]
                last.weight.zero_()
                last.bias.copy_(torch.log(torch.as_tensor(label, dtype=torch.float64) + 1e-3))
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    a = torch.as_tensor(w1, dtype=torch.float64)[:, None]
    opt1 = torch.optim.AdamW(f1.parameters(), lr=learning_rate, weight_decay=weight_decay)
    opt2 = torch.optim.AdamW(f2.parameters(), lr=learning_rate, weight_decay=weight_decay)
    losses = []
    for _ in range(n_epochs):
        opt1.zero_grad()
        opt2.zero_grad()
        p = a * torch.softmax(f1(Xt), dim=1) + (1.0 - a) * torch.softmax(f2(Xt), dim=1)
        per_example = -torch.log(p.gather(1, yt[:, None])[:, 0].clamp_min(1e-12))
        loss = per_example.mean()
        loss.backward()
        with torch.no_grad():  # the reference's loss-ratio gradient scaling
            l1 = (per_example * a[:, 0]).sum()
            total = per_example.sum()
            r1 = float(l1 / total) if total > 0 else 0.5
        for f, r in ((f1, r1), (f2, 1.0 - r1)):
            for p in f.parameters():
                if p.grad is not None:
                    p.grad.mul_(r)
        opt1.step()
        opt2.step()
        losses.append(float(loss.detach()))
    return _to_numpy(f1), _to_numpy(f2), losses
