"""Student tokens per second of ByteDistiller training with 1 and 2 processes on this machine.

:func:`measure_throughput` runs the same training (a small GPT-2-architecture student on the
GPT-2 tokenizer, BLD against a tiny random teacher so that the teacher targets cost nothing,
Hamlet) once as a plain process and once under ``torchrun --nproc_per_node 2`` (gloo on CPU,
NCCL on GPUs), with the same global batch, and returns the throughput of each. It is imported
by ``benchmarks/scale.py``; run alone it prints the result:

    python benchmarks/_scale_ddp.py [--steps 30] [--batch-size 8] [--max-length 64] [--repeats 3]

Throughput counts the predicted student tokens of every process per second of wall time, over
the steps after the first ``warmup`` (the first steps pay for allocation and, under DDP, for
building the gradient buckets). On a CPU machine both processes share the cores, so the
speed-up measures parallel efficiency, not what several GPUs give.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

__all__ = ["measure_throughput"]

HERE = os.path.dirname(os.path.abspath(__file__))


def _worker(args) -> None:
    """One training run (one process of a launch); rank 0 writes its timings to ``args.out``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from sklearn_lts import ByteDistiller
    from sklearn_lts.datasets import load_hamlet
    from sklearn_lts.models import gpt2_tokenizer

    torch.set_num_threads(args.threads)
    tok = gpt2_tokenizer()
    torch.manual_seed(1)  # the same tiny teacher in every process
    teacher = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=32,
                                         n_head=2, n_positions=1024)).eval()
    marks = []
    bd = ByteDistiller(
        teacher=(teacher, tok), student="random-gpt2", byte_method="boundary",
        student_config={"n_layer": args.layers, "n_embd": args.width, "n_head": 4},
        max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
        random_state=0, device=args.device, cache_dir=args.cache, verbose=0,
        callbacks=[lambda r: marks.append((r.step, time.perf_counter()))],
    )
    bd.fit(load_hamlet()[: args.docs])
    if int(os.environ.get("RANK", "0")) == 0:
        tokens = {h["step"]: h["tokens"] for h in bd.history_}
        (s0, t0), (s1, t1) = marks[args.warmup - 1], marks[-1]
        n_tokens = sum(tokens[s] for s in range(s0 + 1, s1 + 1))
        with open(args.out, "w") as f:
            json.dump({"tokens": n_tokens, "seconds": t1 - t0, "steps": s1 - s0,
                       "tokens_per_second": n_tokens / (t1 - t0),
                       "final_loss": bd.history_[-1]["loss"]}, f)


def _launch(n: int, cli: list[str], timeout: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        launcher = [] if n == 1 else ["-m", "torch.distributed.run", "--standalone",
                                      "--nproc_per_node", str(n)]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "OMP_NUM_THREADS": cli[cli.index("--threads") + 1],
               "PYTHONPATH": os.path.dirname(HERE)}
        for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
            env.pop(k, None)
        proc = subprocess.run([sys.executable, *launcher, os.path.abspath(__file__), "--worker",
                               "--out", out, *cli], env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{n} process(es) failed:\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def measure_throughput(processes=(1, 2), steps: int = 30, batch_size: int = 8,
                       max_length: int = 64, layers: int = 2, width: int = 128,
                       threads: int = 1, warmup: int = 5, device: str = "cpu",
                       docs: int = 40, repeats: int = 1, timeout: int = 900) -> dict:
    """Student tokens per second of the same training with each number of ``processes``.

    Parameters
    ----------
    processes : tuple of int
        Process counts (1 = a plain process, more = ``torchrun --nproc_per_node``).
    steps, batch_size, max_length : int
        Optimiser steps, global windows per step, student tokens per window.
    layers, width : int
        The fresh GPT-2-architecture student (GPT-2 tokenizer).
    threads : int
        torch threads per process.
    warmup : int
        Steps left out of the timing.
    device : str
    docs : int
        Training documents: the first ``docs`` pieces of Hamlet (about 500 bytes each).
    repeats : int
        Runs per process count, alternating (1, 2, 1, 2, ...) so that a change in the load of
        a shared machine hits both; the median is reported.

    Returns
    -------
    dict
        ``{"config": ..., "runs": {"1": {"tokens_per_second", ...}, "2": ...},
        "speedup": {"2": tokens/s with 2 over 1}}``; each run's ``tokens_per_second`` is the
        median over the repeats, ``tokens_per_second_runs`` lists them all.
    """
    config = dict(steps=steps, batch_size=batch_size, max_length=max_length, layers=layers,
                  width=width, threads=threads, warmup=warmup, device=device, docs=docs)
    runs = {}
    with tempfile.TemporaryDirectory() as cache:
        cli = ["--cache", cache, *[a for k, v in config.items()
                                   for a in (f"--{k.replace('_', '-')}", str(v))]]
        for _ in range(repeats):
            for n in processes:
                result = _launch(n, cli, timeout)
                done = runs.get(str(n), {}).get("tokens_per_second_runs", [])
                result["tokens_per_second_runs"] = [*done, result["tokens_per_second"]]
                result["tokens_per_second"] = statistics.median(
                    result["tokens_per_second_runs"])
                runs[str(n)] = result
    base = runs[str(processes[0])]["tokens_per_second"]
    speedup = {k: r["tokens_per_second"] / base for k, r in runs.items()}
    return {"config": config, "repeats": repeats, "runs": runs, "speedup": speedup,
            "cpu_count": os.cpu_count()}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--docs", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=1)
    return ap


if __name__ == "__main__":
    _args = _parser().parse_args()
    if _args.worker:
        _worker(_args)
    else:
        _config = {k: v for k, v in vars(_args).items() if k not in ("worker", "out", "cache")}
        print(json.dumps(measure_throughput(**_config), indent=2))
