"""Shared helpers for the benchmark scripts: versions, command line, result files, Leopard data."""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shlex
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
#: tasks whose records carry a text pair (sentence, entity span)
PAIR_TASKS = {"conll": ("sentence1", "sentence2")}


def versions(*packages: str) -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.platform()}
    for p in ("numpy", "scipy", "scikit-learn", "torch", *packages):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    out["cpu_count"] = str(os.cpu_count())
    return out


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_results(name: str, markdown: str, payload: dict) -> tuple[str, str]:
    """Write ``results/<name>.md`` and ``results/<name>.json``; return both paths."""
    os.makedirs(RESULTS, exist_ok=True)
    md, js = os.path.join(RESULTS, name + ".md"), os.path.join(RESULTS, name + ".json")
    with open(md, "w") as f:
        f.write(markdown)
    with open(js, "w") as f:
        json.dump(payload, f, indent=2, default=float)
    return md, js


# ---------------------------------------------------------------------------------- Leopard
def task_files(data_dir: str, task: str) -> tuple[str, dict[tuple[int, int], str]]:
    """Eval file and ``{(episode, shots): train file}`` of a task folder."""
    folder = os.path.join(data_dir, task)
    evals = glob.glob(os.path.join(folder, "*_eval.json"))
    if len(evals) != 1:
        raise FileNotFoundError(f"expected one *_eval.json in {folder}, found {evals}")
    prefix = os.path.basename(evals[0])[: -len("_eval.json")]  # conll files are conll_c_*
    train = {}
    for path in glob.glob(os.path.join(folder, f"{prefix}_train_*_*.json")):
        m = re.fullmatch(rf"{re.escape(prefix)}_train_(\d+)_(\d+)\.json", os.path.basename(path))
        if m:
            train[(int(m.group(1)), int(m.group(2)))] = path
    return evals[0], train


def leopard_tasks(data_dir: str) -> list[str]:
    """Task folders of the Leopard data (those holding an ``*_eval.json``), sorted."""
    return sorted(
        d for d in os.listdir(data_dir)
        if os.path.isdir(os.path.join(data_dir, d))
        and glob.glob(os.path.join(data_dir, d, "*_eval.json"))
    )


def record_input(task: str, rec: dict) -> str | tuple[str, str]:
    cols = PAIR_TASKS.get(task)
    if cols is None:
        return rec["sentence1"]
    return (rec[cols[0]], rec[cols[1]])


def record_text(task: str, rec: dict) -> str:
    """One string per record; a pair is joined as ``"a [SEP] b"`` (what
    ``SentenceEmbedder(pair_mode="concat")`` embeds for MiniLM)."""
    x = record_input(task, rec)
    return x if isinstance(x, str) else f"{x[0]} [SEP] {x[1]}"


def load_json(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def eval_subsample(n: int, max_eval: int) -> np.ndarray:
    """Indices of the eval rows scored: all of them, or a fixed seeded subset of ``max_eval``."""
    if not max_eval or n <= max_eval:
        return np.arange(n)
    return np.sort(np.random.RandomState(0).choice(n, max_eval, replace=False))


@dataclass(frozen=True)
class Episode:
    """One Leopard episode as strings: the support set and the task's eval rows."""

    task: str
    shots: int
    episode: int
    texts: list[str]
    labels: np.ndarray
    eval_texts: list[str]
    eval_labels: np.ndarray


def leopard_episode(data_dir: str, task: str, shots: int, episode: int) -> Episode | None:
    """Episode ``episode`` of ``task`` at ``shots`` per class; None if its file is empty."""
    eval_path, train_paths = task_files(data_dir, task)
    recs = load_json(train_paths[(episode, shots)])
    if not recs:  # e.g. disaster_train_0_16.json is an empty list in the data
        return None
    ev = load_json(eval_path)
    return Episode(
        task, shots, episode, [record_text(task, r) for r in recs],
        np.asarray([str(r["label"]) for r in recs]), [record_text(task, r) for r in ev],
        np.asarray([str(r["label"]) for r in ev]),
    )


def leopard_dev_episode(data_dir: str, task: str, shots: int, episode: int,
                        pool_episodes: range = range(3, 10)) -> Episode | None:
    """Like :func:`leopard_episode`, but scored on *dev rows* instead of the eval file.

    Dev rows are the texts of the task's training-split episode files ``pool_episodes`` (every
    shot count), minus the support texts: labelled data that is never an eval row, for fixing
    hyper-parameters in advance.
    """
    ep = leopard_episode(data_dir, task, shots, episode)
    if ep is None:
        return None
    _, train_paths = task_files(data_dir, task)
    support = set(ep.texts)
    dev: dict[str, str] = {}
    for (i, _k), path in sorted(train_paths.items()):
        if i in pool_episodes:
            for r in load_json(path):
                t = record_text(task, r)
                if t not in support:
                    dev.setdefault(t, str(r["label"]))
    texts = sorted(dev)
    return Episode(task, shots, episode, ep.texts, ep.labels, texts,
                   np.asarray([dev[t] for t in texts]))
