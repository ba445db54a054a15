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
        "SoftLabelPrototypeClassifier(n_prototypes=10)": lambda: SoftLabelPrototypeClassifier(
            n_prototypes=10
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    few_shot_digits(n_episodes=args.episodes)
    print(f"\nDemo finished in {time.perf_counter() - t0:.0f} s.")


if __name__ == "__main__":
    main()
