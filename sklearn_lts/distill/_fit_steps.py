"""The training half of ``ByteDistiller.fit``: its settings as a :class:`TrainConfig`, teacher
targets shared out over the ranks of a ``torchrun`` launch, the loop, the fitted attributes.

Functions of the estimator (``est``), kept apart so that ``_distiller`` stays glue.
"""

from __future__ import annotations

import json
import math

import numpy as np

from sklearn_lts.distill._distributed import DistInfo, barrier, broadcast_int, dist_info
from sklearn_lts.distill._scoring import windows_nll
from sklearn_lts.distill._student import add_lora, bos_pad, describe
from sklearn_lts.distill._trainer import TrainConfig, make_optimizer, train_student

__all__ = ["check_train_params", "fit_seed", "shard_teacher_targets", "fit_student",
           "train_config", "use_bf16"]

# parameters that change neither the trained weights nor the data: a checkpoint written with
# other values of these is resumed
_NOT_FINGERPRINTED = ("verbose", "callbacks", "checkpoint_dir", "checkpoint_every", "device",
                      "cache_dir")


def use_bf16(setting: str, device: str) -> bool:
    """Whether to train under bf16 autocast: ``"auto"`` = on CUDA devices that support it.

    Examples
    --------
    >>> use_bf16("auto", "cpu"), use_bf16("bf16", "cpu"), use_bf16("no", "cuda")
    (False, True, False)
    """
    if setting == "auto":
        import torch

        return str(device).startswith("cuda") and torch.cuda.is_bf16_supported()
    return setting == "bf16"


def train_config(est, device: str, eval_every: int) -> TrainConfig:
    """The estimator's optimisation settings."""
    return TrainConfig(
        max_steps=est.max_steps, batch_size=est.batch_size, learning_rate=est.learning_rate,
        max_length=est.max_length, max_grad_norm=est.max_grad_norm,
        gradient_accumulation_steps=est.gradient_accumulation_steps,
        lr_scheduler=est.lr_scheduler, lr_scheduler_kwargs=est.lr_scheduler_kwargs,
        bf16=use_bf16(est.mixed_precision, device), verbose=int(est.verbose),
        eval_every=eval_every, early_stopping_patience=est.early_stopping_patience,
        checkpoint_dir=None if est.checkpoint_dir is None else str(est.checkpoint_dir),
        checkpoint_every=est.checkpoint_every,
    )


def check_train_params(est) -> None:
    """What the per-parameter constraints cannot see, checked before any heavy work."""
    import torch

    info = dist_info()
    need = est.gradient_accumulation_steps * info.world_size
    if est.batch_size < need:
        raise ValueError(
            f"batch_size={est.batch_size} is the global number of windows per step; it must be "
            f"at least gradient_accumulation_steps x processes = {need}"
        )
    if est.callbacks is not None and not all(callable(c) for c in est.callbacks):
        raise TypeError("callbacks must be a list of callables, each taking a TrainRecord")
    # a throwaway schedule: unknown lr_scheduler_kwargs fail here, not after the teacher pass
    cfg = train_config(est, "cpu", 1)
    try:
        make_optimizer(torch.nn.Linear(1, 1), None, cfg)
    except TypeError as e:
        raise ValueError(f"lr_scheduler_kwargs={est.lr_scheduler_kwargs!r} do not fit "
                         f"lr_scheduler={est.lr_scheduler!r}: {e}") from None


def fit_seed(est, info: DistInfo) -> int:
    """The run's seed, the same on every rank (rank 0's draw when ``random_state`` is None)."""
    return broadcast_int(est._seed(), info)


def shard_teacher_targets(est, texts: list[str], info: DistInfo) -> None:
    """Under several processes, each computes the byte targets of its share of the texts into
    the shared cache (a file lock guards it), and all wait for the others; the full read that
    follows then finds every text cached."""
    if info.world_size == 1 or est.loss != "bld" or not (est.kl_weight or est.token_kl_weight):
        return
    est._teacher_targets(texts[info.rank :: info.world_size])
    barrier(info)


def _fingerprint_params(est) -> str:
    params = est.get_params(deep=False)
    for k in _NOT_FINGERPRINTED:
        params.pop(k, None)
    for k in ("teacher", "student"):
        params[k] = describe(params[k])
    return json.dumps(params, sort_keys=True, default=repr)


def fit_student(est, model, tok, head, docs, objective, rng, eval_texts, eval_every) -> None:
    """Train on ``docs`` and set the fitted attributes of ``est``."""
    if est.lora:
        model = add_lora(model, est.lora)
    device = est._device()
    model.to(device)
    if head is not None:
        head.to(device)
    bos, pad = bos_pad(tok)
    evaluate = None
    if eval_texts is not None:

        def evaluate() -> float:  # held-out bits per byte of the student's token head
            nll, n_bytes = windows_nll(model, tok, eval_texts, est.max_length)
            return nll / math.log(2) / max(n_bytes, 1)

    result = train_student(
        model, head, docs, objective, train_config(est, device, eval_every), bos_id=bos,
        pad_id=pad, rng=rng, evaluate=evaluate, callbacks=list(est.callbacks or ()),
        fingerprint=_fingerprint_params(est),
    )
    est.history_ = result.history
    est.eval_curve_ = np.asarray(result.eval_curve, dtype=float).reshape(-1, 2)
    est.best_step_ = result.best_step
    if est.lora:
        model = model.merge_and_unload()
    est.student_ = model.eval()
    est.student_tokenizer_ = tok
    est.byte_head_ = head
    est.max_token_bytes_ = est._resolved_max_bytes()
    est.n_train_bytes_ = int(sum(len(d.data) for d in docs))
