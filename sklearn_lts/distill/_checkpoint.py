"""Resumable training: checkpoints of the student's training loop, written atomically.

A checkpoint is a folder ``step-<n>/`` inside ``checkpoint_dir`` holding

* ``student.safetensors`` and ``byte_head.safetensors``: the weights (safetensors);
* ``best_student.safetensors`` and ``best_byte_head.safetensors``, with early stopping: the
  weights of the best evaluation so far, which ``fit`` returns at the end;
* ``rng.safetensors``: torch's CPU (and CUDA) random states, as uint8 tensors;
* ``optimizer.pt``: the AdamW and learning-rate scheduler states, written with ``torch.save``
  and read back with ``torch.load(weights_only=True)``, which restores tensors and plain
  Python containers only, never arbitrary objects;
* ``state.json``: the step, the batch order's position (the numpy generator state and the
  windows left in the current epoch), the history, the evaluation curve and the early-stopping
  counters, and a fingerprint of the run's settings and data.

The folder is written under a temporary name and renamed; then ``latest.json`` is replaced
(``os.replace``) to point at it, and older checkpoints are removed. A process killed at any
moment leaves the previous checkpoint whole. Only the main process (rank 0) writes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

__all__ = ["TrainState", "Checkpointer"]

FORMAT = "sklearn_lts.ByteDistiller.checkpoint/1"


@dataclass
class TrainState:
    """Everything of the loop besides weights and optimizer: restored with them."""

    step: int = 0
    history: list = field(default_factory=list)
    curve: list = field(default_factory=list)  # (step, held-out bits per byte)
    best: float | None = None  # best held-out bits per byte so far
    best_step: int | None = None  # the step it was reached at
    bad_evals: int = 0  # evaluations since the best one
    finished: bool = False
    elapsed: float = 0.0  # seconds of training before this process
    # {"student": state dict, "byte_head": state dict or None} of best_step (early stopping);
    # tensors, so written beside state.json, not in it
    best_weights: dict | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "best_weights"}


def _fsync_write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _rng_tensors() -> dict:
    import torch

    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda{i}"] = s
    return out


def _set_rng(tensors: dict) -> None:
    import torch

    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


class Checkpointer:
    """Save and restore the training loop in ``folder`` (see the module docstring).

    Parameters
    ----------
    folder : str
    fingerprint : str
        Settings and data of the run; a checkpoint with another fingerprint is refused.
    """

    def __init__(self, folder: str, fingerprint: str):
        self.folder = os.path.abspath(os.path.expanduser(str(folder)))
        self.fingerprint = fingerprint

    def _latest(self) -> str | None:
        try:
            with open(os.path.join(self.folder, "latest.json"), encoding="utf-8") as f:
                name = json.load(f)["checkpoint"]
        except FileNotFoundError:
            return None
        return os.path.join(self.folder, name)

    def save(self, model, head, opt, sched, order_state: dict, state: TrainState) -> str:
        """Write the checkpoint of ``state.step``; return its folder."""
        import torch
        from safetensors.torch import save_file, save_model

        os.makedirs(self.folder, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-step-", dir=self.folder)
        save_model(model, os.path.join(tmp, "student.safetensors"))
        if head is not None:
            save_model(head, os.path.join(tmp, "byte_head.safetensors"))
        save_file(_rng_tensors(), os.path.join(tmp, "rng.safetensors"))
        for part, weights in (state.best_weights or {}).items():
            if weights is not None:
                save_file(weights, os.path.join(tmp, f"best_{part}.safetensors"))
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
                   os.path.join(tmp, "optimizer.pt"))
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "order": order_state,
                "state": state.to_json()}
        _fsync_write(os.path.join(tmp, "state.json"), json.dumps(meta).encode())
        name = f"step-{state.step:09d}"
        final = os.path.join(self.folder, name)
        if os.path.exists(final):  # written before a crash that came before latest.json
            shutil.rmtree(final)
        os.replace(tmp, final)
        pointer = os.path.join(self.folder, ".latest.json.tmp")
        _fsync_write(pointer, json.dumps({"checkpoint": name}).encode())
        os.replace(pointer, os.path.join(self.folder, "latest.json"))
        for old in os.listdir(self.folder):
            if old.startswith("step-") and old != name:
                shutil.rmtree(os.path.join(self.folder, old), ignore_errors=True)
        return final

    def restore(self, model, head, opt, sched) -> tuple[TrainState, dict] | None:
        """Load the latest checkpoint into the objects; ``(state, order_state)`` or None."""
        import torch
        from safetensors.torch import load_file, load_model

        path = self._latest()
        if path is None:
            return None
        with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT or meta.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"checkpoint_dir={self.folder!r} holds a checkpoint of another run (other "
                "settings or training texts); pass a new folder, or delete this one to start "
                "over"
            )
        load_model(model, os.path.join(path, "student.safetensors"))
        if head is not None:
            load_model(head, os.path.join(path, "byte_head.safetensors"))
        opt_state = torch.load(os.path.join(path, "optimizer.pt"), weights_only=True)
        opt.load_state_dict(opt_state["optimizer"])
        sched.load_state_dict(opt_state["scheduler"])
        _set_rng(load_file(os.path.join(path, "rng.safetensors")))
        state = TrainState(**meta["state"])
        if os.path.exists(os.path.join(path, "best_student.safetensors")):
            head_file = os.path.join(path, "best_byte_head.safetensors")
            state.best_weights = {
                "student": load_file(os.path.join(path, "best_student.safetensors")),
                "byte_head": load_file(head_file) if os.path.exists(head_file) else None,
            }
        return state, meta["order"]
