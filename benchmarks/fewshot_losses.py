"""Benchmark-only ablation for issue #13: other adaptation objectives and more trained layers.

``SentenceEmbedder(fine_tune="prototypes")`` trains LoRA on the top layers with the episodic
prototypical loss. This script swaps that loss (for the duration of one ``fit``) for

- ``pc``: SetFit's objective, squared error between the cosine of every support pair and 1
  (same class) or 0 (different classes);
- ``sc``: supervised contrastive loss (Khosla et al. 2020) at temperature 0.1;
- ``proto``: the library's own loss (to vary layers, steps and learning rate only),

and registers the variants as text methods of ``fewshot.py``, named
``x_<loss>_<head>_l<layers>_s<steps>_lr<lr>_m<mix>``. Run it on dev rows only (``--dev``), e.g.::

    python benchmarks/fewshot_losses.py --data ../shared/data/leopard --dev \
        --text-methods frozen_logreg x_pc_slp_l2_s8_lr0.002_m0.5 --shots 8 4 \
        --dev-episodes 5 6 --max-eval 100 --threads 1 --out benchmarks/results/fewshot_losses_dev

The library does not ship these losses: none of them beat the prototype loss on dev rows
(``results/fewshot_losses_dev.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import fewshot  # this script's folder is first on sys.path when run as a script

# The one benchmark module that reaches into the library's private adaptation code, on purpose:
# an ablation swaps one of its functions. fewshot_variants.py goes through swapped() and
# ORIGINAL below.
from sklearn_lts.embedding import _adapt

ORIGINAL = {"prototype_loss": _adapt.prototype_loss, "_batches": _adapt._batches}
_PROTO = ORIGINAL["prototype_loss"]


@contextmanager
def swapped(**attrs: object) -> Iterator[None]:
    """Functions of ``sklearn_lts.embedding._adapt`` replaced by ``attrs`` for the duration
    (how the benchmark-only ablations change one part of the adaptation)."""
    saved = {k: getattr(_adapt, k) for k in attrs}
    for k, v in attrs.items():
        setattr(_adapt, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(_adapt, k, v)


def pair_cosine_loss(Z, y, temperature):
    """SetFit's CosineSimilarityLoss over every pair of unit rows (``temperature`` unused)."""
    import torch

    S = Z @ Z.T
    same = (y[:, None] == y[None, :]).to(Z.dtype)
    i, j = torch.triu_indices(len(Z), len(Z), 1)
    return ((S[i, j] - same[i, j]) ** 2).mean()


def supcon_loss(Z, y, temperature, tau: float = 0.1):
    """Supervised contrastive loss on unit rows (``temperature`` unused; ``tau`` fixed)."""
    import torch

    n = len(Z)
    eye = torch.eye(n, dtype=torch.bool, device=Z.device)
    logits = ((Z @ Z.T) / tau).masked_fill(eye, -1e9)
    logp = logits - torch.logsumexp(logits, 1, keepdim=True)
    pos = (y[:, None] == y[None, :]) & ~eye
    count = pos.sum(1)
    keep = count > 0
    return (-(logp * pos).sum(1)[keep] / count[keep]).mean()


LOSSES = {"proto": _PROTO, "pc": pair_cosine_loss, "sc": supcon_loss}


class WithLoss:
    """A text pipeline whose encoder adaptation runs with ``LOSSES[loss]``."""

    def __init__(self, loss: str, inner: object) -> None:
        self.loss, self.inner = loss, inner

    def fit(self, X, y):
        with swapped(prototype_loss=LOSSES[self.loss]):
            self.inner.fit(X, y)
        return self

    def predict(self, X):
        return self.inner.predict(X)

    def __repr__(self) -> str:
        return f"WithLoss({self.loss!r}, {self.inner!r})"


def _make(ctx, loss: str, head: str, **embed: object) -> WithLoss:
    return WithLoss(loss, fewshot._adapted(ctx, head=head, **embed))


for _loss in LOSSES:
    for _head in ("slp", "logreg"):
        for _layers, _steps, _lr in [(2, 8, 2e-3), (2, 16, 2e-3), (6, 8, 1e-3), (6, 16, 5e-4)]:
            for _mix in (0.5, 1.0):
                _name = f"x_{_loss}_{_head}_l{_layers}_s{_steps}_lr{_lr:g}_m{_mix:g}"
                fewshot.TEXT_METHODS[_name] = (
                    partial(_make, loss=_loss, head=_head, fine_tune_layers=_layers,
                            fine_tune_steps=_steps, fine_tune_lr=_lr, fine_tune_mix=_mix,
                            fine_tune_max_length=None))  # whole texts, as when measured

if __name__ == "__main__":
    fewshot.__file__ = __file__  # the results name this script as the command
    fewshot.main(sys.argv[1:])
