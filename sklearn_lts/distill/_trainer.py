"""The student's training loop: AdamW over shuffled windows, one objective, a schedule.

:class:`TrainConfig` holds the optimisation settings; :func:`train_student` runs the loop on
:class:`~sklearn_lts.distill._document.Document` s cut into windows
(:mod:`~sklearn_lts.distill._windows`), with the loss of an
:class:`~sklearn_lts.distill._objectives.Objective`: gradient accumulation, bf16 autocast,
clipping, a ``transformers`` schedule, DistributedDataParallel under ``torchrun``
(:mod:`~sklearn_lts.distill._distributed`), checkpoints (:mod:`~sklearn_lts.distill._checkpoint`),
evaluation, early stopping and callbacks (:mod:`~sklearn_lts.distill._train_events`).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import torch

from sklearn_lts.distill._checkpoint import Checkpointer, TrainState
from sklearn_lts.distill._distributed import (
    DistInfo,
    dist_info,
    mean_over_ranks,
    micro_batches,
    no_sync,
    wrap_ddp,
)
from sklearn_lts.distill._document import Document
from sklearn_lts.distill._objectives import Objective
from sklearn_lts.distill._train_events import Progress, evaluate_now, restore_best, step_events
from sklearn_lts.distill._windows import Window, make_windows, pad_windows

__all__ = [
    "TrainConfig", "TrainResult", "WindowOrder", "collate", "last_hidden", "make_optimizer",
    "train_student", "window_order",
]

# transformers.get_scheduler names usable here (reduce_lr_on_plateau needs a metric per step)
HF_SCHEDULERS = frozenset({
    "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
    "inverse_sqrt", "cosine_with_min_lr", "cosine_warmup_with_min_lr", "warmup_stable_decay",
})


@dataclass
class TrainConfig:
    """Optimisation settings of :func:`train_student`.

    ``lr_scheduler="linear_floor"`` (the default): the learning rate warms up linearly over
    the first ``warmup`` fraction of the steps, then decays linearly to ``final_lr`` times
    ``learning_rate``. Any other name is a ``transformers.get_scheduler`` schedule with the
    same warm-up steps and ``lr_scheduler_kwargs``. The gradients of the student and of the
    byte head are clipped at ``max_grad_norm`` separately (None: no clipping).
    ``batch_size`` windows make one optimiser step, whatever the number of processes and
    ``gradient_accumulation_steps``.
    """

    max_steps: int
    batch_size: int
    learning_rate: float
    max_length: int
    weight_decay: float = 0.01
    warmup: float = 0.1
    final_lr: float = 0.1
    max_grad_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    lr_scheduler: str = "linear_floor"
    lr_scheduler_kwargs: dict | None = None
    bf16: bool = False
    verbose: int = 0
    eval_every: int = 10
    early_stopping_patience: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 100

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``learning_rate`` at ``step`` (0-based) of the default schedule.

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

    def fingerprint(self) -> dict:
        """The settings that decide the trained weights (not logging, not checkpointing)."""
        out = asdict(self)
        for k in ("verbose", "checkpoint_dir", "checkpoint_every"):
            out.pop(k)
        return out


class TrainResult(NamedTuple):
    """What :func:`train_student` returns."""

    history: list  # one dict per step
    eval_curve: list  # (step, held-out bits per byte), step 0 included
    stopped_early: bool
    best_step: int | None = None  # with early stopping: the step of the weights returned


class WindowOrder:
    """Batches of window indices drawn without replacement, reshuffled at each epoch's end.

    Resumable: :meth:`state` (the generator's state and the windows left in this epoch) and
    :meth:`load_state` continue the same sequence of batches.

    Examples
    --------
    >>> it = WindowOrder(5, 2, np.random.default_rng(0))
    >>> _ = next(it); saved = it.state(); after = [next(it) for _ in range(4)]
    >>> again = WindowOrder(5, 2, np.random.default_rng(1))
    >>> again.load_state(saved)
    >>> [next(again) for _ in range(4)] == after
    True
    """

    def __init__(self, n_windows: int, batch_size: int, rng: np.random.Generator):
        self.n_windows, self.batch_size, self.rng = n_windows, batch_size, rng
        self.pending: list[int] = []

    def __iter__(self) -> Iterator[list]:
        return self

    def __next__(self) -> list:
        if len(self.pending) < self.batch_size:
            self.pending.extend(self.rng.permutation(self.n_windows).tolist())
        pick, self.pending = self.pending[: self.batch_size], self.pending[self.batch_size :]
        return pick

    def state(self) -> dict:
        return {"pending": list(self.pending), "rng": self.rng.bit_generator.state}

    def load_state(self, state: dict) -> None:
        self.pending = [int(i) for i in state["pending"]]
        self.rng.bit_generator.state = state["rng"]


def window_order(n_windows: int, batch_size: int, rng: np.random.Generator) -> WindowOrder:
    """Batches of window indices drawn without replacement, reshuffled at each epoch's end.

    Examples
    --------
    >>> it = window_order(3, 2, np.random.default_rng(0))
    >>> batches = [next(it) for _ in range(3)]
    >>> sorted(batches[0] + [batches[1][0]]), len(batches[2])
    ([0, 1, 2], 2)
    """
    return WindowOrder(n_windows, batch_size, rng)


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


def make_optimizer(model, head, config: TrainConfig):
    """``(AdamW, scheduler, (student params, head params))`` over the trainable weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    head_params = list(head.parameters()) if head is not None else []
    opt = torch.optim.AdamW(
        params + head_params, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    kwargs = dict(config.lr_scheduler_kwargs or {})
    if config.lr_scheduler == "linear_floor":
        if set(kwargs) - {"warmup", "final_lr"}:
            raise ValueError("lr_scheduler='linear_floor' takes lr_scheduler_kwargs 'warmup' "
                             f"and 'final_lr' only, got {sorted(kwargs)}")
        cfg = TrainConfig(config.max_steps, 1, 1.0, 2, **{"warmup": config.warmup,
                                                          "final_lr": config.final_lr, **kwargs})
        sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    else:
        from transformers import get_scheduler

        warm = max(1, int(kwargs.pop("warmup", config.warmup) * config.max_steps))
        sched = get_scheduler(config.lr_scheduler, opt, num_warmup_steps=warm,
                              num_training_steps=config.max_steps,
                              scheduler_specific_kwargs=kwargs)
    return opt, sched, (params, head_params)


def _set_mode(modules, train: bool) -> None:
    for m in modules:
        if m is not None:
            m.train(train)


def _train_step(docs, windows: list[Window], objective: Objective, models, opt, sched, groups,
                config: TrainConfig, info: DistInfo, ids: tuple[int, int]) -> dict:
    """One optimiser step on the global batch ``windows``: this rank's micro-batches, the
    gradients averaged over the ranks, clipping, AdamW, the schedule. Returns the loss parts
    (mean over every micro-batch of every rank) and ``tokens`` (predicted, all ranks)."""
    model, head = models
    device = next(model.parameters()).device
    micro = micro_batches(list(range(len(windows))), info, config.gradient_accumulation_steps)
    opt.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    for i, idx in enumerate(micro):
        batch = collate(docs, [windows[j] for j in idx], ids[0], ids[1], objective)
        batch = {k: v.to(device) for k, v in batch.items()}
        with no_sync(models, skip=i < len(micro) - 1):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                logits, hidden = last_hidden(model, batch["input_ids"], batch["attention_mask"])
                parts = objective.loss(logits, hidden, batch, head)
            (parts["loss"] / len(micro)).backward()
        for k, v in parts.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach()) / len(micro)
        totals["tokens"] = totals.get("tokens", 0.0) + float(batch["attention_mask"].sum())
    rec = mean_over_ranks(totals, info)
    rec["tokens"] = int(round(rec["tokens"] * info.world_size))
    if config.max_grad_norm is not None:
        # clip student and byte head apart: one global norm would let a large byte-head
        # gradient shrink the student's token-CE update
        for params in groups:
            if params:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
    rec["learning_rate"] = float(sched.get_last_lr()[0])
    opt.step()
    sched.step()
    return rec


def _fingerprint(config: TrainConfig, objective: Objective, docs, extra: str) -> str:
    """Hash of what decides the trained weights: settings, objective, texts, ``extra``."""
    obj = {k: v for k, v in vars(objective).items() if not isinstance(v, torch.Tensor)}
    blob = json.dumps([config.fingerprint(), objective.name, obj, extra], sort_keys=True,
                      default=repr)
    h = hashlib.sha256(blob.encode())
    for d in docs:
        h.update(len(d.data).to_bytes(8, "little"))
        h.update(d.data)
    return h.hexdigest()


def _resume(ckpt, model, head, opt, sched, order: WindowOrder) -> TrainState:
    """The restored loop state (fresh when there is no checkpoint yet)."""
    if ckpt is None:
        return TrainState()
    restored = ckpt.restore(model, head, opt, sched)
    if restored is None:
        return TrainState()
    state, order_state = restored
    order.load_state(order_state)
    state.curve = [tuple(p) for p in state.curve]
    return state


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
    evaluate: Callable[[], float] | None = None,
    callbacks: Sequence[Callable] = (),
    fingerprint: str = "",
) -> TrainResult:
    """Train ``model`` (and ``head``) in place for ``config.max_steps`` steps.

    Each history record holds ``step``, ``time`` (seconds of training), ``learning_rate``,
    ``tokens`` and the loss parts of the objective. ``evaluate()`` (held-out bits per byte)
    runs at step 0 and every ``config.eval_every`` steps; ``callbacks`` receive a
    :class:`~sklearn_lts.distill._train_events.TrainRecord` after every step, and one that
    returns True stops training. With ``config.early_stopping_patience`` the weights of the
    best evaluation are loaded back at the end. With ``config.checkpoint_dir`` the loop
    resumes from the checkpoint there (``fingerprint``: what else must match). A non-finite
    loss stops training with ``FloatingPointError``.
    """
    windows = make_windows([len(d.align.ids) for d in docs], config.max_length)
    if not windows:
        raise ValueError("no tokens to train on")
    info = dist_info()
    if config.batch_size < config.gradient_accumulation_steps * info.world_size:
        raise ValueError(f"batch_size={config.batch_size} windows cannot be split into "
                         f"{config.gradient_accumulation_steps} accumulation steps x "
                         f"{info.world_size} processes")
    opt, sched, groups = make_optimizer(model, head, config)
    order = WindowOrder(len(windows), config.batch_size, rng)
    ckpt = None
    if config.checkpoint_dir is not None:
        ckpt = Checkpointer(config.checkpoint_dir,
                            _fingerprint(config, objective, docs, fingerprint))
    state = _resume(ckpt, model, head, opt, sched, order)
    if info.world_size > 1:  # each rank its own dropout masks, the same on every resumption
        torch.manual_seed(torch.initial_seed() + 7919 * info.rank + state.step)
    if evaluate is not None and state.step == 0:
        state.curve.append((0, evaluate_now(evaluate, (model, head))))
    _loop(docs, windows, objective, config, info, (model, head), (opt, sched, groups), order,
          state, ckpt, (bos_id, pad_id), evaluate, callbacks)
    best = None
    if config.early_stopping_patience is not None:
        best = restore_best(state, (model, head), info)
    return TrainResult(state.history, state.curve, state.finished and state.step < config.max_steps,
                       best)


def _loop(docs, windows, objective, config, info, modules, optim, order, state, ckpt, ids,
          evaluate, callbacks) -> None:
    """The steps from ``state.step + 1``; ``state`` is updated in place."""
    opt, sched, groups = optim
    wrapped = (wrap_ddp(modules[0], info), wrap_ddp(modules[1], info))
    progress = Progress(config.max_steps, state.step, f"ByteDistiller[{objective.name}]",
                        config.verbose, info)
    _set_mode(modules, True)
    t0 = time.perf_counter() - state.elapsed
    try:
        while not state.finished and state.step < config.max_steps:
            step = state.step + 1
            rec = _train_step(docs, [windows[i] for i in next(order)], objective, wrapped, opt,
                              sched, groups, config, info, ids)
            rec = {"step": step, "time": time.perf_counter() - t0, **rec}
            if not math.isfinite(rec["loss"]):
                raise FloatingPointError(f"non-finite loss at step {step}: {rec}")
            tps = progress.update(step, rec)
            stop = step_events(rec, state, config=config, evaluate=evaluate, callbacks=callbacks,
                               modules=modules, info=info, tps=tps)
            state.history.append(rec)
            state.step, state.elapsed = step, rec["time"]
            state.finished = stop or step == config.max_steps
            if ckpt is not None and info.main and (
                step % config.checkpoint_every == 0 or state.finished
            ):
                ckpt.save(modules[0], modules[1], opt, sched, order.state(), state)
    finally:
        progress.close()
        _set_mode(modules, False)
