"""What happens around a training step: progress bar, log lines, evaluation, early stopping
(which keeps the best student), and the user's callbacks.

Only the main process (rank 0) shows a bar, logs, and calls callbacks; every rank evaluates
(the ranks hold the same weights), and the stopping decision of rank 0 is sent to all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from sklearn_lts.distill._checkpoint import TrainState
from sklearn_lts.distill._distributed import DistInfo, broadcast_int

__all__ = ["TrainRecord", "Progress", "evaluate_now", "step_events", "format_eta",
           "restore_best"]

logger = logging.getLogger("sklearn_lts")


class TrainRecord(NamedTuple):
    """What a callback receives after every optimiser step.

    ``eval_bits_per_byte`` is None at steps without an evaluation; ``parts`` holds the loss
    parts of the objective (``token_ce``, ``byte_ce``, ``kl``, ...).
    """

    step: int
    max_steps: int
    loss: float
    parts: dict
    learning_rate: float
    eval_bits_per_byte: float | None
    elapsed: float  # seconds of training, over every resumed run
    tokens_per_second: float


def format_eta(seconds: float) -> str:
    """``h:mm:ss`` of a duration.

    Examples
    --------
    >>> format_eta(3725.2), format_eta(59)
    ('1:02:05', '0:00:59')
    """
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """tqdm bar (``verbose > 0`` on rank 0) and INFO log lines with throughput and ETA.

    A log line is written ten times per run (and at the last step), whatever ``verbose``.
    """

    def __init__(self, max_steps: int, start: int, desc: str, verbose: int, info: DistInfo):
        self.max_steps, self.start, self.main = max_steps, start, info.main
        self.t0 = time.perf_counter()
        self.tokens = 0
        self.every = max(1, max_steps // 10)
        self.bar = None
        if verbose > 0 and info.main and max_steps > start:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_steps, initial=start, desc=desc)

    def update(self, step: int, record: dict) -> float:
        """Count a step; return the student tokens per second since this run started."""
        self.tokens += record.get("tokens", 0)
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        tps = self.tokens / elapsed
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{tps:.0f}")
        if self.main and (step % self.every == 0 or step == self.max_steps):
            eta = elapsed / (step - self.start) * (self.max_steps - step)
            logger.info("ByteDistiller step %d/%d: loss %.4f, %.0f student tokens/s, ETA %s",
                        step, self.max_steps, record["loss"], tps, format_eta(eta))
        return tps

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate_now(evaluate: Callable[[], float], modules) -> float:
    """``evaluate()`` with ``modules`` in eval mode, their modes restored afterwards."""
    modes = [(m, m.training) for m in modules if m is not None]
    for m, _ in modes:
        m.eval()
    try:
        return float(evaluate())
    finally:
        for m, was in modes:
            m.train(was)


def _early_stop(state: TrainState, step: int, bpb: float, patience: int | None) -> bool:
    """Update the best score; whether ``patience`` evaluations passed without improving."""
    if state.best is None or bpb < state.best:
        state.best, state.best_step, state.bad_evals = bpb, step, 0
        return False
    state.bad_evals += 1
    return patience is not None and state.bad_evals >= patience


def _snapshot(modules) -> dict:
    """CPU copies of the student's and byte head's weights (``None`` for a missing head)."""
    return {name: None if m is None else
            {k: v.detach().to("cpu", copy=True).contiguous() for k, v in m.state_dict().items()}
            for name, m in zip(("student", "byte_head"), modules, strict=True)}


def restore_best(state: TrainState, modules, info: DistInfo) -> int | None:
    """Load the weights of ``state.best_step`` back into ``modules`` (early stopping's end);
    return the step whose weights ``modules`` now hold (None: no evaluation after a step).

    As scikit-learn's ``MLPClassifier(early_stopping=True)`` and transformers'
    ``load_best_model_at_end``: the student returned is the best one evaluated, not the last.
    A run resumed from a checkpoint written without best weights keeps its last ones.
    """
    if state.best_step is None or state.best_step == state.step:
        return state.best_step
    if state.best_weights is None:
        return state.step
    for m, weights in zip(modules, (state.best_weights["student"],
                                    state.best_weights["byte_head"]), strict=True):
        if m is not None and weights is not None:
            m.load_state_dict(weights)
    if info.main:
        logger.info("ByteDistiller: the student of step %d (held-out bits per byte %.4f) "
                    "replaces the last one (step %d)", state.best_step, state.best, state.step)
    return state.best_step


def step_events(
    rec: dict,
    state: TrainState,
    *,
    config,
    evaluate: Callable[[], float] | None,
    callbacks: Sequence[Callable],
    modules,
    info: DistInfo,
    tps: float,
) -> bool:
    """Evaluation, early stopping and callbacks after the step ``rec["step"]``; stop or not.

    The evaluation is written into ``rec`` and ``state.curve``.
    """
    step = rec["step"]
    stop = False
    bpb = None
    if evaluate is not None and (step % config.eval_every == 0 or step == config.max_steps):
        bpb = evaluate_now(evaluate, modules)
        rec["eval_bits_per_byte"] = bpb
        state.curve.append((step, bpb))
        stop = _early_stop(state, step, bpb, config.early_stopping_patience)
        if config.early_stopping_patience is not None and state.best_step == step:
            state.best_weights = _snapshot(modules)
        if stop and info.main:
            logger.info("ByteDistiller: early stopping at step %d (best held-out bits per byte "
                        "%.4f, %d evaluations without improvement)", step, state.best,
                        state.bad_evals)
    if info.main and callbacks:
        parts = {k: v for k, v in rec.items() if k not in ("step", "time", "learning_rate")}
        record = TrainRecord(step, config.max_steps, rec["loss"], parts, rec["learning_rate"],
                             bpb, rec["time"], tps)
        for cb in callbacks:
            stop = bool(cb(record)) or stop
    return bool(broadcast_int(stop, info))
