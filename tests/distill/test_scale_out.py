"""Training in other processes: killed and resumed from a checkpoint, and under ``torchrun``.

Each test runs ``_run_distiller.py`` (tiny teacher and student, 8 steps) in subprocesses and
compares the student's final weights and history with a reference run.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).with_name("_run_distiller.py")
ROOT = Path(__file__).resolve().parents[2]  # this checkout's sklearn_lts, not an installed one


def _run(*args, launcher=(), expect_kill=False):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, *launcher, str(SCRIPT), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]


def _result(out: Path):
    weights = {**load_file(out / "student.safetensors"),
               **{f"head.{k}": v for k, v in load_file(out / "byte_head.safetensors").items()}}
    return weights, json.loads((out / "history.json").read_text())


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_weights(tmp_path):
    """Dropout is on, so the resumed run must also restore torch's random state; the batch
    order must continue from the saved generator state and the rest of the epoch."""
    cache, ckpt = tmp_path / "cache", tmp_path / "ckpt"
    _run(tmp_path / "full", cache, "--dropout", 0.1)
    _run(tmp_path / "killed", cache, "--dropout", 0.1, "--checkpoint-dir", ckpt,
         "--kill-at", 5, expect_kill=True)
    # checkpoints every 2 steps: the kill at step 5 leaves the one of step 4, whole
    assert json.loads((ckpt / "latest.json").read_text()) == {"checkpoint": "step-000000004"}
    assert not (tmp_path / "killed" / "history.json").exists()
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest.json", "step-000000004"]
    _run(tmp_path / "resumed", cache, "--dropout", 0.1, "--checkpoint-dir", ckpt)
    full, resumed = _result(tmp_path / "full"), _result(tmp_path / "resumed")
    _assert_same_weights(full[0], resumed[0])
    assert full[1] == resumed[1]  # losses, learning rates, eval curve: step for step
    # the second run trained the steps after the checkpoint only (callbacks run on rank 0)
    second = json.loads((tmp_path / "resumed" / "rank0.json").read_text())
    assert second["trained"] == [5, 6, 7, 8]
    assert [h["step"] for h in resumed[1]["history"]] == list(range(1, 9))
    assert json.loads((ckpt / "latest.json").read_text()) == {"checkpoint": "step-000000008"}


def test_torchrun_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo, CPU) against one process accumulating the same
    two micro-batches per step (``gradient_accumulation_steps=2``).

    Each rank runs micro-batch ``pick[rank::2]`` of the global batch ``pick``; one process with
    two accumulation steps runs ``pick[0::2]`` then ``pick[1::2]``. The gradients are
    ``(g0 + g1) / 2`` either way, and halving is exact in floating point, so the weights are
    expected to be bit-for-bit equal (torch.equal), not only close. Against one process
    without accumulation they differ slightly: there each loss is a mean over the whole batch's
    tokens, not a mean of two micro-batch means.
    """
    _run(tmp_path / "one", tmp_path / "cache1", "--accum", 2)
    _run(tmp_path / "ddp", tmp_path / "cache2", launcher=(
        "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"))
    one, ddp = _result(tmp_path / "one"), _result(tmp_path / "ddp")
    _assert_same_weights(one[0], ddp[0])
    assert one[1] == ddp[1]  # losses (averaged over ranks), token counts, eval curve
    ranks = [json.loads((tmp_path / "ddp" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # DDP kept them in step
    assert ranks[0]["trained"] == list(range(1, 9)) and ranks[1]["trained"] == []
    # each rank computed half of the teacher targets into its own shared cache
    assert os.listdir(tmp_path / "cache2" / "bld_targets")


@pytest.mark.parametrize("bad", [{"batch_size": 3, "gradient_accumulation_steps": 4}])
def test_batch_smaller_than_its_micro_batches_is_refused(bad):
    from sklearn_lts.distill import ByteDistiller

    with pytest.raises(ValueError, match="global number of windows"):
        ByteDistiller(teacher="/nonexistent", **bad).fit(["a text"])
