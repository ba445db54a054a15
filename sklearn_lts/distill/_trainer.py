"""The student's training loop: AdamW over shuffled windows, one objective, a fixed schedule.

:class:`TrainConfig` holds the optimisation settings; :func:`train_student` runs the loop on
:class:`~sklearn_lts.distill._document.Document` s cut into windows
(:mod:`~sklearn_lts.distill._windows`), with the loss of an
:class:`~sklearn_lts.distill._objectives.Objective`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from sklearn_lts.distill._document import Document
from sklearn_lts.distill._objectives import Objective
from sklearn_lts.distill._windows import Window, make_windows, pad_windows

__all__ = [
    "TrainConfig", "collate", "eval_recorder", "last_hidden", "train_student", "window_order"
]


@dataclass
class TrainConfig:
    """Optimisation settings of :func:`train_student`.

    The learning rate warms up linearly over the first ``warmup`` fraction of the steps, then
    decays linearly to ``final_lr`` times ``learning_rate``; the gradients of the student and
    of the byte head are clipped at ``max_grad_norm`` separately.
    """

    max_steps: int
    batch_size: int
    learning_rate: float
    max_length: int
    weight_decay: float = 0.01
    warmup: float = 0.1
    final_lr: float = 0.1
    max_grad_norm: float = 1.0
    verbose: bool = False

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``learning_rate`` at ``step`` (0-based).

        Examples
        --------
        >>> c = TrainConfig(max_steps=20, batch_size=1, learning_rate=1.0, max_length=8)
        >>> [round(c.lr_factor(s), 3) for s in (0, 1, 2, 19)]
        [0.5, 1.0, 1.0, 0.15]
        """
        warm = max(1, int(self.warmup * self.max_steps))
        if step < warm:
            return (step + 1) / warm
        frac = (step - warm) / max(1, self.max_steps - warm)
        return 1.0 - (1.0 - self.final_lr) * min(frac, 1.0)


def window_order(n_windows: int, batch_size: int, rng: np.random.Generator) -> Iterator[list]:
    """Batches of window indices drawn without replacement, reshuffled at each epoch's end.

    Examples
    --------
    >>> it = window_order(3, 2, np.random.default_rng(0))
    >>> batches = [next(it) for _ in range(3)]
    >>> sorted(batches[0] + [batches[1][0]]), len(batches[2])
    ([0, 1, 2], 2)
    """
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order.extend(rng.permutation(n_windows).tolist())
        pick, order = order[:batch_size], order[batch_size:]
        yield pick


def collate(
    docs: list[Document], windows: list[Window], bos_id: int, pad_id: int, objective: Objective
) -> dict[str, torch.Tensor]:
    """Padded token windows plus the targets ``objective`` reads."""
    batch = pad_windows([docs[d].align.ids[s:e] for d, s, e in windows], bos_id, pad_id)
    out = {k: torch.from_numpy(v) for k, v in batch._asdict().items()}
    out.update(objective.targets(docs, windows))
    return out


def last_hidden(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Logits and last-layer hidden states (the ones the LM head reads) of a causal LM."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return out.logits, out.hidden_states[-1]


def _optimizer(model, head, config: TrainConfig):
    """AdamW over the trainable student weights and the byte head, with the config's schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    head_params = list(head.parameters()) if head is not None else []
    opt = torch.optim.AdamW(
        params + head_params, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, config.lr_factor)
    return opt, sched, params, head_params


def _set_mode(model, head, train: bool) -> None:
    model.train(train)
    if head is not None:
        head.train(train)


def train_student(
    model,
    head,
    docs: list[Document],
    objective: Objective,
    config: TrainConfig,
    *,
    bos_id: int,
    pad_id: int,
    rng: np.random.Generator,
    callback: Callable | None = None,
) -> list[dict]:
    """Train ``model`` (and ``head``) in place for ``config.max_steps`` steps; return the history.

    Each history record holds ``step``, ``time`` (seconds since the start) and the loss parts
    of the objective. ``callback(step, model, head)``, if given, is called after every step
    (used for learning curves). A non-finite loss stops training with ``FloatingPointError``.
    """
    windows = make_windows([len(d.align.ids) for d in docs], config.max_length)
    if not windows:
        raise ValueError("no tokens to train on")
    opt, sched, params, head_params = _optimizer(model, head, config)
    batches = window_order(len(windows), config.batch_size, rng)
    history: list[dict] = []
    bar = None
    if config.verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.max_steps, desc=f"ByteDistiller[{objective.name}]")
    device = next(model.parameters()).device
    _set_mode(model, head, True)
    t0 = time.perf_counter()
    for step in range(1, config.max_steps + 1):
        batch = collate(docs, [windows[i] for i in next(batches)], bos_id, pad_id, objective)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits, hidden = last_hidden(model, batch["input_ids"], batch["attention_mask"])
        parts = objective.loss(logits, hidden, batch, head)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        # clip student and byte head apart: one global norm would let a large byte-head
        # gradient shrink the student's token-CE update
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        if head_params:
            torch.nn.utils.clip_grad_norm_(head_params, config.max_grad_norm)
        opt.step()
        sched.step()
        rec = {"step": step, "time": time.perf_counter() - t0}
        rec.update({k: float(v.detach()) for k, v in parts.items()})
        if not math.isfinite(rec["loss"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {rec}")
        history.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
        if callback is not None:
            callback(step, model, head)
    if bar is not None:
        bar.close()
    _set_mode(model, head, False)
    return history


def eval_recorder(score: Callable[[], float], model, every: int, max_steps: int):
    """``(callback, curve)`` recording ``score()`` now, every ``every`` steps and at the end.

    ``score`` runs with ``model`` in eval mode; the model's mode is restored afterwards.
    ``curve`` is the list of ``(step, score)`` pairs, filled as training goes.
    """
    curve: list[tuple[int, float]] = []

    def callback(step: int, *_) -> None:
        if step % every and step != max_steps:
            return
        was_training = model.training
        model.eval()
        try:
            curve.append((step, score()))
        finally:
            model.train(was_training)

    callback(0)
    return callback, curve
