import numpy as np
from sklearn.datasets import load_digits


def digit_episodes(n_classes: int, shots: int, seeds):
    """Digits of the first ``n_classes`` classes, and one few-shot support set per seed."""
    X, y = load_digits(return_X_y=True)
    mask = np.isin(y, range(n_classes))
    episodes = []
    for seed in seeds:
        rng = np.random.RandomState(seed)
        episodes.append(np.concatenate(
            [rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in range(n_classes)]
        ))
    return X, y, mask, episodes
