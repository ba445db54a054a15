"""torch.distributed for ByteDistiller: the launcher's environment, the process group, DDP.

A script started by ``torchrun`` (or ``accelerate launch``, or any launcher that sets
``WORLD_SIZE`` / ``RANK`` / ``LOCAL_RANK`` and the rendezvous address) runs one process per
device. :func:`init_distributed` joins the process group (gloo on CPU, NCCL on CUDA) the first
time ``fit`` runs in such a process; a plain ``python`` run sees ``WORLD_SIZE`` unset and stays
single-process, with no torch.distributed call at all.

How a step is shared: the global batch of ``batch_size`` windows is cut into
``world_size * gradient_accumulation_steps`` micro-batches, ``pick[m::n_micro]``; rank ``r``
runs micro-batches ``r, r + world_size, ...``. DistributedDataParallel averages the gradients
over ranks, the loss of each micro-batch is divided by the accumulation steps, so every rank
steps with the mean over all micro-batches -- the same update as one process with
``world_size * gradient_accumulation_steps`` accumulation steps.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from datetime import timedelta
from typing import NamedTuple

__all__ = ["DistInfo", "dist_info", "init_distributed", "micro_batches", "wrap_ddp",
           "mean_over_ranks", "barrier", "broadcast_int", "no_sync"]


GROUP_TIMEOUT_HOURS = 12


class DistInfo(NamedTuple):
    """This process's place among the launched processes (``world_size == 1``: no launcher)."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress bars (rank 0)."""
        return self.rank == 0


def dist_info() -> DistInfo:
    """The launcher's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` (defaults: one process).

    Examples
    --------
    >>> import os
    >>> os.environ.get("WORLD_SIZE") is None and dist_info() == DistInfo(0, 1, 0)
    True
    """
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0")) if world > 1 else 0
    return DistInfo(rank, world, int(env.get("LOCAL_RANK", str(rank))) if world > 1 else 0)


def init_distributed(device: str) -> DistInfo:
    """Join the launcher's process group (once per process) and return this rank's place.

    The backend follows ``device``: NCCL for CUDA, gloo otherwise; collective calls time out
    after ``GROUP_TIMEOUT_HOURS``. The group is destroyed at interpreter exit. A group the
    caller initialised is used as it is.
    """
    info = dist_info()
    if info.world_size == 1:
        return info
    import torch.distributed as dist

    if str(device).startswith("cuda"):
        import torch

        torch.cuda.set_device(info.local_rank)  # NCCL's barriers use the current device
    if not dist.is_initialized():
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        # the ranks wait for each other's share of the teacher targets, which can take hours
        dist.init_process_group(backend=backend, timeout=timedelta(hours=GROUP_TIMEOUT_HOURS))
        atexit.register(dist.destroy_process_group)
    if dist.get_world_size() != info.world_size:
        raise RuntimeError(f"WORLD_SIZE={info.world_size} but the process group has "
                           f"{dist.get_world_size()} processes")
    return info


def micro_batches(pick: list, info: DistInfo, accumulation: int) -> list[list]:
    """This rank's micro-batches of one global batch ``pick``.

    Examples
    --------
    >>> micro_batches(list(range(8)), DistInfo(1, 2, 1), 2)
    [[1, 5], [3, 7]]
    >>> micro_batches(list(range(8)), DistInfo(0, 1, 0), 2)
    [[0, 2, 4, 6], [1, 3, 5, 7]]
    """
    n_micro = info.world_size * accumulation
    return [pick[m::n_micro] for m in range(info.rank, n_micro, info.world_size)]


def wrap_ddp(module, info: DistInfo):
    """``module`` in DistributedDataParallel when there are several processes (else as is)."""
    if module is None or info.world_size == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def no_sync(modules, skip: bool):
    """DDP's ``no_sync`` on every wrapped module when ``skip`` (accumulation micro-batches)."""
    stack = contextlib.ExitStack()
    if skip:
        for m in modules:
            if hasattr(m, "no_sync"):
                stack.enter_context(m.no_sync())
    return stack


def _comm_device():
    """Where collective tensors live: NCCL reduces CUDA tensors only."""
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Each value averaged over the ranks (as is for one process)."""
    if info.world_size == 1 or not values:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)  # a sum
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's ``value`` on every rank (seeds and stopping decisions must agree)."""
    if info.world_size == 1:
        return int(value)
    import torch
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.int64, device=_comm_device())
    dist.broadcast(t, src=0)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
